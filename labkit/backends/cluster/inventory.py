# A real cluster's (kind or native) nodes and pods in the shape labkit.api.lab.Node and Pod take.
"""Turn what the API server and the nodes report into the lab's inventory.

Pure functions over JSON (nodes, pods, Calico's block affinities, the IP
pool, ``ip -o link`` of each node), so the mapping is tested without a
cluster; :mod:`.backend` gathers the inputs.  A Flannel cluster's nodes take
their block from ``spec.podCIDR``; its pods' host veths are named at random by
the ``bridge`` plugin (``veth`` + 8 hex), so they are read from the node
(:data:`FLANNEL_LINKS_SCRIPT`, :func:`flannel_links`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from ...model import calico
from .settings import Settings

Obj = dict[str, Any]
TUNNEL_ANNOTATION = {"IPIP": "projectcalico.org/IPv4IPIPTunnelAddr",
                     "IPIPCrossSubnet": "projectcalico.org/IPv4IPIPTunnelAddr",
                     "VXLAN": "projectcalico.org/IPv4VXLANTunnelAddr"}
# `ip -o link` on a node: "12: cali1a2b3c4d5e6@if3: <...> ... link-netns cni-4f0c..."
# (`link-netnsid 0` instead means `ip` could not name the namespace: left unknown.)
LINK = re.compile(
    r"^(?P<index>\d+):\s+(?P<name>cali[0-9a-f]{11})(?:@\S+)?:.*?\blink-netns\s+(?P<netns>\S+)")
# The bridge plugin's host end: "7: veth3c9a1f2e@if3: <...> master cni0 ... link-netns cni-..."
VETH = re.compile(
    r"^(?P<index>\d+):\s+(?P<name>veth[0-9a-f]{8})(?:@\S+)?:.*?\blink-netns\s+(?P<netns>\S+)")
# One line per pod netns (FLANNEL_LINKS_SCRIPT): "netns cni-... 3: eth0    inet 10.244.1.2/24"
NETNS_ADDRESS = re.compile(r"^netns\s+(?P<netns>\S+)\s+\d+:\s+eth0\s+inet\s+(?P<ip>[0-9.]+)/")
FLANNEL_LINKS_SCRIPT = (
    "ip -o link show type veth; "
    "for ns in $(ip netns list | cut -d' ' -f1); do "
    'echo "netns $ns $(ip -n "$ns" -o -4 addr show dev eth0 2>/dev/null | head -n 1)"; done'
)
"""Run on each node of a Flannel cluster: its veths and every pod netns's eth0 address."""
FLANNEL_DEVICE = "flannel.1"
VETH_IFINDEX = "veth_ifindex"
"""The inventory's key beside ``pods``: each pod's veth's interface number on its node, by
pod name (:class:`Link`); not a :class:`labkit.api.lab.Pod` field, since the replica's
inventory does not read it back from its nodes."""


def prompt(hostname: str) -> str:
    """What a root shell there shows: ``docker exec -it <node> bash`` or ``kubectl exec -it``."""
    return f"root@{hostname}:/#"


def role(node: Obj) -> str:
    labels: dict[str, str] = node.get("metadata", {}).get("labels", {}) or {}
    if ("node-role.kubernetes.io/control-plane" in labels
            or "node-role.kubernetes.io/master" in labels):
        return "control-plane"
    return "worker"


def internal_ip(node: Obj) -> str:
    for address in node.get("status", {}).get("addresses", []) or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address", ""))
    return ""


def encapsulation(pool: Obj | None, settings: Settings) -> str:
    """What the cluster's pool really does; the manifests' wish if the pool cannot be read."""
    spec = (pool or {}).get("spec") or {}
    ipip = spec.get("ipipMode", settings.ipip_mode)
    vxlan = spec.get("vxlanMode", settings.vxlan_mode)
    try:
        return calico.encapsulation(ipip, vxlan)
    except calico.PoolModeError:
        return "IPIP" if ipip != "Never" else "VXLAN"


def node_block(name: str, tunnel_ip: str, affinities: list[Obj], block_size: int) -> str:
    """The node's IPAM block: the affine block holding its tunnel address, else the first one.

    Without affinities (Calico's CRDs not readable), the block is derived from
    the tunnel address and the pool's block size, which is where IPAM took it.
    """
    blocks: list[str] = [str(a.get("spec", {}).get("cidr", "")) for a in affinities
              if a.get("spec", {}).get("node") == name
              and a.get("spec", {}).get("state", "confirmed") == "confirmed"
              and str(a.get("spec", {}).get("deleted", "false")).lower() != "true"]
    blocks = [b for b in blocks if b]
    if tunnel_ip:
        address = ipaddress.ip_address(tunnel_ip)
        for block in blocks:
            if address in ipaddress.ip_network(block):
                return block
        if not blocks:
            return str(ipaddress.ip_network(f"{tunnel_ip}/{block_size}", strict=False))
    return sorted(blocks)[0] if blocks else ""


class Link(NamedTuple):
    """A pod's veth as its node shows it."""

    veth: str
    netns: str
    """The pod's network namespace (``cni-<uuid>``) the veth links to."""
    ifindex: int
    """The veth's interface number on the node: the order the pods' veths were made in.
    A real cluster runs the CNI plugin for several pods at once, so that order need not be
    the order of their addresses (the replica follows both: :mod:`labkit.book.follow`)."""


def link_netns(ip_link_output: str) -> dict[str, Link]:
    """``cali`` device -> its :class:`Link`, from ``ip -o link`` on a node."""
    found = {}
    for line in ip_link_output.splitlines():
        match = LINK.match(line.strip())
        if match:
            found[match.group("name")] = _link(match)
    return found


def _link(match: re.Match[str]) -> Link:
    """A :data:`LINK` or :data:`VETH` line's :class:`Link`."""
    return Link(match.group("name"), match.group("netns"), int(match.group("index")))


def flannel_links(output: str) -> dict[str, Link]:
    """Pod IP -> its :class:`Link`, from :data:`FLANNEL_LINKS_SCRIPT`'s output on a node."""
    veths: dict[str, Link] = {}
    addresses: dict[str, str] = {}
    for line in output.splitlines():
        line = line.strip()
        if match := VETH.match(line):
            veths[match.group("netns")] = _link(match)
        elif match := NETNS_ADDRESS.match(line):
            addresses[match.group("netns")] = match.group("ip")
    return {ip: veths[netns] for netns, ip in addresses.items() if netns in veths}


def flannel_tunnel_ip(pod_cidr: str) -> str:
    """flannel.1's address: the node subnet's network address (10.244.1.0 for 10.244.1.0/24)."""
    if not pod_cidr:
        return ""
    return str(ipaddress.ip_network(pod_cidr, strict=False).network_address)


def _started(pod: Obj) -> tuple[str, str, str]:
    status, meta = pod.get("status", {}), pod.get("metadata", {})
    return (str(status.get("startTime") or meta.get("creationTimestamp") or ""),
            str(meta.get("creationTimestamp") or ""), str(meta.get("name")))


def build(settings: Settings, *, nodes: list[Obj], pods: list[Obj], affinities: list[Obj],
          pool: Obj | None, links: dict[str, Link], info: dict[str, Any]) -> dict[str, Any]:
    """The inventory :class:`labkit.api.lab.Lab` reads: ``{"info", "nodes", "pods"}``.

    ``pods`` are the cluster's pods; only running ones with an address of their own
    (not the host's network: calico-node, kube-proxy...) are kept, in the order they
    started.  ``links`` maps every node's cali devices to their :class:`Link` (see
    :func:`link_netns`).
    """
    mode = encapsulation(pool, settings)
    device = calico.tunnel_device(mode)
    node_rows = []
    for node in _nodes_in_order(nodes):
        name = node["metadata"]["name"]
        annotations = node["metadata"].get("annotations", {}) or {}
        tunnel_ip = str(annotations.get(TUNNEL_ANNOTATION.get(mode, ""), ""))
        node_rows.append({
            "name": name, "role": role(node), "ip": internal_ip(node),
            "block": node_block(name, tunnel_ip, affinities, settings.block_size),
            "hostname": name, "tunnel_device": device, "tunnel_ip": tunnel_ip,
            "prompt": prompt(name),
        })
    def locate(namespace: str, name: str, ip: str) -> Link:
        veth = calico.veth_name(namespace, name)
        return links.get(veth, Link(veth, "", 0))

    rows, made = _pod_rows(pods, locate)
    return {
        "info": {**_info(settings, nodes, mode), "calico": settings.calico_version, **info},
        "nodes": node_rows,
        "pods": rows,
        VETH_IFINDEX: made,
    }


def _pod_rows(pods: list[Obj],
              locate: Callable[[str, str, str], Link],
              ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Running pods with an address of their own, in the order they started; and each
    one's veth's interface number on its node, where the node showed it.

    ``locate(namespace, name, ip)`` gives the pod's :class:`Link` (``ifindex`` 0 where the
    node did not show it).
    """
    rows = []
    made: dict[str, int] = {}
    for pod in sorted(pods, key=_started):
        meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        if status.get("phase") != "Running" or not status.get("podIP") or \
                meta.get("deletionTimestamp") or spec.get("hostNetwork"):
            continue
        namespace, name = meta.get("namespace", "default"), meta["name"]
        link = locate(namespace, name, status["podIP"])
        rows.append({
            "name": name, "namespace": namespace, "node": spec.get("nodeName", ""),
            "ip": status["podIP"], "veth": link.veth,
            "labels": dict(meta.get("labels", {}) or {}),
            "hostname": name, "netns": link.netns, "prompt": prompt(name),
        })
        if link.ifindex:
            made[name] = link.ifindex
    return rows, made


def _info(settings: Settings, nodes: list[Obj], mode: str) -> dict[str, Any]:
    kernels = sorted({n.get("status", {}).get("nodeInfo", {}).get("kernelVersion", "")
                      for n in nodes} - {""})
    kubelets = sorted({n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
                       for n in nodes} - {""})
    return {
        "backend": "kind",
        "cni": settings.cni,
        "encapsulation": mode,
        "cluster": settings.cluster,
        "kernel": ", ".join(kernels),
        "kubernetes": ", ".join(kubelets),
    }


def _nodes_in_order(nodes: list[Obj]) -> list[Obj]:
    return sorted(nodes, key=lambda n: (role(n) != "control-plane", n["metadata"]["name"]))


def build_flannel(settings: Settings, *, nodes: list[Obj], pods: list[Obj],
                  links: dict[str, Link], info: dict[str, Any]) -> dict[str, Any]:
    """A Flannel cluster's inventory, in the same shape as :func:`build`'s.

    A node's block is its ``spec.podCIDR`` (what flanneld writes into
    subnet.env), its tunnel ``flannel.1`` with the subnet's network address;
    ``links`` is every node's :func:`flannel_links`, by pod IP.
    """
    node_rows = []
    for node in _nodes_in_order(nodes):
        name = node["metadata"]["name"]
        block = str(node.get("spec", {}).get("podCIDR") or "")
        node_rows.append({
            "name": name, "role": role(node), "ip": internal_ip(node), "block": block,
            "hostname": name, "tunnel_device": FLANNEL_DEVICE,
            "tunnel_ip": flannel_tunnel_ip(block), "prompt": prompt(name),
        })

    def locate(namespace: str, name: str, ip: str) -> Link:
        return links.get(ip, Link("", "", 0))

    rows, made = _pod_rows(pods, locate)
    return {
        "info": {**_info(settings, nodes, "VXLAN"), "flannel": settings.flannel_version,
                 **info},
        "nodes": node_rows,
        "pods": rows,
        VETH_IFINDEX: made,
    }
