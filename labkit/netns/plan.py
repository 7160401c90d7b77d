# What Calico (CNI plugin, Felix, BIRD) and docker would have configured, as ip/bridge batches.
"""Turn a :class:`~labkit.topology.Topology` into per-namespace command batches.

Pure functions: no namespace is touched here, so the plan can be read and
unit-tested on its own.  The agent feeds each batch to ``ip -batch -`` or
``bridge -batch -`` inside the namespace it names, and writes the sysctls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .. import calico
from ..topology import Topology
from .bird import tunnel_routes as bird_tunnel_routes


@dataclass
class Batch:
    """Commands for one namespace: ``ip`` lines, ``bridge`` lines, and sysctls to write."""

    ip: list[str] = field(default_factory=list)
    bridge: list[str] = field(default_factory=list)
    sysctl: dict[str, str] = field(default_factory=dict)


def bridge_name(cluster: str) -> str:
    """docker names a user network's bridge ``br-`` + the first 12 hex of its id."""
    return "br-" + hashlib.sha256(f"kind/{cluster}".encode()).hexdigest()[:12]


def docker_mac(ip: str) -> str:
    """docker (before 26.0) derives a container's eth0 MAC from its IPv4 address."""
    return "02:42:" + ":".join(f"{int(octet):02x}" for octet in ip.split("."))


def host_veth(node: str) -> str:
    return "veth" + hashlib.sha1(node.encode()).hexdigest()[:7]


def underlay(topo: Topology, pids: dict[str, int]) -> Batch:
    """docker's `kind` network: a bridge, one veth per node, a gateway that routes nothing.

    The gateway's only route out is a blackhole, so what a node sends to an
    address nobody owns (169.254.1.1 included) vanishes without an ICMP error,
    as it does on a kind host, and nothing ever leaves the lab.
    """
    br = bridge_name(topo.cluster)
    prefix = topo.underlay.split("/")[1]
    b = Batch(ip=[f"link add {br} type bridge", f"addr add {topo.gateway}/{prefix} dev {br}"])
    for node in topo.nodes:
        veth = host_veth(node.name)
        b.ip += [
            f"link add {veth} type veth peer name eth0 netns {pids[node.name]}",
            f"link set {veth} master {br} up",
        ]
    b.ip += [f"link set {br} up", "route add blackhole default"]
    b.sysctl["net.ipv4.ip_forward"] = "1"
    return b


def node(topo: Topology, name: str, encapsulation: str, pids: dict[str, int],
         netns: dict[str, str], bird: bool = True) -> Batch:
    """One node as kind, the CNI plugin (per pod) and Felix leave it.

    In IPIP and plain BGP modes the blackhole for the node's block and the routes to
    the other nodes' blocks are not here: the node's BIRD installs them (``bird``;
    without it they are missing, as on a node whose BIRD is down).
    """
    me = topo.node(name)
    mtu = calico.MTU[encapsulation]
    prefix = topo.underlay.split("/")[1]
    b = Batch()
    b.ip += [
        "link set lo up",
        f"link set eth0 address {docker_mac(me.ip)}",
        f"addr add {me.ip}/{prefix} dev eth0",
        "link set eth0 up",
        f"route add default via {topo.gateway} dev eth0",
    ]
    b.sysctl["net.ipv4.ip_forward"] = "1"
    others = [n for n in topo.nodes if n.name != name]
    if encapsulation.startswith("IPIP"):
        b.ip += [
            f"link set {calico.IPIP_DEVICE} mtu {mtu} up",
            f"addr add {me.tunnel_ip}/32 dev {calico.IPIP_DEVICE}",
        ]
        if bird and encapsulation == "IPIP":
            # What Calico's own BIRD installs with krt_tunnel, which upstream BIRD lacks.
            b.ip += bird_tunnel_routes(topo, name)
    elif encapsulation == "VXLAN":
        dev = calico.VXLAN_DEVICE
        b.ip += [
            f"link add {dev} type vxlan id {calico.VXLAN_VNI} local {me.ip} dev eth0 "
            f"dstport {calico.VXLAN_PORT} nolearning",
            f"link set {dev} address {calico.vxlan_mac(me.name)} mtu {mtu}",
            f"addr add {me.tunnel_ip}/32 dev {dev}",
            f"link set {dev} up",
            f"route add blackhole {me.block} proto {calico.FELIX_PROTO}",
        ]
        for other in others:
            mac = calico.vxlan_mac(other.name)
            b.ip += [
                f"neigh add {other.tunnel_ip} dev {dev} lladdr {mac} nud permanent",
                f"route add {other.block} via {other.tunnel_ip} dev {dev} onlink",
            ]
            b.bridge.append(f"fdb add {mac} dev {dev} dst {other.ip} self permanent")
    for pod in (p for p in topo.pods if p.node == name):
        cali = pod.veth
        b.ip += [
            f"link add {cali} type veth peer name eth0 netns {pids[pod.name]}",
            f"link set {cali} address {calico.CALI_MAC} mtu {mtu}",
            # The runtime's name for the pod's namespace, so `ip link` shows `link-netns cni-...`.
            f"netns attach {netns[pod.name]} {pids[pod.name]}",
            f"link set {cali} up",
            f"route add {pod.ip}/32 dev {cali} scope link",
        ]
        b.sysctl |= {
            f"net.ipv4.conf.{cali}.proxy_arp": "1",
            f"net.ipv4.neigh.{cali}.proxy_delay": "0",
            f"net.ipv4.conf.{cali}.forwarding": "1",
            f"net.ipv4.conf.{cali}.route_localnet": "1",
            f"net.ipv6.conf.{cali}.accept_ra": "0",
        }
    return b


def pod(topo: Topology, name: str, encapsulation: str) -> Batch:
    """A pod's side of the veth, as the Calico CNI plugin configures it."""
    spec = next(p for p in topo.pods if p.name == name)
    return Batch(
        ip=[
            "link set lo up",
            f"link set eth0 mtu {calico.MTU[encapsulation]}",
            f"addr add {spec.ip}/32 dev eth0",
            "link set eth0 up",
            f"route add {calico.GATEWAY} dev eth0 scope link",
            f"route add default via {calico.GATEWAY} dev eth0",
        ],
        sysctl={"net.ipv4.ip_forward": "0"},
    )
