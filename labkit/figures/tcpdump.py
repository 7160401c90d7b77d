# What `tcpdump -n -e -v` prints, parsed: frames, IPv4 packets, tunnels, ARP.
"""A parser that fails on what it cannot read, so a change in tcpdump's format
fails the build instead of dropping a hop."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ..model.errors import LabError


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
