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

import dataclasses
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
DIRECTION = {"out": "发出", "in": "收到"}
NO_LINK = "无以太网头"
"""Shown for the MACs of a packet without a link-layer header (``tunl0``, IPIP's inner)."""


class CaptureError(LabError):
    """tcpdump printed a line this parser does not understand; the message quotes it."""


# -- what tcpdump prints ----------------------------------------------------------------

MAC = r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}"
IP = r"\d{1,3}(?:\.\d{1,3}){3}"
STAMP = re.compile(r"(?P<time>(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d+) ")
ETHERNET = re.compile(
    rf"(?P<src>{MAC}) > (?P<dst>{MAC}), ethertype (?P<type>\S+) \(0x[0-9a-f]{{4}}\), "
    r"length \d+: "
)
RAW_IP = re.compile(r"ip: ")
"""What ``-e`` prints on a device with no link-layer header (``tunl0``)."""
IPV4 = re.compile(
    r"\(tos 0x[0-9a-f]+(?:,\s*[A-Za-z-]+(?:\(\d\))?)?, ttl (?P<ttl>\d+), id \d+, offset \d+, "
    r"flags \[[^\]]*\], proto (?P<proto>\S+) \(\d+\), length \d+"
    r"(?:, [^()]*(?:\([^()]*\)[^()]*)*)?\)\s*"
    rf"(?P<src>{IP})(?:\.(?P<sport>\d+))? > (?P<dst>{IP})(?:\.(?P<dport>\d+))?: ?"
)
ICMP_ECHO = re.compile(r"ICMP echo (?P<what>request|reply), id (?P<id>\d+), seq (?P<seq>\d+)")
VXLAN = re.compile(r"VXLAN, flags \[[^\]]*\] \(0x[0-9a-f]+\), vni (?P<vni>\d+)\s*")
ARP = re.compile(
    rf"Ethernet \(len 6\), IPv4 \(len 4\), (?:"
    rf"Request who-has (?P<asked>{IP})(?: \({MAC}\))? tell (?P<tell>{IP})"
    rf"|Reply (?P<ip>{IP}) is-at (?P<mac>{MAC})"
    r"|(?P<other>\S+))"
)


@dataclass(frozen=True)
class Packet:
    """An IPv4 packet as tcpdump printed it; a tunnel's outer packet carries ``inner``."""

    src: str
    dst: str
    ttl: int
    protocol: str
    """``ICMP``, ``UDP``, ``IPIP``... as tcpdump names it."""
    src_port: int | None = None
    dst_port: int | None = None
    icmp: str | None = None
    """``echo request`` or ``echo reply``; None for anything else."""
    icmp_id: int | None = None
    seq: int | None = None
    vni: int | None = None
    """The VXLAN network identifier, for a VXLAN packet."""
    inner: Frame | None = None
    """What a VXLAN or IPIP packet carries (an IPIP one has no MACs)."""


@dataclass(frozen=True)
class ArpMessage:
    op: str
    """``request``, ``reply``, or the word tcpdump printed for anything else."""
    ip: str | None
    """The address asked about (``who-has``) or answered for (``is-at``)."""
    mac: str | None
    """The answer (``is-at``), in a reply."""
    sender_ip: str | None
    """Who asks (``tell``), in a request."""


@dataclass(frozen=True)
class Frame:
    """One packet record tcpdump printed (a timestamp line and its continuation lines)."""

    time: str
    src_mac: str | None
    dst_mac: str | None
    packet: Packet | None = None
    arp: ArpMessage | None = None
    text: str = ""


def parse_capture(output: str) -> list[Frame]:
    """Every packet in what ``tcpdump -n -e -v`` printed on stdout, in order.

    Raises :class:`CaptureError` for a record it cannot read, so a change in
    tcpdump's format fails the build instead of dropping a hop.
    """
    records: list[list[str]] = []
    for line in output.splitlines():
        if STAMP.match(line):
            records.append([line])
        elif line.strip() and records:
            records[-1].append(line)
        elif line.strip():
            raise CaptureError(f"tcpdump printed a line outside any packet: {line!r}")
    return [_record(lines) for lines in records]


def _record(lines: list[str]) -> Frame:
    text = "\n".join(lines)
    stamp = STAMP.match(lines[0])
    assert stamp is not None
    flat = " ".join(line.strip() for line in lines)[stamp.end():]
    try:
        return _frame(flat, stamp.group("time"), text)
    except ValueError as exc:
        raise CaptureError(f"cannot read this tcpdump record ({exc}):\n{text}") from exc


def _frame(flat: str, time: str, text: str = "") -> Frame:
    """A link-layer header (or ``ip:`` for none) and what it carries."""
    ether = ETHERNET.match(flat)
    if ether is None:
        raw = RAW_IP.match(flat)
        return Frame(time, None, None, _packet(flat[raw.end():] if raw else flat), text=text)
    src, dst, rest = ether.group("src"), ether.group("dst"), flat[ether.end():]
    if ether.group("type") == "ARP":
        arp = ARP.match(rest)
        if arp is None:
            raise ValueError("an ARP message in an unknown form")
        return Frame(time, src, dst, arp=_arp(arp), text=text)
    if ether.group("type") != "IPv4":
        raise ValueError(f"ethertype {ether.group('type')}")
    return Frame(time, src, dst, _packet(rest), text=text)


def _arp(match: re.Match[str]) -> ArpMessage:
    if match.group("asked"):
        return ArpMessage("request", match.group("asked"), None, match.group("tell"))
    if match.group("ip"):
        return ArpMessage("reply", match.group("ip"), match.group("mac"), None)
    return ArpMessage(match.group("other").lower(), None, None, None)


def _packet(flat: str) -> Packet:
    header = IPV4.match(flat)
    if header is None:
        raise ValueError("no IPv4 header where one was expected")
    rest, proto = flat[header.end():], header.group("proto")
    sport, dport = header.group("sport"), header.group("dport")
    packet = Packet(header.group("src"), header.group("dst"), int(header.group("ttl")), proto,
                    int(sport) if sport else None, int(dport) if dport else None)
    echo = ICMP_ECHO.match(rest) if proto == "ICMP" else None
    if echo is not None:
        return dataclasses.replace(packet, icmp=f"echo {echo.group('what')}",
                                   icmp_id=int(echo.group("id")), seq=int(echo.group("seq")))
    vxlan = VXLAN.match(rest) if proto == "UDP" else None
    if vxlan is not None:
        return dataclasses.replace(packet, vni=int(vxlan.group("vni")),
                                   inner=_frame(rest[vxlan.end():], ""))
    if proto == "IPIP":
        return dataclasses.replace(packet, inner=Frame("", None, None, _packet(rest)))
    return packet


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
            _draw(self, [h for h in self.hops if h.icmp == icmp and h.seq == self.first_seq],
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


# -- drawing ------------------------------------------------------------------------------

WIDTH = 388.0
PAD = 10.0
CARD_X = 20.0
CONNECTOR = svg.LINE * 1.6
"""The height of the arrow between two captures."""
LABEL_W = 64.0
"""The row labels inside a card (``MAC``, ``IP``, ``TTL``, ``外层``)."""


def _draw(walk: PacketWalk, hops: Sequence[Hop], icmp: str, title: str) -> str:
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
