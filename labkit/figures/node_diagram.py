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

import ipaddress
import json
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api.lab import Lab
from ..model import calico
from ..model.errors import LabError
from . import markdown as md
from . import svg

SEED_NODE = "calico-ipip-worker2"
"""The node of the seed's two pods (10.244.244.67 and .68)."""
SYSCTL = re.compile(r"^net\.ipv4\.conf\.(?P<device>.+)\.proxy_arp = (?P<value>\S+)$")


class StateError(LabError):
    """``ip -j`` printed something that is not the JSON it documents."""


# -- what `ip -j` prints ----------------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    """A network device as ``ip -j addr`` and ``ip -j -d link`` report it."""

    name: str
    ifindex: int
    mac: str
    """``address``: a MAC for Ethernet-like devices, whatever ``ip`` prints for others."""
    link_type: str
    """``ether``, ``loopback``, ``ipip``..."""
    mtu: int
    state: str
    kind: str | None = None
    """``veth``, ``vxlan``, ``ipip``... (from ``-d``); None for a plain device."""
    peer_ifindex: int | None = None
    """For a veth: the ifindex of its other end, in the namespace it lives in."""
    addresses: tuple[str, ...] = ()
    """Every address with its prefix, as ``10.244.244.65/32``."""
    vni: int | None = None
    """For a VXLAN device: its VNI, UDP port and local (underlay) address."""
    port: int | None = None
    local: str | None = None
    master: str | None = None
    """The bridge this device is a port of (``master cni0``), if any."""

    @property
    def ipv4(self) -> tuple[str, ...]:
        return tuple(a for a in self.addresses if ":" not in a)


@dataclass(frozen=True)
class Route:
    """One route as ``ip -j route`` reports it; ``str()`` gives ``ip route``'s line."""

    dst: str
    dev: str | None = None
    gateway: str | None = None
    type: str | None = None
    protocol: str | None = None
    scope: str | None = None
    prefsrc: str | None = None
    metric: int | None = None
    flags: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [self.type] if self.type and self.type != "unicast" else []
        parts.append(self.dst)
        for word, value in (("via", self.gateway), ("dev", self.dev), ("proto", self.protocol),
                            ("scope", self.scope), ("src", self.prefsrc), ("metric", self.metric)):
            if value is not None:
                parts.append(f"{word} {value}")
        return " ".join([*parts, *self.flags])


def _json(output: str, command: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(output)
    except json.JSONDecodeError as exc:
        raise StateError(f"`{command}` did not print JSON ({exc}): {output[:200]!r}") from exc
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise StateError(f"`{command}` printed JSON that is not a list of objects")
    return data


def read_devices(addr_json: str, link_json: str) -> tuple[Device, ...]:
    """Devices from ``ip -j addr`` (addresses) and ``ip -j -d link`` (kind, peer, VXLAN)."""
    addresses = {
        d["ifindex"]: tuple(f"{a['local']}/{a['prefixlen']}" for a in d.get("addr_info", [])
                            if "local" in a)
        for d in _json(addr_json, "ip -j addr")
    }
    devices = []
    for d in _json(link_json, "ip -j -d link"):
        info = d.get("linkinfo", {})
        details = info.get("info_data", {}) if isinstance(info.get("info_data"), dict) else {}
        devices.append(Device(
            name=str(d["ifname"]), ifindex=int(d["ifindex"]), mac=str(d.get("address", "")),
            link_type=str(d.get("link_type", "")), mtu=int(d.get("mtu", 0)),
            state=str(d.get("operstate", "")), kind=info.get("info_kind"),
            peer_ifindex=d.get("link_index"), addresses=addresses.get(d["ifindex"], ()),
            vni=details.get("id"), port=details.get("port"), local=details.get("local"),
            master=d.get("master"),
        ))
    return tuple(devices)


def read_routes(route_json: str) -> tuple[Route, ...]:
    """Routes from ``ip -j route``, in the order ``ip`` lists them."""
    routes = []
    for r in _json(route_json, "ip -j route"):
        routes.append(Route(
            dst=str(r["dst"]), dev=r.get("dev"), gateway=r.get("gateway"), type=r.get("type"),
            protocol=r.get("protocol"), scope=r.get("scope"), prefsrc=r.get("prefsrc"),
            metric=r.get("metric"), flags=tuple(r.get("flags", ())),
        ))
    return tuple(routes)


def read_proxy_arp(sysctl_output: str) -> dict[str, str]:
    """``{device: value}`` from ``sysctl net.ipv4.conf.<dev>.proxy_arp ...``."""
    values = {}
    for line in sysctl_output.splitlines():
        match = SYSCTL.match(line.strip())
        if match:
            values[match.group("device")] = match.group("value")
    return values


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
        return _draw(self)

    def markdown(self) -> str:
        """The figure (inline SVG) and the tables, ready for the page."""
        return svg.figure([self.svg()], self.caption(), "topology") + "\n\n" + self.table() + "\n"


def default_nodes(lab: Lab) -> list[str]:
    """The seed's node if it runs two app pods, else the first node that does (else the first)."""
    counts = {n.name: len(lab.select(node=n.name, app="app")) for n in lab.nodes}
    if counts.get(SEED_NODE, 0) >= 2:
        return [SEED_NODE]
    return [next((name for name, count in counts.items() if count >= 2), lab.nodes[0].name)]


def diagram(lab: Lab, nodes: Sequence[str] | None = None) -> Diagram:
    """Read the network state of ``nodes`` (default: the seed's node) and their pods.

    The commands run folded on the page under the figure.
    """
    names = list(nodes) if nodes is not None else default_nodes(lab)
    read: list[NodeNetwork] = []
    with lab.collapsed("绘图所用的命令与输出：" + "、".join(names)):
        for name in names:
            node = lab.node(name)
            devices = read_devices(node.sh("ip -j addr").stdout, node.sh("ip -j -d link").stdout)
            routes = read_routes(node.sh("ip -j route").stdout)
            pods = []
            for pod in (p for p in lab.pods if p.node == name):
                pod_devices = read_devices(pod.sh("ip -j addr").stdout,
                                           pod.sh("ip -j -d link").stdout)
                pods.append(PodNetwork(pod.name, pod_devices, read_routes(pod.sh("ip -j route")
                                                                           .stdout),
                                       pair(pod_devices, devices)))
            calis = [p.cali.name for p in pods if p.cali]
            proxy_arp = read_proxy_arp(node.sh(
                "sysctl " + " ".join(f"net.ipv4.conf.{c}.proxy_arp" for c in calis)
            ).stdout) if calis else {}
            read.append(NodeNetwork(name, devices, routes, tuple(pods), node.tunnel_device,
                                    proxy_arp))
    return Diagram(tuple(read), lab.encapsulation)


# -- drawing ----------------------------------------------------------------------------------

WIDTH = 420.0
MARGIN = 10.0
NODE_X = 22.0
"""Node frames leave room on their left for the tunnel line and on their right for the
underlay line that join several nodes."""
NODE_W = WIDTH - 2 * NODE_X
INSET = 10.0
INNER_X = NODE_X + INSET
INNER_W = NODE_W - 2 * INSET
DEVICE_W = (INNER_W - INSET) / 2
"""The node's tunnel device (left) and eth0 (right) share the bottom of its frame."""
LINE = svg.LINE
LABEL_W = 62.0
"""Where values start after a row label (``eth0``, ``MAC``, ``路由``)."""
BETWEEN = LINE * 4
"""The gap between two node frames, where the lines joining them are named."""
GHOST_PAD = 6.0
"""Between the gateway's dashed box and its text."""


def _wrap(text: str, width: float) -> list[str]:
    """Break a long line (a route) at spaces to fit ``width``; later lines are indented."""
    chars = max(12, int(width / (svg.FONT_SIZE * 0.62)))
    return textwrap.wrap(text, chars, subsequent_indent="  ", break_long_words=True,
                         break_on_hyphens=False) or [""]


Row = tuple[str, str, str]
"""(label, value, CSS classes of the value); a long value wraps onto more lines."""


class _Layout:
    """Draws top to bottom, keeping the current y."""

    def __init__(self, drawing: svg.Drawing, y: float) -> None:
        self.d = drawing
        self.y = y

    def rows(self, x: float, width: float, rows: Sequence[Row], label_w: float = LABEL_W) -> None:
        for label, value, cls in rows:
            for i, line in enumerate(_wrap(value, width - label_w)):
                self.y += LINE
                if i == 0 and label:
                    self.d.text(x, self.y, label, "lk-muted")
                self.d.text(x + label_w, self.y, line, f"lk-mono {cls}".strip())


def _draw(diagram: Diagram) -> str:
    pods = diagram.pods
    owners = {g: diagram.owners(g) for g in diagram.gateways}
    data: dict[str, object] = {
        "nodes": " ".join(n.name for n in diagram.nodes),
        "pod-ips": " ".join(p.ip.split("/")[0] for p in pods),
        "pod-macs": " ".join(p.eth0.mac for p in pods),
        "cali": " ".join(p.cali.name for p in pods if p.cali),
        "cali-macs": " ".join(p.cali.mac for p in pods if p.cali),
        "gateway": " ".join(diagram.gateways),
        "gateway-owners": " ".join(o for found in owners.values() for o in found),
        "encapsulation": diagram.encapsulation,
    }
    title = "节点 " + "、".join(n.name for n in diagram.nodes) + " 上的 pod 网络"
    drawing = svg.Drawing(WIDTH, title=title, kind="topology", data=data)
    layout = _Layout(drawing, MARGIN + LINE)
    drawing.text(MARGIN, layout.y, title, "lk-title")
    joints: list[float] = []
    for number, node in enumerate(diagram.nodes):
        if number:
            _name_between(drawing, diagram, layout.y)
            layout.y += BETWEEN
        joints.append(_draw_node(layout, node, owners, len(diagram.nodes) > 1))
    if len(joints) > 1:
        _join(drawing, joints)
    return drawing.svg(MARGIN)


def _draw_node(layout: _Layout, node: NodeNetwork, owners: Mapping[str, tuple[str, ...]],
               several: bool) -> float:
    """One node frame: each pod above its cali device, then the routes and the node's devices.

    Returns the y where lines to other nodes join its tunnel device and ``eth0``.
    """
    d = layout.d
    top = layout.y + LINE * 0.5
    under = d.mark()
    d.open_group("lk-node", {"node": node.name, "eth0-ip": " ".join(node.eth0.ipv4),
                             "eth0-mac": node.eth0.mac, "tunnel": node.tunnel_device})
    layout.y = top + LINE + 2
    d.text(NODE_X + 8, layout.y, [("节点 ", "lk-muted"), (node.name, "lk-title lk-mono"),
                                  ("（根网络命名空间）", "lk-muted")])
    for pod in node.pods:
        _draw_pod(layout, node, pod, owners)
    # The routing table: the pods' /32 routes through their cali devices are the point.
    layout.y += LINE * 1.2
    d.text(INNER_X, layout.y, [("路由表 ", "lk-title"), ("ip route", "lk-mono lk-muted")])
    # The routes that matter: to the node's pods, and, drawn with other nodes, the tunnel's.
    wanted = {p.cali.name for p in node.pods if p.cali}
    if several:
        wanted.add(node.tunnel_device)
    layout.rows(INNER_X + 8, INNER_W - 8,
                [("", str(r), "lk-accent" if r.dev in wanted else "") for r in node.routes],
                label_w=0)
    # Its own devices: the tunnel device, and eth0 on the underlay.
    layout.y += LINE * 0.8
    box_top, bottoms = layout.y, []
    for x, device, name, role in (
        (INNER_X, node.tunnel, node.tunnel_device, "隧道设备"),
        (INNER_X + DEVICE_W + INSET, node.eth0, "eth0", "接 underlay"),
    ):
        layout.y = box_top
        box = d.mark()
        layout.y += LINE + 2
        d.text(x + 6, layout.y, [(name, "lk-title lk-mono"), (f"  {role}", "lk-muted")])
        layout.rows(x + 6, DEVICE_W - 12, _device_rows(device, name), label_w=0)
        layout.y += 8
        d.rect(x, box_top, DEVICE_W, layout.y - box_top, "lk-box", data={"device": name}, at=box)
        bottoms.append(layout.y)
    layout.y = max(bottoms) + INSET
    d.close_group()
    d.rect(NODE_X, top, NODE_W, layout.y - top, "lk-area", rx=8, at=under)
    return box_top + LINE * 0.7


def _device_rows(device: Device | None, name: str) -> list[Row]:
    if device is None:
        return [("", f"（没有 {name}）", "lk-muted")]
    rows = [("", a, "lk-accent") for a in device.ipv4] or [("", "（无 IPv4 地址）", "lk-muted")]
    rows.append(("", device.mac if device.link_type == "ether"
                 else f"link/{device.link_type} {device.mac}", ""))
    if device.kind == "vxlan":
        rows += [("", f"VXLAN VNI {device.vni}", "lk-accent"), ("", f"UDP {device.port}", "")]
    elif device.kind and device.kind != "veth":
        rows.append(("", device.kind, "lk-accent"))
    return rows


def _draw_pod(layout: _Layout, node: NodeNetwork, pod: PodNetwork,
              owners: Mapping[str, tuple[str, ...]]) -> None:
    """A pod's namespace box, the veth down to its cali device, and the gateway beside it."""
    d = layout.d
    cali = pod.cali
    x, width = INNER_X, INNER_W
    d.open_group("lk-pod", {
        "pod": pod.name, "ip": pod.ip.split("/")[0], "mac": pod.eth0.mac,
        "cali": cali.name if cali else "", "cali-mac": cali.mac if cali else "",
    })
    layout.y += LINE * 0.8
    top, box = layout.y, d.mark()
    layout.y += LINE + 2
    title = [("Pod ", "lk-muted"), (pod.name, "lk-title lk-mono")]
    own = ("（自己的网络命名空间）", "lk-muted")
    if sum(svg.text_width(t, mono="lk-mono" in c) for t, c in [*title, own]) <= width - 16:
        d.text(x + 8, layout.y, [*title, own])
    else:  # a long pod name (calico-kube-controllers-…): the aside goes on a line of its own
        d.text(x + 8, layout.y, title)
        layout.y += LINE
        d.text(x + 8, layout.y, [own])
    layout.rows(x + 8, width - 16, [
        ("eth0", pod.ip, "lk-accent"),
        ("MAC", pod.eth0.mac, ""),
        *[("路由" if i == 0 else "", str(r), "") for i, r in enumerate(pod.routes)],
    ])
    layout.y += 8
    d.rect(x, top, width, layout.y - top, "lk-box", rx=6, at=box)
    # The veth pair: a line from the pod's eth0 down to the cali device in the root namespace.
    veth_x, link_top = x + 24, layout.y
    gateways = pod.gateways
    layout.y += LINE * (1.6 + 2.6 * len(gateways))
    d.line(veth_x, link_top, veth_x, layout.y)
    d.text(veth_x + 8, link_top + LINE, "veth 对", "lk-muted")
    for number, gateway in enumerate(gateways):
        _draw_gateway(d, gateway, owners.get(gateway, ()), cali, node, veth_x,
                      link_top + LINE * (1.4 + 2.6 * number), x + width)
    top, box = layout.y, d.mark()
    if cali is None:
        layout.y += LINE
        d.text(x + 8, layout.y, "（节点上找不到这个 veth 的另一端）", "lk-muted")
    else:
        layout.y += LINE + 2
        d.text(x + 8, layout.y, [(cali.name, "lk-title lk-mono"),
                                 ("  veth 在节点上的一端", "lk-muted")])
        route = next((str(r) for r in node.routes_via(cali.name)), "")
        if cali.master:
            # A bridge port: frames are switched by MAC inside the bridge, no route names it.
            rows = [("MAC", cali.mac, ""), ("master", cali.master, "lk-accent"),
                    ("路由", route or "（网桥的端口：按 MAC 转发，不查路由）",
                     "lk-accent" if route else "lk-muted")]
        else:
            rows = [("MAC", cali.mac, "lk-accent" if cali.mac == calico.CALI_MAC else ""),
                    ("proxy_arp", node.proxy_arp.get(cali.name, "?"), ""),
                    ("路由", route or "（没有经过它的路由）", "lk-accent" if route else "lk-muted")]
        layout.rows(x + 8, width - 16, rows)
    layout.y += 8
    d.rect(x, top, width, layout.y - top, "lk-box", at=box)
    d.close_group()


def _draw_gateway(d: svg.Drawing, gateway: str, owners: Sequence[str], cali: Device | None,
                  node: NodeNetwork, veth_x: float, top: float, right: float) -> None:
    """The pod's gateway as what it is: a dashed address beside the veth that no device owns."""
    answered = cali is not None and node.proxy_arp.get(cali.name) == "1"
    if owners and not answered:
        # The gateway is a real address (a bridge's): its owner answers ARP for itself.
        who: list[svg.Span] = [("ARP 由 ", "lk-muted"), (owners[0].split("/")[-1], "lk-mono"),
                               (" 自己应答", "lk-muted")]
    else:
        who = [("ARP 由 ", "lk-muted"), (cali.name if cali else "?", "lk-mono"),
               (" 代答（proxy_arp）" if answered else " 不代答", "lk-muted")]
    lines: list[list[svg.Span]] = [
        [("网关 ", "lk-muted"), (gateway, "lk-mono lk-accent"),
         ("  无人拥有" if not owners else "  属于 " + " ".join(owners), "lk-muted")],
        who,
    ]
    # The box starts further left when its text needs the room (a cali name is 15 characters),
    # with a margin for fonts wider than the estimate.
    needed = max(sum(svg.text_width(t, mono="lk-mono" in c) for t, c in line) for line in lines)
    x = max(veth_x + 24, min(veth_x + 64, right - 8 - needed - GHOST_PAD * 3))
    height = LINE * 2.3
    d.rect(x, top, right - x - 8, height, "lk-ghost",
           data={"gateway": gateway, "owners": " ".join(owners)})
    d.line(veth_x, top + height / 2, x, top + height / 2, "lk-dashed")
    for number, line in enumerate(lines, 1):
        d.text(x + GHOST_PAD, top + LINE * number, line)


def _name_between(drawing: svg.Drawing, diagram: Diagram, y: float) -> None:
    """Between two node frames: what the dashed (tunnel) and solid (underlay) lines are."""
    tunnel = diagram.nodes[0].tunnel
    how = (f"VXLAN VNI {tunnel.vni}，UDP {tunnel.port}" if tunnel and tunnel.kind == "vxlan"
           else diagram.encapsulation)
    drawing.text(WIDTH / 2, y + LINE * 1.6,
                 [("虚线：隧道 ", "lk-muted"), (how, "lk-mono lk-accent")], anchor="middle")
    drawing.text(WIDTH / 2, y + LINE * 2.7, [
        ("实线：underlay ", "lk-muted"), (_network(diagram.nodes[0].eth0.ipv4), "lk-mono"),
    ], anchor="middle")


def _join(drawing: svg.Drawing, joints: Sequence[float]) -> None:
    """The tunnel devices joined on the left (dashed), the eth0s on the underlay on the right."""
    left, right = NODE_X / 2, WIDTH - NODE_X / 2
    for y in joints:
        drawing.line(INNER_X, y, left, y, "lk-dashed")
        drawing.line(INNER_X + INNER_W, y, right, y)
    drawing.line(left, joints[0], left, joints[-1], "lk-dashed")
    drawing.line(right, joints[0], right, joints[-1])


def _network(addresses: Sequence[str]) -> str:
    for address in addresses:
        try:
            return str(ipaddress.ip_interface(address).network)
        except ValueError:
            continue
    return "?"
