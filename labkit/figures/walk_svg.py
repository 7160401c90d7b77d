# The packet walk drawn: one SVG per direction, a card per capture, arrows saying what changed.
"""Drawing only: every value comes from the walk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..model import calico
from . import svg

if TYPE_CHECKING:
    from .packet_walk import Hop, PacketWalk


DIRECTION = {"out": "发出", "in": "收到"}
NO_LINK = "无以太网头"
"""Shown for the MACs of a packet without a link-layer header (``tunl0``, IPIP's inner)."""


WIDTH = 388.0
PAD = 10.0
CARD_X = 20.0
CONNECTOR = svg.LINE * 1.6
"""The height of the arrow between two captures."""
LABEL_W = 64.0
"""The row labels inside a card (``MAC``, ``IP``, ``TTL``, ``外层``)."""


def draw(walk: PacketWalk, hops: Sequence[Hop], icmp: str, title: str) -> str:
    first = hops[0] if hops else None
    data: dict[str, object] = {
        "icmp": icmp, "src-ip": first.src_ip if first else "",
        "dst-ip": first.dst_ip if first else "", "hops": len(hops),
        "ttl-first": first.ttl if first else "", "ttl-last": hops[-1].ttl if hops else "",
        "encapsulation": walk.encapsulation or "",
    }
    drawing = svg.Drawing(WIDTH, title=f"{title}（{icmp}）：从 {walk.src} 到 {walk.dst} 逐跳抓包",
                          kind="walk", data=data)
    y = PAD + svg.FONT_SIZE
    drawing.text(PAD, y, [(f"{title} · ", "lk-title"), (f"ICMP {icmp}", "lk-title lk-mono")])
    if first:
        y += svg.LINE
        drawing.text(PAD, y, [("seq ", "lk-muted"), (str(first.seq), "lk-mono"),
                              ("  id ", "lk-muted"), (str(first.icmp_id), "lk-mono")])
    if icmp == "echo request":
        for arp in walk.arp:
            if arp.where == walk.src and arp.op == "reply":
                y += svg.LINE
                drawing.text(PAD, y, [("ARP 应答 ", "lk-muted"), (arp.describe(), "lk-mono")])
    y += svg.LINE * 0.6
    previous: Hop | None = None
    index = 0
    while index < len(hops):
        where = hops[index].where
        group = []
        while index < len(hops) and hops[index].where == where:
            group.append(hops[index])
            index += 1
        y = _draw_place(drawing, walk, where, group, previous, y)
        previous = group[-1]
    if not hops:
        drawing.text(PAD, y + svg.LINE, "抓包里没有这一程的报文。", "lk-muted")
    return drawing.svg()


def _place_name(walk: PacketWalk, where: str) -> list[svg.Span]:
    if where in (walk.src, walk.dst):
        return [("Pod ", "lk-muted"), (where, "lk-title lk-mono")]
    return [("节点 ", "lk-muted"), (where, "lk-title lk-mono")]


def _card_lines(hop: Hop, previous: Hop | None) -> list[list[svg.Span]]:
    changed = previous is not None and hop.src_mac is not None and \
        (hop.src_mac, hop.dst_mac) != (previous.src_mac, previous.dst_mac)

    def mac(value: str | None) -> svg.Span:
        accent = value == calico.CALI_MAC or changed
        return (value or "", "lk-mono lk-accent" if accent else "lk-mono")

    inner = "内层 " if hop.outer is not None else ""
    macs: list[svg.Span] = [mac(hop.src_mac), (" → ", "lk-muted"), mac(hop.dst_mac)] \
        if hop.src_mac is not None else [(NO_LINK, "lk-muted")]
    lines: list[list[svg.Span]] = [
        [(f"{inner}MAC", "lk-muted"), *macs],
        [(f"{inner}IP", "lk-muted"), (hop.src_ip, "lk-mono"), (" → ", "lk-muted"),
         (hop.dst_ip, "lk-mono")],
        [(f"{inner}TTL", "lk-muted"), (str(hop.ttl), "lk-mono lk-accent" if previous is not None
                               and previous.ttl != hop.ttl else "lk-mono")],
    ]
    if hop.outer is not None:
        outer = hop.outer
        how = f"VXLAN VNI {outer.vni}" if outer.encapsulation == "VXLAN" else outer.encapsulation
        if outer.dst_port is not None:
            how += f" UDP {outer.dst_port}"
        lines += [
            [("外层", "lk-muted"), (how, "lk-mono lk-accent")],
            [("外层 IP", "lk-muted"), (outer.src_ip, "lk-mono"), (" → ", "lk-muted"),
             (outer.dst_ip, "lk-mono"), (f"  TTL {outer.ttl}", "lk-mono")],
            [("外层 MAC", "lk-muted"), (outer.src_mac or "—", "lk-mono"), (" → ", "lk-muted"),
             (outer.dst_mac or "—", "lk-mono")],
        ]
    return lines


def _change_note(before: Hop, after: Hop) -> str:
    """What differs between two consecutive captures, in words, from the captures alone."""
    notes = []
    if before.outer is None and after.outer is not None:
        notes.append(f"封装进 {after.outer.encapsulation}")
    elif before.outer is not None and after.outer is None:
        notes.append("解封装")
    if before.src_mac is not None and after.src_mac is not None:
        same = (before.src_mac, before.dst_mac) == (after.src_mac, after.dst_mac)
        notes.append("MAC 不变" if same else "MAC 变")
    same_ip = (before.src_ip, before.dst_ip) == (after.src_ip, after.dst_ip)
    notes.append("IP 不变" if same_ip else "IP 变")
    notes.append("TTL 不变" if before.ttl == after.ttl else f"TTL {before.ttl}→{after.ttl}")
    return " · ".join(notes)


def _draw_place(drawing: svg.Drawing, walk: PacketWalk, where: str, group: Sequence[Hop],
                previous: Hop | None, y: float) -> float:
    """One pod or node: a shaded area holding a card per interface; returns the next y."""
    top = y + (_connector(drawing, previous, group[0], y) if previous else 0)
    cards = [_card_lines(h, previous if i == 0 else group[i - 1]) for i, h in enumerate(group)]
    heights = [(1 + len(lines)) * svg.LINE + PAD for lines in cards]
    inner = sum(heights) + CONNECTOR * (len(group) - 1)
    area_h = svg.LINE + 6 + inner + PAD
    drawing.open_group("lk-place", {"where": where})
    drawing.rect(PAD / 2, top, WIDTH - PAD, area_h, "lk-area", rx=6)
    drawing.text(PAD + 4, top + svg.LINE, _place_name(walk, where))
    y = top + svg.LINE + 6
    for i, (hop, lines, height) in enumerate(zip(group, cards, heights, strict=True)):
        if i:
            y += _connector(drawing, group[i - 1], hop, y)
        _draw_card(drawing, hop, lines, y, height)
        y += height
    drawing.close_group()
    return top + area_h


def _connector(drawing: svg.Drawing, before: Hop | None, after: Hop, y: float) -> float:
    """The arrow from one capture to the next, with what changed between them."""
    gap = CONNECTOR
    x = CARD_X + 14
    drawing.line(x, y + 2, x, y + gap - 2)
    drawing.arrow_head(x, y + gap - 1, "down")
    if before is not None:
        drawing.text(x + 12, y + gap / 2 + 4, _change_note(before, after), "lk-muted")
    return gap


def _draw_card(drawing: svg.Drawing, hop: Hop, lines: list[list[svg.Span]], y: float,
               height: float) -> None:
    data = {
        "where": hop.where, "interface": hop.interface, "direction": hop.direction,
        "src-mac": hop.src_mac or "", "dst-mac": hop.dst_mac or "", "src-ip": hop.src_ip,
        "dst-ip": hop.dst_ip, "ttl": hop.ttl,
    }
    if hop.outer is not None:
        data |= {"outer-src-ip": hop.outer.src_ip, "outer-dst-ip": hop.outer.dst_ip,
                 "vni": hop.outer.vni if hop.outer.vni is not None else ""}
    drawing.open_group("lk-hop", data)
    drawing.rect(CARD_X, y, WIDTH - CARD_X - PAD, height - 4, "lk-box")
    base = y + svg.LINE
    drawing.text(CARD_X + 8, base, [(hop.interface, "lk-title lk-mono"),
                                    (f"  {DIRECTION[hop.direction]}", "lk-muted")])
    for number, spans in enumerate(lines, 1):
        label, *values = spans
        drawing.text(CARD_X + 8, base + number * svg.LINE, [label])
        drawing.text(CARD_X + 8 + LABEL_W, base + number * svg.LINE, values)
    drawing.close_group()
