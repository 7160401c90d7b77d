# Records the samples that tests/test_walk.py and tests/test_diagram.py replay.
"""Run :func:`labkit.figures.packet_walk.walk` and :func:`labkit.figures.node_diagram.diagram`
on fresh netns labs and keep every backend call with its answer (labkit's own
:class:`Recorder`), so the tests replay exactly what the lab printed.

Run as root (or with user namespaces) from the repository root::

    .venv/bin/python tests/samples/record_walks.py

The IPIP sample cannot be recorded on a kernel without the ``ipip`` module.  It is
the VXLAN cross-node recording with the tunnel and underlay captures replaced:
the same packets (addresses, TTLs, ICMP ids and sequence numbers, times) built as
IPIP frames, written to a pcap and printed by this machine's real tcpdump
(``tcpdump -n -e -v -r``), so the parser meets tcpdump's own IPIP formatting.
Its outer TTL copies the inner one, as ``tunl0``'s default ``ttl inherit`` does.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labkit import Lab
from labkit.api.recording import Recorder
from labkit.backends.netns import launcher
from labkit.figures.node_diagram import diagram
from labkit.figures.packet_walk import TCPDUMP, TUNNEL_FILTER, UNDERLAY_FILTER, walk
from labkit.figures.tcpdump import Frame, parse_capture

HERE = Path(__file__).resolve().parent


def record(name: str, action: Callable[[Lab], None]) -> dict[str, Any]:
    recorder = Recorder(launcher.start())
    lab = Lab(recorder)
    try:
        action(lab)
    finally:
        lab.close()
    data = {"inventory": recorder.inventory(), "calls": recorder.calls}
    (HERE / name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {name}: {len(recorder.calls)} calls")
    return data


def same_node(lab: Lab) -> None:
    a, b = lab.select(node="calico-ipip-worker2", app="app")
    walk(a, b)


def cross_node(lab: Lab) -> None:
    a = lab.select(node="calico-ipip-worker2", app="app")[0]
    c = lab.select(node="calico-ipip-worker", app="app")[0]
    walk(a, c, count=2)


def two_nodes(lab: Lab) -> None:
    names = ["calico-ipip-worker2", "calico-ipip-worker"]
    diagram(lab, names)
    # What `ip route` prints, to check that Route reads its JSON back into the same lines.
    for target in [*map(lab.node, names), *(p for p in lab.pods if p.node in names)]:
        target.sh("ip route")


# -- the crafted IPIP variant ---------------------------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4(src: str, dst: str, ttl: int, proto: int, payload: bytes, ident: int,
          df: bool) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident,
                         0x4000 if df else 0, ttl, proto, 0,
                         bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + payload


def _icmp(kind: str, ident: int, seq: int) -> bytes:
    body = bytes(range(56))
    head = struct.pack("!BBHHH", 8 if kind == "echo request" else 0, 0, 0, ident, seq)
    return head[:2] + struct.pack("!H", _checksum(head + body)) + head[4:] + body


def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def _seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _pcap(linktype: int, packets: list[tuple[float, bytes]]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    for when, data in packets:
        sec = int(when)
        out += struct.pack("<IIII", sec, round((when - sec) * 1e6), len(data), len(data)) + data
    return out


def _print(linktype: int, packets: list[tuple[float, bytes]]) -> str:
    with tempfile.NamedTemporaryFile(suffix=".pcap") as file:
        file.write(_pcap(linktype, packets))
        file.flush()
        return subprocess.run(["tcpdump", "-n", "-e", "-v", "-r", file.name], check=True,
                              capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}
                              ).stdout


def _inner(frame: Frame) -> tuple[Any, bytes]:
    packet = frame.packet
    assert packet is not None and packet.inner is not None and packet.inner.packet is not None
    p = packet.inner.packet
    assert p.icmp is not None and p.icmp_id is not None and p.seq is not None
    return p, _icmp(p.icmp, p.icmp_id, p.seq)


def craft_ipip(vxlan: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(vxlan))
    data["inventory"]["info"]["encapsulation"] = "IPIP"
    for node in data["inventory"]["nodes"]:
        node["tunnel_device"] = "tunl0"
    handles: dict[str, dict[str, Any]] = {}
    for call in data["calls"]:
        if call["op"] == "start":
            handles[call["handle"]] = call
        if call["op"] != "stop":
            continue
        start = handles[call["handle"]]
        result = call["result"]
        frames = parse_capture(result["stdout"])
        if "-i vxlan.calico " in start["command"]:
            packets = []
            for f in frames:
                p = f.packet
                assert p is not None
                payload = _icmp(p.icmp or "", p.icmp_id or 0, p.seq or 0)
                packets.append((_seconds(f.time), _ipv4(p.src, p.dst, p.ttl, 1, payload,
                                                        0, p.icmp == "echo request")))
            start["command"] = TCPDUMP.format(interface="tunl0", filter=TUNNEL_FILTER)
            text = _print(101, packets)
            result["stderr"] = result["stderr"].replace(
                "listening on vxlan.calico, link-type EN10MB (Ethernet)",
                "listening on tunl0, link-type RAW (Raw IP)")
        elif "-i eth0 udp port" in start["command"]:
            packets = []
            for f in frames:
                assert f.src_mac is not None and f.dst_mac is not None
                link = _mac(f.dst_mac) + _mac(f.src_mac)
                if f.arp is not None:
                    packets.append((_seconds(f.time), link + _arp_bytes(f)))
                    continue
                p, icmp = _inner(f)
                outer = f.packet
                assert outer is not None
                inner = _ipv4(p.src, p.dst, p.ttl, 1, icmp, 0, p.icmp == "echo request")
                packets.append((_seconds(f.time), link + b"\x08\x00" + _ipv4(
                    outer.src, outer.dst, p.ttl, 4, inner, 0, False)))
            start["command"] = TCPDUMP.format(interface="eth0", filter=UNDERLAY_FILTER["IPIP"])
            text = _print(1, packets)
        else:
            continue
        result["command"] = start["command"]
        result["stdout"] = text
        result["output"] = result["stderr"].split("\n", 1)[0] + "\n" + text + \
            result["stderr"].split("\n", 1)[1]
    return data


def _arp_bytes(frame: Frame) -> bytes:
    arp = frame.arp
    assert arp is not None and frame.src_mac is not None
    if arp.op == "request":
        assert arp.sender_ip is not None and arp.ip is not None
        body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, _mac(frame.src_mac),
                           bytes(map(int, arp.sender_ip.split("."))), b"\0" * 6,
                           bytes(map(int, arp.ip.split("."))))
    else:
        assert arp.mac is not None and arp.ip is not None and frame.dst_mac is not None
        body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, _mac(arp.mac),
                           bytes(map(int, arp.ip.split("."))), _mac(frame.dst_mac),
                           b"\0\0\0\0")
    return b"\x08\x06" + body


def main() -> int:
    record("walk-same-node.json", same_node)
    vxlan = record("walk-cross-node-vxlan.json", cross_node)
    record("diagram-two-nodes.json", two_nodes)
    ipip = craft_ipip(vxlan)
    (HERE / "walk-cross-node-ipip.json").write_text(
        json.dumps(ipip, indent=1, ensure_ascii=False) + "\n")
    print("wrote walk-cross-node-ipip.json (crafted, see this script's docstring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
