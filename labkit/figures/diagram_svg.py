# The node diagram drawn: node frames, pods above their cali devices, the lines between nodes.
"""Drawing only: every value comes from the diagram."""

from __future__ import annotations

import ipaddress
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..model import calico
from . import svg
from .iproute import Device

if TYPE_CHECKING:
    from .node_diagram import Diagram, NodeNetwork, PodNetwork


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


def draw(diagram: Diagram) -> str:
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
