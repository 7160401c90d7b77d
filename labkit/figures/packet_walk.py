# The packet walk: one ping from pod to pod, captured on every interface it crosses.
"""Trace a ping hop by hop with tcpdump, and draw what the captures saw.

:func:`walk` starts one capture per interface on the path (pod A's ``eth0``,
its ``cali`` device, for another node both nodes' tunnel device and ``eth0``,
pod B's ``cali`` device and ``eth0``), runs ``ping`` in pod A, stops the
captures and parses what tcpdump printed.  Every number in the result comes
from those printed lines, so replaying a build's recorded outputs gives the
same walk.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from ..api.lab import Background, Lab, Pod
from ..model import calico
from ..model.errors import LabError
from ..model.result import Result
from . import markdown as md
from . import svg
from .tcpdump import Frame, parse_capture
from .walk_svg import DIRECTION, NO_LINK, draw

ECHO = ("echo request", "echo reply")
POD_FILTER = "icmp or arp"
"""On a veth: the ping itself, and the ARP that finds 169.254.1.1 and the pod."""
TUNNEL_FILTER = "icmp"
UNDERLAY_FILTER = {
    "VXLAN": f"udp port {calico.VXLAN_PORT} or arp",
    "IPIP": "ip proto 4 or arp",
    "IPIPCrossSubnet": "ip proto 4 or arp",
}
READY = "listening on"
ATTEMPTS = 3
"""Captures are retaken (all of them) when a tcpdump lost packets on Ctrl-C, at most this often."""
SETTLE = 0.1
"""Seconds between the end of the ping and Ctrl-C to the captures."""
# --immediate-mode: without it libpcap hands packets over in blocks, and the ones still in
# an unfinished block when tcpdump gets Ctrl-C are counted as "received by filter" but
# never printed (seen here: a whole ping missing from two of four captures).
TCPDUMP = "tcpdump -l -n -e -v --immediate-mode -i {interface} {filter}"


# -- the walk -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tap:
    """One capture point: an interface in a pod or node, in the order the echo request
    reaches it."""

    where: str
    """The pod or node the capture runs in."""
    interface: str
    direction: str
    """``out`` if the echo request leaves ``where`` through it, ``in`` if it arrives; an
    echo reply goes the other way.  Known from the path, not from the capture."""
    filter: str

    @property
    def command(self) -> str:
        return TCPDUMP.format(interface=shlex.quote(self.interface), filter=self.filter)


@dataclass(frozen=True)
class Outer:
    """The header a tunnel puts around the packet on the underlay (node ``eth0``)."""

    encapsulation: str
    """``VXLAN`` or ``IPIP``."""
    src_mac: str | None
    dst_mac: str | None
    src_ip: str
    dst_ip: str
    ttl: int
    vni: int | None = None
    src_port: int | None = None
    dst_port: int | None = None

    def describe(self) -> str:
        """One line: what carries the packet, between which nodes."""
        how = f"VXLAN VNI {self.vni}" if self.encapsulation == "VXLAN" else self.encapsulation
        if self.dst_port is not None:
            how += f"，UDP {self.src_port} → {self.dst_port}"
        return (f"{how}，{self.src_ip} → {self.dst_ip}，TTL {self.ttl}，"
                f"MAC {self.src_mac or '—'} → {self.dst_mac or '—'}")


@dataclass(frozen=True)
class Hop:
    """The ping's packet as captured at one interface.

    For a tunnelled packet (on a node's ``eth0``), the MACs, IPs and TTL are the
    carried packet's, and :attr:`outer` holds the header around it.
    """

    where: str
    """The pod or node whose interface saw it."""
    interface: str
    direction: str
    """``out`` (leaving ``where``) or ``in`` (arriving)."""
    icmp: str
    """``echo request`` or ``echo reply``."""
    seq: int
    icmp_id: int
    src_mac: str | None
    """None where the packet has no Ethernet header (``tunl0``)."""
    dst_mac: str | None
    src_ip: str
    dst_ip: str
    ttl: int
    outer: Outer | None = None
    time: str = ""
    """tcpdump's timestamp, as printed."""


@dataclass(frozen=True)
class ArpFrame:
    """An ARP message seen by one of the captures (169.254.1.1 answered by proxy, say)."""

    where: str
    interface: str
    src_mac: str
    dst_mac: str
    op: str
    """``request`` or ``reply``."""
    ip: str | None
    """The address asked about (``who-has``) or answered for (``is-at``)."""
    mac: str | None
    """The answer, in a reply."""
    sender_ip: str | None
    """Who asked (``tell``), in a request."""
    time: str = ""

    def describe(self) -> str:
        """The message in tcpdump's words."""
        if self.op == "request":
            return f"who-has {self.ip} tell {self.sender_ip}"
        if self.op == "reply":
            return f"{self.ip} is-at {self.mac}"
        return self.op


@dataclass(frozen=True, eq=False)
class PacketWalk:
    """One ping from pod ``src`` to pod ``dst``, hop by hop, as the captures saw it."""

    src: str
    dst: str
    src_ip: str
    dst_ip: str
    encapsulation: str | None
    """``VXLAN`` or ``IPIP`` across nodes; None on one node."""
    taps: tuple[Tap, ...]
    hops: tuple[Hop, ...]
    """Per ping sequence number: the echo request in path order, then its reply."""
    arp: tuple[ArpFrame, ...]
    """ARP seen by the captures, in path order, each capture's in the order it printed."""
    ping: Result
    lost: tuple[str, ...] = ()
    """Captures whose tcpdump lost packets on Ctrl-C even on the last try (``where if: n``)."""

    @classmethod
    def from_captures(cls, src: Pod, dst: Pod, encapsulation: str | None,
                      captures: Sequence[tuple[Tap, str]], ping: Result,
                      lost: tuple[str, ...] = ()) -> PacketWalk:
        """Build the walk from each tap and what its tcpdump printed on stdout."""
        seen = [(tap, parse_capture(output)) for tap, output in captures]
        hops_at = [(tap, [h for f in frames if (h := _hop(tap, f)) is not None])
                   for tap, frames in seen]
        # Ours are the echo requests pod A sent, and every packet with the same ICMP id;
        # the IPs are then what the captures show, not what we expected.
        ids = [h.icmp_id for _, hops in hops_at for h in hops if h.icmp == "echo request"]
        ours = ids[0] if ids else None
        seqs = sorted({h.seq for _, hops in hops_at for h in hops if h.icmp_id == ours})
        ordered: list[Hop] = []
        for seq in seqs:
            for icmp, taps in (("echo request", hops_at), ("echo reply", hops_at[::-1])):
                for _, hops in taps:
                    ordered += [h for h in hops
                                if h.icmp_id == ours and h.seq == seq and h.icmp == icmp]
        arp = tuple(
            ArpFrame(tap.where, tap.interface, f.src_mac or "", f.dst_mac or "", f.arp.op,
                     f.arp.ip, f.arp.mac, f.arp.sender_ip, f.time)
            for tap, frames in seen for f in frames if f.arp is not None
        )
        return cls(src.name, dst.name, src.ip, dst.ip, encapsulation,
                   tuple(t for t, _ in captures), tuple(ordered), arp, ping, lost)

    # -- what a chapter asserts on ----------------------------------------------------------

    @property
    def echo_request(self) -> tuple[Hop, ...]:
        """The echo request's hops, in path order (every sequence number, in turn)."""
        return tuple(h for h in self.hops if h.icmp == "echo request")

    @property
    def echo_reply(self) -> tuple[Hop, ...]:
        """The echo reply's hops, from pod B back to pod A."""
        return tuple(h for h in self.hops if h.icmp == "echo reply")

    def at(self, where: str, interface: str, icmp: str = "echo request", seq: int = 1) -> Hop:
        """The hop seen on ``interface`` in pod or node ``where``."""
        for hop in self.hops:
            if (hop.where, hop.interface, hop.icmp, hop.seq) == (where, interface, icmp, seq):
                return hop
        raise LookupError(f"no {icmp} seq {seq} was captured on {interface} in {where}")

    @property
    def complete(self) -> bool:
        """Every capture saw every echo request and reply of the ping."""
        seqs = {h.seq for h in self.hops}
        return bool(seqs) and len(self.hops) == 2 * len(self.taps) * len(seqs)

    # -- the page -------------------------------------------------------------------------

    def table(self) -> str:
        """Every hop as a Markdown table (then the ARP seen, if any)."""
        tunnelled = any(h.outer for h in self.hops)
        header = ["#", "报文", "位置", "接口", "源 MAC", "目的 MAC", "源 IP", "目的 IP",
                  "TTL"] + (["外层封装"] if tunnelled else [])
        rows = []
        for number, hop in enumerate(self.hops, 1):
            row = [str(number), md.cell(f"{hop.icmp.split()[1]} {hop.seq}"), md.cell(hop.where),
                   f"{md.cell(hop.interface)} {md.label(DIRECTION[hop.direction])}",
                   md.cell(hop.src_mac or NO_LINK), md.cell(hop.dst_mac or NO_LINK),
                   md.cell(hop.src_ip), md.cell(hop.dst_ip), md.cell(hop.ttl)]
            if tunnelled:
                row.append(md.label(hop.outer.describe()) if hop.outer else "—")
            rows.append(row)
        text = md.table(header, rows)
        if self.arp:
            arp_rows = [[md.cell(a.where), md.cell(a.interface), md.cell(a.src_mac),
                         md.cell(a.dst_mac), md.cell(a.describe())] for a in self.arp]
            text += "\n\n" + md.table(["ARP 所在", "接口", "源 MAC", "目的 MAC", "ARP 报文"],
                                       arp_rows)
        return text

    def caption(self) -> str:
        """One sentence about what the captures show, every claim checked against them."""
        request = [h for h in self.echo_request if h.seq == self.first_seq]
        if not request:
            return f"从 {self.src} ping {self.dst}：抓包里没有看到这次 ping 的报文。"
        facts = [f"从 {self.src}（{self.src_ip}）ping {self.dst}（{self.dst_ip}）："
                 f"echo request 在 {len(request)} 个接口上被抓到"]
        ips = {(h.src_ip, h.dst_ip) for h in request}
        if len(ips) == 1:
            (src_ip, dst_ip), = ips
            facts.append(f"源/目的 IP 始终是 {src_ip} → {dst_ip}")
        changes = _mac_changes(request)
        if changes:
            facts.append(f"MAC 头换了 {changes} 次")
        elif len({(h.src_mac, h.dst_mac) for h in request}) == 1:
            facts.append("MAC 头一路不变")
        facts.append(f"TTL 从 {request[0].ttl} 变为 {request[-1].ttl}"
                     if request[0].ttl != request[-1].ttl
                     else f"TTL 始终是 {request[0].ttl}（一路没有经过路由器）")
        if request[0].where == self.src and request[0].dst_mac == calico.CALI_MAC:
            facts.append(f"pod 发出的帧的目的 MAC 是 {request[0].dst_mac}")
        text = "，".join(facts) + "。"
        if self.lost:
            text += f"（tcpdump 停止时有报文没来得及打印：{'；'.join(self.lost)}。）"
        return text

    @property
    def first_seq(self) -> int:
        return min((h.seq for h in self.hops), default=1)

    def svg(self) -> str:
        """The first echo request, then its reply, each an SVG sequence of hops."""
        return "\n".join(
            draw(self, [h for h in self.hops if h.icmp == icmp and h.seq == self.first_seq],
                  icmp, title)
            for icmp, title in (("echo request", "去程"), ("echo reply", "回程"))
        )

    def markdown(self) -> str:
        """The figure (inline SVG), then the full table folded: the figure is what a reader
        reads (the table has ten columns, too wide for a page, let alone a phone)."""
        table = "".join(f"    {line}\n" if line else "\n" for line in self.table().split("\n"))
        return (svg.figure([self.svg()], self.caption(), "walk")
                + '\n\n??? note "逐跳明细表（每一跳的 MAC、IP、TTL 和外层封装）"\n\n' + table)


def _hop(tap: Tap, frame: Frame) -> Hop | None:
    packet, src_mac, dst_mac, outer = frame.packet, frame.src_mac, frame.dst_mac, None
    if packet is not None and packet.inner is not None and packet.inner.packet is not None:
        outer = Outer(
            encapsulation="VXLAN" if packet.vni is not None else "IPIP",
            src_mac=src_mac, dst_mac=dst_mac, src_ip=packet.src, dst_ip=packet.dst,
            ttl=packet.ttl, vni=packet.vni, src_port=packet.src_port, dst_port=packet.dst_port,
        )
        src_mac, dst_mac = packet.inner.src_mac, packet.inner.dst_mac
        packet = packet.inner.packet
    if packet is None or packet.icmp not in ECHO or packet.seq is None or packet.icmp_id is None:
        return None
    direction = tap.direction if packet.icmp == "echo request" else _opposite(tap.direction)
    return Hop(tap.where, tap.interface, direction, packet.icmp, packet.seq, packet.icmp_id,
               src_mac, dst_mac, packet.src, packet.dst, packet.ttl, outer, frame.time)


def _opposite(direction: str) -> str:
    return "in" if direction == "out" else "out"


def _mac_changes(hops: Sequence[Hop]) -> int:
    """How often the Ethernet header differs from the previous capture's (where both have one)."""
    macs = [(h.src_mac, h.dst_mac) for h in hops if h.src_mac is not None]
    return sum(1 for a, b in itertools.pairwise(macs) if a != b)


def path(lab: Lab, src: Pod, dst: Pod) -> list[Tap]:
    """The interfaces an echo request from ``src`` to ``dst`` crosses, in order."""
    a, b = lab.node(src.node), lab.node(dst.node)
    taps = [Tap(src.name, "eth0", "out", POD_FILTER), Tap(a.name, src.veth, "in", POD_FILTER)]
    if a.name != b.name and not a.tunnel_device:
        # A plain BGP pool: the pod's own packet crosses the underlay, routed by BIRD's routes.
        taps += [Tap(a.name, "eth0", "out", POD_FILTER), Tap(b.name, "eth0", "in", POD_FILTER)]
    elif a.name != b.name:
        underlay = UNDERLAY_FILTER[lab.encapsulation]
        taps += [
            Tap(a.name, a.tunnel_device, "out", TUNNEL_FILTER),
            Tap(a.name, "eth0", "out", underlay),
            Tap(b.name, "eth0", "in", underlay),
            Tap(b.name, b.tunnel_device, "in", TUNNEL_FILTER),
        ]
    taps += [Tap(b.name, dst.veth, "out", POD_FILTER), Tap(dst.name, "eth0", "in", POD_FILTER)]
    return taps


def path_has_tunnel(lab: Lab, src: Pod) -> bool:
    return bool(lab.node(src.node).tunnel_device)


def walk(src: Pod, dst: Pod, *, count: int = 1) -> PacketWalk:
    """Ping ``dst`` from ``src`` ``count`` times with a capture on every interface between.

    The commands (one tcpdump per interface, the ping) run folded on the page under
    the figure.  Raises :class:`~labkit.model.errors.CommandFailed` if the ping fails, after
    stopping every capture.
    """
    if src.name == dst.name:
        raise LabError(f"a walk needs two different pods, not {src.name} twice")
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    lab = src.lab
    taps = path(lab, src, dst)
    encapsulation = lab.encapsulation if src.node != dst.node and path_has_tunnel(lab, src) \
        else None
    with lab.collapsed(f"逐跳抓包所用的命令与输出：从 {src.name} ping {dst.name}"):
        for _ in range(ATTEMPTS):
            captures, ping = _capture_ping(lab, src, dst, taps, count)
            lost = tuple(f"{tap.where} {tap.interface}: {missing}"
                         for tap, result in captures if (missing := unprinted(result.stderr)))
            if not lost:
                break
    return PacketWalk.from_captures(src, dst, encapsulation,
                                    [(tap, result.stdout) for tap, result in captures], ping,
                                    lost)


def _capture_ping(lab: Lab, src: Pod, dst: Pod, taps: Sequence[Tap],
                  count: int) -> tuple[list[tuple[Tap, Result]], Result]:
    """Start every capture, ping, stop every capture (whatever happened in between)."""
    running: list[tuple[Tap, Background]] = []
    try:
        for tap in taps:
            running.append((tap, lab.target(tap.where).start(tap.command, ready=READY)))
        ping = src.sh(f"ping -c {count} -W 2 {shlex.quote(dst.ip)}")
        # Only a pause, not an input: it lets each tcpdump print what is already in its
        # buffer before Ctrl-C makes it drop the rest (see unprinted()).
        lab.pause(SETTLE)
    finally:
        stopped = [(tap, capture.stop()) for tap, capture in running]
    return stopped, ping


def unprinted(stderr: str) -> int:
    """How many packets a stopped tcpdump matched but never printed, from its own counts.

    On Ctrl-C tcpdump stops at once, and packets the kernel had already handed it
    are lost ("1 packet captured, 4 packets received by filter"): such a capture is
    retaken rather than drawn with a hop missing.
    """
    captured = re.search(r"^(\d+) packets? captured$", stderr, re.M)
    received = re.search(r"^(\d+) packets? received by filter$", stderr, re.M)
    if captured is None or received is None:
        return 0
    return max(0, int(received.group(1)) - int(captured.group(1)))
