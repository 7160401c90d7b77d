# Tests of the packet walk: tcpdump parsing, replayed recordings, the page, and live labs.
"""Samples in tests/samples/ are recordings of real walks (tests/samples/record_walks.py);
replaying them runs :func:`labkit.figures.packet_walk.walk` against exactly what the lab printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import markdown
import pytest
from replaying import replay
from svgtext import visible

from labkit import CommandFailed, Lab, LabError
from labkit.figures.packet_walk import Hop, Outer, PacketWalk, Tap, unprinted, walk
from labkit.figures.tcpdump import CaptureError, parse_capture

SAMPLES = Path(__file__).parent / "samples"
CALI_MAC = "ee:ee:ee:ee:ee:ee"
HOSTILE = '<img src=x onerror="alert(1)">|`*_[x](y)'


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def captured(data: dict[str, Any], interface: str, where: str | None = None) -> str:
    """What the capture on ``interface`` (in ``where``) printed, from a recording."""
    starts = {c["handle"]: c for c in data["calls"] if c["op"] == "start"}
    for call in data["calls"]:
        start = starts.get(call.get("handle", ""))
        if call["op"] == "stop" and start and f" -i {interface} " in start["command"] \
                and where in (None, start["target"]):
            return str(call["result"]["stdout"])
    raise LookupError(interface)


def walk_from(name: str, src_node: str, dst_node: str, count: int = 1) -> PacketWalk:
    lab, replayer = replay(sample(name))
    src = lab.select(node=src_node, app="app")[0]
    dst = lab.select(node=dst_node, app="app")[-1]
    result = walk(src, dst, count=count)
    assert replayer.leftover() == []
    return result


@pytest.fixture(scope="module")
def same_node() -> PacketWalk:
    return walk_from("walk-same-node.json", "calico-ipip-worker2", "calico-ipip-worker2")


@pytest.fixture(scope="module")
def vxlan() -> PacketWalk:
    return walk_from("walk-cross-node-vxlan.json", "calico-ipip-worker2", "calico-ipip-worker", 2)


@pytest.fixture(scope="module")
def ipip() -> PacketWalk:
    return walk_from("walk-cross-node-ipip.json", "calico-ipip-worker2", "calico-ipip-worker", 2)


def page(text: str) -> str:
    """The Markdown as the site's Python-Markdown turns it into HTML."""
    return markdown.markdown(text, extensions=["tables", "md_in_html", "attr_list",
                                               "admonition", "pymdownx.details"])


# -- tcpdump's output -------------------------------------------------------------------

def test_parses_ping_and_proxy_arp_on_the_pods_eth0() -> None:
    frames = parse_capture(captured(sample("walk-same-node.json"), "eth0",
                                    "app-5c7b8d4f6d-x2k9p"))
    arp = [f.arp for f in frames if f.arp]
    assert [(a.op, a.ip) for a in arp] == [("request", "169.254.1.1"), ("reply", "169.254.1.1")]
    assert arp[1].mac == CALI_MAC and arp[0].sender_ip == "10.244.244.65"
    echo = [f for f in frames if f.packet]
    assert [f.packet.icmp for f in echo if f.packet] == ["echo request", "echo reply"]
    request = echo[0]
    assert request.dst_mac == CALI_MAC
    assert request.packet and (request.packet.src, request.packet.dst, request.packet.ttl) == \
        ("10.244.244.65", "10.244.244.66", 64)


def test_parses_vxlan_on_the_underlay() -> None:
    frames = parse_capture(captured(sample("walk-cross-node-vxlan.json"), "eth0",
                                    "calico-ipip-worker2"))
    tunnelled = [f for f in frames if f.packet]
    assert len(tunnelled) == 4  # two requests, two replies
    outer = tunnelled[0].packet
    assert outer is not None and outer.protocol == "UDP" and outer.vni == 4096
    assert (outer.src, outer.dst, outer.dst_port) == ("172.18.0.4", "172.18.0.3", 4789)
    assert tunnelled[0].src_mac == "02:42:ac:12:00:04"
    inner = outer.inner
    assert inner is not None and inner.packet is not None
    assert inner.src_mac is not None and inner.src_mac.startswith("66:")
    assert (inner.packet.src, inner.packet.dst, inner.packet.ttl, inner.packet.icmp) == \
        ("10.244.244.65", "10.244.79.1", 63, "echo request")


def test_parses_ipip_on_the_underlay_and_tunl0() -> None:
    data = sample("walk-cross-node-ipip.json")
    underlay = [f for f in parse_capture(captured(data, "eth0", "calico-ipip-worker"))
                if f.packet]
    outer = underlay[0].packet
    assert outer is not None and outer.protocol == "IPIP" and outer.vni is None
    assert outer.inner is not None and outer.inner.src_mac is None
    assert outer.inner.packet is not None and outer.inner.packet.icmp == "echo request"
    tunl0 = parse_capture(captured(data, "tunl0", "calico-ipip-worker2"))
    assert all(f.src_mac is None and f.packet for f in tunl0)
    assert [f.packet.ttl for f in tunl0 if f.packet] == [63, 63, 63, 63]


@pytest.mark.parametrize("line", [
    "15:06:04.674258 62:14:74:4e:bb:a7 > 33:33:00:00:00:16, ethertype IPv6 (0x86dd), length 90: "
    "fe80::1 > ff02::16: HBH ICMP6, multicast listener report v2",
    "15:06:04.674258 something tcpdump never prints",
    "not a packet at all",
])
def test_an_unreadable_record_fails_loudly(line: str) -> None:
    with pytest.raises(CaptureError):
        parse_capture(line + "\n")


def test_empty_capture_has_no_frames() -> None:
    assert parse_capture("") == []


# -- one node ---------------------------------------------------------------------------

def test_same_node_walk_crosses_four_interfaces(same_node: PacketWalk) -> None:
    request = same_node.echo_request
    assert [(h.where, h.interface, h.direction) for h in request] == [
        ("app-5c7b8d4f6d-x2k9p", "eth0", "out"),
        ("calico-ipip-worker2", "cali901351b37ee", "in"),
        ("calico-ipip-worker2", "cali163bc537571", "out"),
        ("app-5c7b8d4f6d-4lqzw", "eth0", "in"),
    ]
    assert same_node.complete and same_node.encapsulation is None
    assert len(same_node.hops) == 8


def test_same_node_ips_stay_and_macs_change(same_node: PacketWalk) -> None:
    request = same_node.echo_request
    assert {(h.src_ip, h.dst_ip) for h in request} == {("10.244.244.65", "10.244.244.66")}
    assert same_node.hops[0].dst_mac == CALI_MAC  # the pod sends to the gateway's MAC
    assert request[0].src_mac != CALI_MAC
    assert (request[0].src_mac, request[0].dst_mac) == (request[1].src_mac, request[1].dst_mac)
    assert (request[2].src_mac, request[2].dst_mac) != (request[1].src_mac, request[1].dst_mac)
    assert request[2].src_mac == CALI_MAC
    assert [h.ttl for h in request] == [64, 64, 63, 63]
    assert same_node.hops[-1].ttl == 63  # the reply, back in pod A
    assert same_node.hops[-1].where == same_node.src


def test_same_node_reply_comes_back_the_same_way(same_node: PacketWalk) -> None:
    reply = same_node.echo_reply
    assert [(h.where, h.interface) for h in reply] == \
        [(h.where, h.interface) for h in reversed(same_node.echo_request)]
    assert [h.direction for h in reply] == ["out", "in", "out", "in"]
    assert {(h.src_ip, h.dst_ip) for h in reply} == {("10.244.244.66", "10.244.244.65")}


def test_proxy_arp_for_the_gateway_is_kept(same_node: PacketWalk) -> None:
    answers = [a for a in same_node.arp if a.op == "reply" and a.ip == "169.254.1.1"]
    assert answers and {a.mac for a in answers} == {CALI_MAC}
    assert any(a.where == same_node.src for a in answers)


def test_at_finds_one_hop(same_node: PacketWalk) -> None:
    hop = same_node.at("calico-ipip-worker2", "cali163bc537571")
    assert hop.ttl == 63
    with pytest.raises(LookupError):
        same_node.at("calico-ipip-worker2", "eth0")


def test_replay_gives_the_same_page(same_node: PacketWalk) -> None:
    again = walk_from("walk-same-node.json", "calico-ipip-worker2", "calico-ipip-worker2")
    assert again.markdown() == same_node.markdown()


# -- across nodes -----------------------------------------------------------------------

def test_vxlan_walk_has_the_outer_header_on_the_underlay(vxlan: PacketWalk) -> None:
    request = [h for h in vxlan.echo_request if h.seq == 1]
    assert [h.interface for h in request] == [
        "eth0", "cali901351b37ee", "vxlan.calico", "eth0", "eth0", "vxlan.calico",
        "calid46ceabfbbc", "eth0"]
    assert [h.ttl for h in request] == [64, 64, 63, 63, 63, 63, 62, 62]
    assert {(h.src_ip, h.dst_ip) for h in request} == {("10.244.244.65", "10.244.79.1")}
    underlay = [h for h in request if h.outer]
    assert [h.where for h in underlay] == ["calico-ipip-worker2", "calico-ipip-worker"]
    for hop in underlay:
        assert hop.outer == Outer("VXLAN", "02:42:ac:12:00:04", "02:42:ac:12:00:03",
                                  "172.18.0.4", "172.18.0.3", 64, 4096, hop.outer.src_port, 4789)
    assert vxlan.encapsulation == "VXLAN" and vxlan.complete


def test_count_two_walks_two_pings(vxlan: PacketWalk) -> None:
    assert sorted({h.seq for h in vxlan.hops}) == [1, 2]
    assert len(vxlan.hops) == 2 * 2 * 8
    assert vxlan.hops[-1].ttl == 62 and vxlan.hops[-1].icmp == "echo reply"


def test_ipip_walk_has_no_link_header_in_tunl0(ipip: PacketWalk) -> None:
    request = [h for h in ipip.echo_request if h.seq == 1]
    assert [h.interface for h in request][2:6] == ["tunl0", "eth0", "eth0", "tunl0"]
    assert request[2].src_mac is None and request[2].ttl == 63
    assert request[3].outer is not None and request[3].outer.encapsulation == "IPIP"
    assert request[3].outer.vni is None and request[3].src_mac is None
    assert request[-1].ttl == 62
    assert "IPIP" in ipip.markdown()


# -- the page ---------------------------------------------------------------------------

def html_block(markdown_text: str) -> str:
    block, _, _ = markdown_text.partition("\n\n")
    return block


def test_markdown_is_one_html_block_then_its_table_folded(same_node: PacketWalk) -> None:
    text = same_node.markdown()
    block = html_block(text)
    assert block.startswith('<div class="labkit-figure') and block.endswith("</div>")
    assert "\n\n" not in block
    assert block.count("<svg") == 2 and 'class="labkit-diagram"' in block
    assert 'width="100%"' in block and 'viewBox="0 0 ' in block
    assert "<title>" in block and 'aria-label="' in block
    assert "var(--md-default-fg-color" in block
    rendered = page(text)
    assert rendered.count("<svg") == 2 and "<table>" in rendered
    assert "&lt;svg" not in rendered and "<p><svg" not in rendered
    # The figure is what shows; the ten-column table waits in a closed box below it.
    figure_ends = rendered.index("</div>", rendered.rindex("</svg>"))
    after = rendered[figure_ends:]
    assert after.startswith('</div>\n\n<details class="note">\n<summary>逐跳明细表'), after[:200]
    assert after.index("<table>") < after.index("</details>")


def test_the_figure_shows_the_captured_values(same_node: PacketWalk) -> None:
    shown = "\n".join(visible(html_block(same_node.markdown())).texts)
    for hop in same_node.echo_request + same_node.echo_reply:
        for value in (hop.src_mac, hop.dst_mac, hop.src_ip, hop.dst_ip, str(hop.ttl),
                      hop.interface, hop.where):
            assert value and value in shown


def test_the_table_lists_every_hop(vxlan: PacketWalk) -> None:
    table = vxlan.table()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(vxlan.hops) + (1 + len(vxlan.arp))
    assert "`4096`" not in table and "VXLAN VNI 4096" in table


def test_caption_states_only_what_the_captures_show(same_node: PacketWalk) -> None:
    caption = same_node.caption()
    assert "10.244.244.65 → 10.244.244.66" in caption
    assert "TTL 从 64 变为 63" in caption and "MAC 头换了 1 次" in caption


def hostile_walk() -> PacketWalk:
    hop = Hop(HOSTILE, HOSTILE, "out", "echo request", 1, 7, HOSTILE, CALI_MAC, "10.0.0.1",
              "10.0.0.2", 64, Outer("VXLAN", HOSTILE, None, "1.1.1.1", "2.2.2.2", 64, 1))
    tap = Tap(HOSTILE, HOSTILE, "out", "icmp")
    ping = walk_from("walk-same-node.json", "calico-ipip-worker2",
                     "calico-ipip-worker2").ping
    return PacketWalk(HOSTILE, "b", "10.0.0.1", "10.0.0.2", None, (tap,), (hop,), (), ping)


def test_a_hostile_value_is_shown_not_run() -> None:
    text = hostile_walk().markdown()
    rendered = page(text)
    parsed = visible(rendered)
    assert "img" not in parsed.tags and "script" not in parsed.tags
    assert '<img src=x onerror="alert(1)">' in "\n".join(parsed.texts)
    table = text.partition("\n\n")[2]
    assert "<img" not in table and "|`" not in table.replace("| `", "")
    header, _, row = [line.strip() for line in table.splitlines()
                      if line.strip().startswith("|")][:3]
    assert row.count("|") == header.count("|")  # no cell was split


def test_walk_needs_two_pods_and_a_count() -> None:
    lab, _ = replay(sample("walk-same-node.json"))
    a, b = lab.select(node="calico-ipip-worker2", app="app")
    with pytest.raises(LabError):
        walk(a, a)
    with pytest.raises(ValueError):
        walk(a, b, count=0)


def test_a_failed_ping_still_stops_every_capture() -> None:
    data = sample("walk-same-node.json")
    ping = next(c for c in data["calls"] if c["op"] == "run")
    ping["result"]["rc"] = 1
    lab, replayer = replay(data)
    a, b = lab.select(node="calico-ipip-worker2", app="app")
    with pytest.raises(CommandFailed):
        walk(a, b)
    assert replayer.leftover() == []  # every capture was stopped


def test_tcpdumps_own_counts_tell_a_lost_packet() -> None:
    assert unprinted("tcpdump: listening on eth0\n1 packet captured\n4 packets received by "
                     "filter\n0 packets dropped by kernel\n") == 3
    assert unprinted("6 packets captured\n6 packets received by filter\n") == 0
    assert unprinted("tcpdump: eth0: No such device exists\n") == 0


def lossy(data: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The recording's calls, but the capture in ``where`` printed one packet of four."""
    calls: list[dict[str, Any]] = json.loads(json.dumps(data["calls"]))
    starts = {c["handle"]: c for c in calls if c["op"] == "start"}
    for call in calls:
        if call["op"] == "stop" and starts[call["handle"]]["target"] == where:
            result = call["result"]
            result["stdout"] = result["stdout"].split("\n", 1)[0] + "\n"
            result["stderr"] = "1 packet captured\n4 packets received by filter\n"
    return calls


def test_captures_that_lost_packets_are_retaken() -> None:
    data = sample("walk-same-node.json")
    first = lossy(data, "app-5c7b8d4f6d-x2k9p")
    lab, replayer = replay({"inventory": data["inventory"], "calls": first + data["calls"]})
    a, b = lab.select(node="calico-ipip-worker2", app="app")
    result = walk(a, b)
    assert replayer.leftover() == [] and result.complete and result.lost == ()


def test_a_capture_that_keeps_losing_packets_is_said_so() -> None:
    data = sample("walk-same-node.json")
    calls = lossy(data, "app-5c7b8d4f6d-x2k9p") * 3
    lab, replayer = replay({"inventory": data["inventory"], "calls": calls})
    a, b = lab.select(node="calico-ipip-worker2", app="app")
    result = walk(a, b)
    assert replayer.leftover() == [] and not result.complete
    assert result.lost == ("app-5c7b8d4f6d-x2k9p eth0: 3",)
    assert "没来得及打印" in result.caption()


# -- live, on the lab the test run uses ------------------------------------------------

def test_live_same_node_walk(lab: Lab) -> None:
    node = lab.nodes[[n.name for n in lab.nodes].index("calico-ipip-worker2")]
    a, b = lab.select(node=node.name, app="app")[:2]
    result = walk(a, b)
    request = result.echo_request
    assert len(request) == 4 and result.complete
    assert {(h.src_ip, h.dst_ip) for h in request} == {(a.ip, b.ip)}
    assert request[0].dst_mac == CALI_MAC and request[2].src_mac == CALI_MAC
    assert (request[0].src_mac, request[0].dst_mac) != (request[2].src_mac, request[2].dst_mac)
    assert [h.ttl for h in request] == [64, 64, 63, 63]
    assert result.hops[-1].ttl == 63


def test_live_cross_node_walk(lab: Lab) -> None:
    a = lab.select(node="calico-ipip-worker2", app="app")[0]
    c = lab.select(node="calico-ipip-worker", app="app")[0]
    result = walk(a, c)
    request = result.echo_request
    assert result.complete and len(request) == 8
    assert request[-1].ttl == 62 and result.hops[-1].ttl == 62
    underlay = [h for h in request if h.outer]
    assert len(underlay) == 2
    for hop in underlay:
        assert hop.outer is not None
        assert (hop.outer.src_ip, hop.outer.dst_ip) == \
            (lab.node(a.node).ip, lab.node(c.node).ip)
        assert hop.outer.encapsulation == lab.encapsulation
        if lab.encapsulation == "VXLAN":
            assert hop.outer.vni == 4096 and hop.outer.dst_port == 4789
    assert request[2].interface == lab.node(a.node).tunnel_device
