# The topology diagram: a node, its pods and the veth pairs between them, from `ip -j` output.
"""Read a node's and its pods' network state with ``ip -j`` and draw it.

:func:`diagram` runs ``ip -j addr``, ``ip -j -d link`` and ``ip -j route`` in
each node asked for and in each of its pods, and ``sysctl`` for the
``proxy_arp`` of the node's ``cali`` devices.  Everything drawn is read from
what those commands printed: which ``cali`` device is a pod's peer (veth
``link_index``), the addresses, the MACs, the routes, and whether anybody owns
the pods' gateway address.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..api.lab import Lab, Pod
from . import markdown as md
from . import svg
from .diagram_svg import draw
from .iproute import Device, Route, StateError, read_devices, read_proxy_arp, read_routes

SEED_NODE = "calico-ipip-worker2"
"""The node of the seed's two pods (10.244.244.67 and .68)."""


# -- the state drawn --------------------------------------------------------------------------

@dataclass(frozen=True)
class PodNetwork:
    """A pod's network namespace, and the device at the other end of its veth on the node."""

    name: str
    devices: tuple[Device, ...]
    routes: tuple[Route, ...]
    cali: Device | None
    """The node-side end of the pod's ``eth0`` veth; None if the node has no such device."""

    @property
    def eth0(self) -> Device:
        return _device(self.devices, "eth0", self.name)

    @property
    def ip(self) -> str:
        """The pod's address with its prefix (``10.244.244.65/32``)."""
        return self.eth0.ipv4[0] if self.eth0.ipv4 else ""

    @property
    def gateways(self) -> tuple[str, ...]:
        return tuple(r.gateway for r in self.routes if r.dst == "default" and r.gateway)


@dataclass(frozen=True)
class NodeNetwork:
    """A node's root namespace: its devices and routes, and its pods."""

    name: str
    devices: tuple[Device, ...]
    routes: tuple[Route, ...]
    pods: tuple[PodNetwork, ...]
    tunnel_device: str
    proxy_arp: Mapping[str, str] = field(default_factory=dict)
    """``net.ipv4.conf.<cali>.proxy_arp`` per cali device, as sysctl printed it."""

    @property
    def eth0(self) -> Device:
        return _device(self.devices, "eth0", self.name)

    @property
    def tunnel(self) -> Device | None:
        return next((d for d in self.devices if d.name == self.tunnel_device), None)

    def routes_via(self, device: str) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.dev == device)


def _device(devices: Sequence[Device], name: str, where: str) -> Device:
    for device in devices:
        if device.name == name:
            return device
    raise StateError(f"{where} has no device {name!r} ({', '.join(d.name for d in devices)})")


def pair(pod_devices: Sequence[Device], node_devices: Sequence[Device]) -> Device | None:
    """The node device at the other end of the pod's ``eth0`` veth, by ifindex both ways."""
    eth0 = next((d for d in pod_devices if d.name == "eth0"), None)
    if eth0 is None or eth0.peer_ifindex is None:
        return None
    for device in node_devices:
        if device.ifindex == eth0.peer_ifindex and device.peer_ifindex == eth0.ifindex:
            return device
    return None


@dataclass(frozen=True, eq=False)
class Diagram:
    """The network of one or more nodes and their pods, as the lab reported it."""

    nodes: tuple[NodeNetwork, ...]
    encapsulation: str

    @property
    def pods(self) -> tuple[PodNetwork, ...]:
        return tuple(p for n in self.nodes for p in n.pods)

    @property
    def gateways(self) -> tuple[str, ...]:
        """The pods' default gateways (169.254.1.1 under Calico), each once."""
        return tuple(dict.fromkeys(g for p in self.pods for g in p.gateways))

    def owners(self, address: str) -> tuple[str, ...]:
        """``where/device`` for every device, in every namespace read, that has ``address``."""
        found = []
        for node in self.nodes:
            for where, devices in ((node.name, node.devices),
                                   *((p.name, p.devices) for p in node.pods)):
                found += [f"{where}/{d.name}" for d in devices
                          if any(a.split("/")[0] == address for a in d.addresses)]
        return tuple(found)

    # -- the page -------------------------------------------------------------------------

    def table(self) -> str:
        """The pods and the nodes as Markdown tables, a column each (two pods a table):
        narrow enough for a phone (a row per pod would need nine columns)."""
        pods = [(node, pod) for node in self.nodes for pod in node.pods]

        def route(node: NodeNetwork, pod: PodNetwork) -> str | None:
            cali = pod.cali
            return next((str(r) for r in node.routes_via(cali.name)), None) if cali else None

        fields: list[tuple[str, Callable[[NodeNetwork, PodNetwork], object]]] = [
            ("eth0 地址", lambda node, pod: pod.ip),
            ("eth0 MAC", lambda node, pod: pod.eth0.mac),
            ("节点上的 veth", lambda node, pod: pod.cali.name if pod.cali else None),
            ("veth MAC", lambda node, pod: pod.cali.mac if pod.cali else None),
            ("proxy_arp", lambda node, pod: node.proxy_arp.get(pod.cali.name) if pod.cali
             else None),
            ("节点上到 pod 的路由", route),
        ]
        if any(pod.cali and pod.cali.master for _, pod in pods):
            fields.insert(4, ("veth 所在网桥", lambda node, pod: pod.cali.master if pod.cali
                              else None))
        if len(self.nodes) > 1:  # one node is named in the caption and the node table
            fields.insert(0, ("节点", lambda node, pod: node.name))
        # Two pods a table: a third column of MACs and routes no longer fits a phone.
        text = "\n\n".join(
            md.table(["Pod", *(md.cell(pod.name) for _, pod in pair)],
                      [[name, *(md.cell(get(node, pod)) for node, pod in pair)]
                       for name, get in fields])
            for pair in (pods[i:i + 2] for i in range(0, len(pods), 2)))
        node_fields: list[tuple[str, Callable[[NodeNetwork], object]]] = [
            ("eth0 地址", lambda node: ", ".join(node.eth0.ipv4)),
            ("eth0 MAC", lambda node: node.eth0.mac),
            ("隧道设备", lambda node: node.tunnel.name if node.tunnel else None),
            ("隧道地址", lambda node: ", ".join(node.tunnel.ipv4) if node.tunnel else None),
            ("隧道 MAC", lambda node: node.tunnel.mac if node.tunnel else None),
        ]
        text += "\n\n" + md.table(["节点", *(md.cell(node.name) for node in self.nodes)],
                                    [[name, *(md.cell(get(node)) for node in self.nodes)]
                                     for name, get in node_fields])
        return text

    def caption(self) -> str:
        """What the diagram shows, every claim checked against what the lab printed."""
        names = "、".join(n.name for n in self.nodes)
        facts = [f"节点 {names} 上的 {len(self.pods)} 个 pod"]
        if self.pods and all(p.ip.endswith("/32") for p in self.pods):
            facts.append("每个 pod 的 eth0 都是 /32 地址")
        prefixes = {p.ip.split("/")[-1] for p in self.pods if "/" in p.ip}
        if self.pods and len(prefixes) == 1 and prefixes != {"32"}:
            facts.append(f"每个 pod 的 eth0 都是 /{next(iter(prefixes))} 地址")
        macs = {p.cali.mac for p in self.pods if p.cali}
        bridges = {p.cali.master for p in self.pods if p.cali}
        if self.pods and all(p.cali for p in self.pods) and None not in bridges:
            facts.append("经 veth 对连到节点上的网桥 " + "、".join(sorted(map(str, bridges))) +
                         "（每个 veth 的节点一端都是它的端口）")
        elif self.pods and all(p.cali for p in self.pods):
            facts.append("经 veth 对连到节点上的 cali 设备" +
                         (f"（MAC 都是 {next(iter(macs))}）" if len(macs) == 1 else ""))
        for gateway in self.gateways:
            owners = self.owners(gateway)
            spoken = f"pod 的网关 {gateway} " + (
                "不属于任何接口（所有命名空间的 ip addr 里都没有它）" if not owners
                else f"属于 {'、'.join(owners)}")
            if all(n.proxy_arp.get(p.cali.name) == "1" for n in self.nodes for p in n.pods
                   if p.cali):
                spoken += "，由 cali 设备的 proxy_arp 代为应答 ARP"
            facts.append(spoken)
        return "，".join(facts) + "。"

    def svg(self) -> str:
        return draw(self)

    def markdown(self) -> str:
        """The figure (inline SVG) and the tables, ready for the page."""
        return svg.figure([self.svg()], self.caption(), "topology") + "\n\n" + self.table() + "\n"


def default_nodes(lab: Lab) -> list[str]:
    """The seed's node if it runs two app pods, else the first node that does (else the first)."""
    counts = {n.name: len(lab.select(node=n.name, app="app")) for n in lab.nodes}
    if counts.get(SEED_NODE, 0) >= 2:
        return [SEED_NODE]
    return [next((name for name, count in counts.items() if count >= 2), lab.nodes[0].name)]


def diagram(lab: Lab, nodes: Sequence[str] | None = None,
            pods: Sequence[Pod] | None = None) -> Diagram:
    """Read the network state of ``nodes`` (default: the seed's node) and their pods.

    ``pods``: which of their pods to draw (default: all of them). On a real cluster some have
    no shell to read them with (CoreDNS's and calico-kube-controllers' images have none):
    ``pods=lab.select(app="app")`` draws the Deployment's. The commands run folded on the
    page under the figure.
    """
    names = list(nodes) if nodes is not None else default_nodes(lab)
    drawn = {p.name for p in (pods if pods is not None else lab.pods)}
    read: list[NodeNetwork] = []
    with lab.collapsed("绘图所用的命令与输出：" + "、".join(names)):
        for name in names:
            node = lab.node(name)
            devices = read_devices(node.sh("ip -j addr").stdout, node.sh("ip -j -d link").stdout)
            routes = read_routes(node.sh("ip -j route").stdout)
            networks = []
            for pod in (p for p in lab.pods if p.node == name and p.name in drawn):
                pod_devices = read_devices(pod.sh("ip -j addr").stdout,
                                           pod.sh("ip -j -d link").stdout)
                networks.append(PodNetwork(pod.name, pod_devices, read_routes(pod.sh("ip -j route")
                                                                           .stdout),
                                       pair(pod_devices, devices)))
            calis = [p.cali.name for p in networks if p.cali]
            proxy_arp = read_proxy_arp(node.sh(
                "sysctl " + " ".join(f"net.ipv4.conf.{c}.proxy_arp" for c in calis)
            ).stdout) if calis else {}
            read.append(NodeNetwork(name, devices, routes, tuple(networks), node.tunnel_device,
                                    proxy_arp))
    return Diagram(tuple(read), lab.encapsulation)
