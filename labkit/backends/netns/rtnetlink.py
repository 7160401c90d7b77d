# The plan's per-pod `ip` lines sent over the kernel's routing netlink, with no `ip` process.
"""Carry out ``ip`` lines of the few forms a pod's setup uses (:func:`plan.pod` and
:func:`plan.node_pods`) by sending the kernel the very requests iproute2 sends for them.

The plan stays written as ``ip`` commands, the ones a reader types; only who sends the
requests changes.  Starting one ``ip -batch`` per pod cost an exec (iproute2 and its
libraries, in the pod's mount namespace) per pod, about half of a large lab's start-up;
here the agent sends the same messages from the namespace itself.  :func:`parse` accepts
only what it can send exactly as iproute2 would (same message type, flags, header and
attributes); any other line makes it answer ``None`` and the whole batch goes to
``ip -batch`` as before.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/veth.h>, <linux/if_addr.h>
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
RTM_NEWLINK = 16
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
IFF_UP = 0x1
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_TXQLEN = 13
IFLA_LINKINFO = 18
IFLA_NUM_TX_QUEUES = 31
IFLA_NUM_RX_QUEUES = 32
IFLA_NET_NS_PID = 19
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFA_ADDRESS = 1
IFA_LOCAL = 2
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1

Names = Callable[[str], int]
"""A device's interface number from its name, in the namespace the requests go to."""


@dataclass(frozen=True)
class Request:
    """One netlink request, and the ``ip`` line it stands for (for error messages)."""

    line: str
    kind: int
    flags: int
    build: Callable[[Names], bytes]
    """The message body (header struct and attributes), once device names can be looked up."""


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * (-length % 4)


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _name(kind: int, name: str) -> bytes:
    return _attr(kind, name.encode() + b"\0")


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, change)


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


# What `ip link add` takes before `type` (and after `peer name X`), and how iproute2 sends it.
_LINK_OPTIONS: dict[str, Callable[[str], bytes]] = {
    "mtu": lambda v: _u32(IFLA_MTU, int(v)),
    "txqueuelen": lambda v: _u32(IFLA_TXQLEN, int(v)),
    "address": lambda v: _attr(IFLA_ADDRESS, _mac(v)),
    "netns": lambda v: _u32(IFLA_NET_NS_PID, int(v)),
    "numtxqueues": lambda v: _u32(IFLA_NUM_TX_QUEUES, int(v)),
    "numrxqueues": lambda v: _u32(IFLA_NUM_RX_QUEUES, int(v)),
}


def _link_options(words: list[str]) -> tuple[int, bytes] | None:
    """``[index N] key value...`` -> (index, attributes), or None for anything else."""
    index, attrs = 0, b""
    if len(words) % 2:
        return None
    for key, value in zip(words[::2], words[1::2], strict=True):
        if key == "index" and value.isdigit():
            index = int(value)
        elif key in _LINK_OPTIONS:
            try:
                attrs += _LINK_OPTIONS[key](value)
            except ValueError:
                return None
        else:
            return None
    return index, attrs


def _veth(line: str, words: list[str]) -> Request | None:
    """``link add NAME [opts] type veth peer name PEER [opts]``."""
    if "type" not in words or words[:2] != ["link", "add"] or len(words) < 8:
        return None
    at = words.index("type")
    if words[at:at + 4] != ["type", "veth", "peer", "name"] or at + 4 >= len(words):
        return None
    name, peer = words[2], words[at + 4]
    mine, theirs = _link_options(words[3:at]), _link_options(words[at + 5:])
    if mine is None or theirs is None or theirs[0]:
        return None
    index, attrs = mine
    peer_info = _ifinfo() + _name(IFLA_IFNAME, peer) + theirs[1]
    info = _name(IFLA_INFO_KIND, "veth") + _attr(IFLA_INFO_DATA,
                                                 _attr(VETH_INFO_PEER, peer_info))
    body = _ifinfo(index) + attrs + _name(IFLA_IFNAME, name) + _attr(IFLA_LINKINFO, info)
    return Request(line, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, lambda _: body)


def _link_up(line: str, words: list[str]) -> Request | None:
    """``link set DEV up``: iproute2 names the device by its number, and changes IFF_UP."""
    if len(words) != 4 or words[:2] != ["link", "set"] or words[3] != "up":
        return None
    dev = words[2]
    return Request(line, RTM_NEWLINK, 0, lambda names: _ifinfo(names(dev), IFF_UP, IFF_UP))


def _ipv4(text: str) -> ipaddress.IPv4Interface | None:
    try:
        address = ipaddress.ip_interface(text)
    except ValueError:
        return None
    return address if isinstance(address, ipaddress.IPv4Interface) else None


def _addr(line: str, words: list[str]) -> Request | None:
    """``addr add A.B.C.D/N dev DEV``: IFA_LOCAL and IFA_ADDRESS both the address, scope
    global, no broadcast (iproute2 adds one only when told ``brd``)."""
    if len(words) != 5 or words[:2] != ["addr", "add"] or words[3] != "dev" or "/" not in words[2]:
        return None
    address = _ipv4(words[2])
    if address is None or address.ip.is_loopback:
        return None
    dev, packed, prefix = words[4], address.ip.packed, address.network.prefixlen

    def build(names: Names) -> bytes:
        header = struct.pack("=BBBBI", socket.AF_INET, prefix, 0, RT_SCOPE_UNIVERSE, names(dev))
        return header + _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)

    return Request(line, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, build)


def _route(line: str, words: list[str]) -> Request | None:
    """``route add DST [via GW] dev DEV [scope link]``, IPv4, in the main table, proto boot;
    without ``via`` iproute2 gives a unicast route scope link, with it scope global."""
    if len(words) < 5 or words[:2] != ["route", "add"]:
        return None
    dst, rest = words[2], words[3:]
    gateway = None
    if rest[:1] == ["via"] and len(rest) >= 2:
        gateway = _ipv4(rest[1])
        if gateway is None or "/" in rest[1]:
            return None
        rest = rest[2:]
    if rest[:1] != ["dev"] or len(rest) < 2:
        return None
    dev, rest = rest[1], rest[2:]
    if rest not in ([], ["scope", "link"]) or (gateway is not None and rest):
        return None
    if dst == "default":
        prefix, attrs = 0, b""
    else:
        network = _ipv4(dst)
        if network is None or network.ip != network.network.network_address:
            return None
        prefix, attrs = network.network.prefixlen, _attr(RTA_DST, network.ip.packed)
    if gateway is not None:
        attrs += _attr(RTA_GATEWAY, gateway.ip.packed)
    scope = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK

    def build(names: Names) -> bytes:
        header = struct.pack("=BBBBBBBBI", socket.AF_INET, prefix, 0, 0, RT_TABLE_MAIN,
                             RTPROT_BOOT, scope, RTN_UNICAST, 0)
        return header + attrs + _u32(RTA_OIF, names(dev))

    return Request(line, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, build)


def parse(lines: Iterable[str]) -> list[Request] | None:
    """The requests for ``lines``, or None if any line is not one of the forms handled here."""
    requests = []
    for line in lines:
        words = line.split()
        request = None
        if words[:1] == ["link"]:
            request = _veth(line, words) if words[1:2] == ["add"] else _link_up(line, words)
        elif words[:1] == ["addr"]:
            request = _addr(line, words)
        elif words[:1] == ["route"]:
            request = _route(line, words)
        if request is None:
            return None
        requests.append(request)
    return requests


class NetlinkError(OSError):
    """The kernel refused a request (or named a device that is not there); ``line`` is the
    ``ip`` command it stood for, and the message says it as ``ip -batch`` would."""

    def __init__(self, code: int, line: str, answer: str = "") -> None:
        answer = answer or f"RTNETLINK answers: {os.strerror(code)}"
        super().__init__(code, f"`ip {line}`: {answer}")
        self.line = line


class _NoDevice(LookupError):
    pass


def _index(dev: str) -> int:
    try:
        return socket.if_nametoindex(dev)
    except OSError:
        raise _NoDevice(dev) from None


def send(requests: list[Request]) -> None:
    """Send ``requests`` one after another, in order, from the network namespace this
    process is in now; the first one the kernel refuses raises :class:`NetlinkError`.

    Device names are looked up just before their request goes, as ``ip -batch`` looks
    each line's up when it gets to it (an earlier line may have made the device)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                         socket.NETLINK_ROUTE)
    try:
        sock.bind((0, 0))
        for seq, request in enumerate(requests, 1):
            try:
                body = request.build(_index)
            except _NoDevice as exc:
                raise NetlinkError(errno.ENODEV, request.line,
                                   f'Cannot find device "{exc.args[0]}"') from None
            header = struct.pack("=IHHII", 16 + len(body), request.kind,
                                 NLM_F_REQUEST | NLM_F_ACK | request.flags, seq, 0)
            sock.send(header + body)
            _acknowledged(sock, seq, request.line)
    finally:
        sock.close()


def _acknowledged(sock: socket.socket, seq: int, line: str) -> None:
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _, got, _ = struct.unpack_from("=IHHII", data, offset)
            if kind == NLMSG_ERROR and got == seq:
                (code,) = struct.unpack_from("=i", data, offset + 16)
                if code:
                    raise NetlinkError(-code, line)
                return
            offset += (length + 3) & ~3
