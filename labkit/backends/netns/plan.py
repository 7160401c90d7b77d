# What Calico (CNI plugin, Felix, BIRD) and docker would have configured, as ip/bridge batches.
"""Turn a :class:`~labkit.model.topology.Topology` into per-namespace command batches.

Pure functions: no namespace is touched here, so the plan can be read and
unit-tested on its own.  The agent feeds each batch to ``ip -batch -`` or
``bridge -batch -`` inside the namespace it names, and writes the sysctls, in
this order: :func:`underlay` (the build machine's side of docker's network),
:func:`node` for every node, then for every pod in the order it started
:func:`pod` (in the pod) and, once all of them ran, :func:`node_pods` on each
node, which sets up the cali devices the pods' batches made there.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

from ...model import calico
from ...model.topology import PodSpec, Topology
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


def pod_mac(pod: PodSpec) -> str:
    """The pod's eth0 MAC. The kernel picks a random one on a real node; the replica takes a
    locally administered unicast MAC from the pod's namespace and name, so every build and
    every lab shows the same value (any value of this form is one a kernel could pick)."""
    digest = bytearray(hashlib.sha1(f"mac/{pod.namespace}/{pod.name}".encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in digest)


def netns_name(pod: PodSpec) -> str:
    """The runtime's name for the pod's network namespace: ``cni-`` + a version-4 UUID.

    containerd draws the UUID at random; the replica derives it from the pod's namespace
    and name so that the name is the same in every build and every lab.
    """
    digest = hashlib.sha1(f"netns/{pod.namespace}/{pod.name}".encode()).digest()[:16]
    return f"cni-{uuid.UUID(bytes=digest, version=4)}"


def _prefix(cidr: str) -> str:
    return cidr.split("/")[1]


def underlay(topo: Topology, pids: dict[str, int]) -> Batch:
    """docker's `kind` network: a bridge, one veth per node, a gateway that routes nothing.

    The network is dual stack as kind makes it (IPv4 and a ULA /64).  The
    gateway's only routes out are blackholes, so what a node sends to an address
    nobody owns (169.254.1.1 included, IPv6 too) vanishes without an ICMP error,
    as it does on a kind host, and nothing ever leaves the lab.
    """
    br = bridge_name(topo.cluster)
    b = Batch(ip=[
        f"link add {br} type bridge",
        f"addr add {topo.gateway}/{_prefix(topo.underlay)} dev {br}",
        f"addr add {topo.gateway6}/{_prefix(topo.underlay6)} dev {br} nodad",
    ])
    for node in topo.nodes:
        veth = host_veth(node.name)
        b.ip += [
            # docker's veths have no transmit queue (txqueuelen 0): no `qlen` in `ip link`.
            f"link add {veth} txqueuelen 0 type veth peer name eth0 txqueuelen 0 "
            f"netns {pids[node.name]}",
            f"link set {veth} master {br} up",
        ]
    b.ip += [f"link set {br} up", "route add blackhole default",
             "route add blackhole ::/0"]
    b.sysctl["net.ipv4.ip_forward"] = "1"
    b.sysctl["net.ipv6.conf.all.forwarding"] = "1"
    return b


def node(topo: Topology, name: str, encapsulation: str, bird: bool = True) -> Batch:
    """One node as kind and Felix leave it, before any pod starts.

    In IPIP and plain BGP modes the blackholes for the node's blocks and the routes to
    the other nodes' blocks are not here: the node's BIRD installs them (``bird``;
    without it they are missing, as on a node whose BIRD is down).
    """
    me = topo.node(name)
    mtu = calico.MTU[encapsulation]
    b = Batch()
    b.ip += [
        "link set lo up",
        f"link set eth0 address {docker_mac(me.ip)}",
        f"addr add {me.ip}/{_prefix(topo.underlay)} brd + dev eth0",
        f"addr add {me.ip6}/{_prefix(topo.underlay6)} dev eth0 nodad",
        "link set eth0 up",
        f"route add default via {topo.gateway} dev eth0",
        f"route add default via {topo.gateway6} dev eth0",
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
            # Felix v3.23 creates it with txqueuelen 0, as the CNI plugin does its veths.
            f"link add {dev} txqueuelen 0 type vxlan id {calico.VXLAN_VNI} local {me.ip} "
            f"dev eth0 dstport {calico.VXLAN_PORT} nolearning",
            f"link set {dev} address {calico.vxlan_mac(me.name)} mtu {mtu}",
            f"addr add {me.tunnel_ip}/32 dev {dev}",
            f"link set {dev} up",
        ]
        b.ip += [f"route add blackhole {block} proto {calico.FELIX_PROTO}" for block in me.blocks]
        for other in others:
            mac = calico.vxlan_mac(other.name)
            b.ip.append(f"neigh add {other.tunnel_ip} dev {dev} lladdr {mac} nud permanent")
            # Every block of a node is reached through that node's VTEP (its tunnel address).
            b.ip += [f"route add {block} via {other.tunnel_ip} dev {dev} onlink"
                     for block in other.blocks]
            b.bridge.append(f"fdb add {mac} dev {dev} dst {other.ip} self permanent")
    return b


def pod(topo: Topology, name: str, encapsulation: str, pids: dict[str, int],
        fresh: int = 1) -> Batch:
    """A pod's network as the Calico v3.23 CNI plugin sets it up, run inside the pod.

    The plugin creates the veth pair in the pod's namespace and then moves the host end
    to the node.  The kernel registers the peer first, so the host end takes the pod's
    next interface number and ``eth0`` the one after: ``3: eth0@ifN`` where a fresh
    namespace has only ``lo`` (``fresh``, its highest interface number, is 1), ``4:``
    where the ipip module's ``tunl0@NONE`` holds 2.  In the node the moved end gets the
    node's next number, and shows as ``caliX@if3``.  Moving a device costs the kernel an
    RCU grace period (about 20 ms a pod), so the replica makes the host end in the node
    at once and gives ``eth0`` the number that order would have given it: the kernel
    state, and every line ``ip`` prints, are the same.
    """
    spec = topo.pod(name)
    mtu = calico.MTU[encapsulation]
    return Batch(
        ip=[
            "link set lo up",
            # One queue each way, as the veth Calico's CNI plugin makes (netlink's default),
            # not the one per CPU the kernel gives a veth `ip link add` makes.
            f"link add eth0 index {fresh + 2} mtu {mtu} txqueuelen 0 numtxqueues 1 "
            f"numrxqueues 1 address {pod_mac(spec)} type veth peer name {spec.veth} mtu {mtu} "
            f"txqueuelen 0 numtxqueues 1 numrxqueues 1 address {calico.CALI_MAC} "
            f"netns {pids[spec.node]}",
            f"addr add {spec.ip}/32 dev eth0",
            "link set eth0 up",
            f"route add {calico.GATEWAY} dev eth0 scope link",
            f"route add default via {calico.GATEWAY} dev eth0",
        ],
        sysctl={"net.ipv4.ip_forward": "0"},
    )


def node_pods(topo: Topology, name: str, pids: dict[str, int]) -> Batch:
    """The node's side of its pods, once their batches made the cali devices here."""
    b = Batch()
    for spec in (p for p in topo.pods if p.node == name):
        cali = spec.veth
        b.ip += [
            # The runtime's name for the pod's namespace, so `ip link` shows `link-netns cni-...`.
            f"netns attach {netns_name(spec)} {pids[spec.name]}",
            f"link set {cali} up",
            f"route add {spec.ip}/32 dev {cali} scope link",
        ]
        b.sysctl |= {
            f"net.ipv4.conf.{cali}.proxy_arp": "1",
            f"net.ipv4.neigh.{cali}.proxy_delay": "0",
            f"net.ipv4.conf.{cali}.forwarding": "1",
            f"net.ipv4.conf.{cali}.route_localnet": "1",
            f"net.ipv6.conf.{cali}.accept_ra": "0",
        }
    return b
