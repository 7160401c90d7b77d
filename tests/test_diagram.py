# Tests of the topology diagram: `ip -j` parsing, replayed recordings, the page, a live lab.
"""tests/samples/diagram-two-nodes.json is a recording of
``diagram(lab, ["calico-ipip-worker2", "calico-ipip-worker"])`` on a netns lab
(tests/samples/record_walks.py), followed by ``ip route`` in each node and pod."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import markdown
import pytest
from replaying import replay
from svgtext import visible

from labkit import Lab
from labkit.figures.iproute import StateError, read_devices, read_proxy_arp, read_routes
from labkit.figures.node_diagram import Diagram, default_nodes, diagram, pair

SAMPLES = Path(__file__).parent / "samples"
NODES = ["calico-ipip-worker2", "calico-ipip-worker"]
CALI_MAC = "ee:ee:ee:ee:ee:ee"
HOSTILE = '<script>alert("x")</script>|`*_'


def sample() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / "diagram-two-nodes.json").read_text())
    return data


def printed(data: dict[str, Any], target: str, command: str) -> str:
    for call in data["calls"]:
        if call["op"] == "run" and (call["target"], call["command"]) == (target, command):
            return str(call["result"]["stdout"])
    raise LookupError((target, command))


@pytest.fixture(scope="module")
def two_nodes() -> Diagram:
    lab, _ = replay(sample())
    return diagram(lab, NODES)


def shown(figure: Diagram) -> str:
    """Every line of text the SVG draws, one per line."""
    return "\n".join(visible(figure.svg()).texts)


# -- what `ip -j` prints ---------------------------------------------------------------

def test_reads_a_pods_eth0() -> None:
    data = sample()
    pod = "app-5c7b8d4f6d-x2k9p"
    devices = read_devices(printed(data, pod, "ip -j addr"), printed(data, pod, "ip -j -d link"))
    eth0 = next(d for d in devices if d.name == "eth0")
    assert eth0.addresses[0] == "10.244.244.65/32" and eth0.ipv4 == ("10.244.244.65/32",)
    assert eth0.kind == "veth" and eth0.link_type == "ether" and eth0.peer_ifindex is not None
    assert eth0.mac == json.loads(printed(data, pod, "ip -j addr"))[1]["address"]


def test_reads_the_nodes_vxlan_device() -> None:
    data = sample()
    node = "calico-ipip-worker2"
    devices = read_devices(printed(data, node, "ip -j addr"),
                           printed(data, node, "ip -j -d link"))
    vxlan = next(d for d in devices if d.name == "vxlan.calico")
    assert (vxlan.kind, vxlan.vni, vxlan.port, vxlan.local) == \
        ("vxlan", 4096, 4789, "172.18.0.4")
    assert vxlan.ipv4 == ("10.244.244.64/32",) and vxlan.mac == "66:3a:4c:40:ca:e7"


@pytest.mark.parametrize("target", ["calico-ipip-worker2", "calico-ipip-worker",
                                    "app-5c7b8d4f6d-x2k9p", "app-5c7b8d4f6d-hm7vc"])
def test_routes_read_back_as_ip_route_prints_them(target: str) -> None:
    data = sample()
    routes = read_routes(printed(data, target, "ip -j route"))
    lines = [line.rstrip() for line in printed(data, target, "ip route").splitlines()]
    assert [str(r) for r in routes] == lines


def test_pairs_a_pod_with_its_cali_device_by_ifindex() -> None:
    data = sample()
    node = read_devices(printed(data, "calico-ipip-worker2", "ip -j addr"),
                        printed(data, "calico-ipip-worker2", "ip -j -d link"))
    for pod in data["inventory"]["pods"]:
        if pod["node"] != "calico-ipip-worker2":
            continue
        devices = read_devices(printed(data, pod["name"], "ip -j addr"),
                               printed(data, pod["name"], "ip -j -d link"))
        cali = pair(devices, node)
        assert cali is not None and cali.name == pod["veth"] and cali.mac == CALI_MAC


def test_reads_proxy_arp() -> None:
    text = "net.ipv4.conf.cali901351b37ee.proxy_arp = 1\nnet.ipv4.conf.caliabc.proxy_arp = 0\n"
    assert read_proxy_arp(text) == {"cali901351b37ee": "1", "caliabc": "0"}


@pytest.mark.parametrize("output", ["", "not json", '{"ifname": "eth0"}', "[1, 2]"])
def test_output_that_is_not_ip_json_is_an_error(output: str) -> None:
    with pytest.raises(StateError):
        read_routes(output)


# -- the diagram from a recording ------------------------------------------------------

def test_every_pod_is_paired_and_routed(two_nodes: Diagram) -> None:
    assert [n.name for n in two_nodes.nodes] == NODES
    assert [p.name for p in two_nodes.nodes[0].pods] == \
        ["app-5c7b8d4f6d-x2k9p", "app-5c7b8d4f6d-4lqzw"]
    for node in two_nodes.nodes:
        assert node.tunnel is not None and node.tunnel.name == "vxlan.calico"
        for pod in node.pods:
            assert pod.cali is not None and pod.ip.endswith("/32")
            [route] = node.routes_via(pod.cali.name)
            assert str(route) == f"{pod.ip.split('/')[0]} dev {pod.cali.name} scope link"
            assert node.proxy_arp[pod.cali.name] == "1"


def test_the_gateway_is_owned_by_nobody(two_nodes: Diagram) -> None:
    assert two_nodes.gateways == ("169.254.1.1",)
    assert two_nodes.owners("169.254.1.1") == ()
    assert two_nodes.owners("10.244.244.65") == ("app-5c7b8d4f6d-x2k9p/eth0",)


def test_the_svg_shows_every_value_the_lab_printed(two_nodes: Diagram) -> None:
    data = sample()
    text = shown(two_nodes)
    for node in NODES:
        assert node in text
        for device in json.loads(printed(data, node, "ip -j addr")):
            if device["ifname"] in ("eth0", "vxlan.calico") or device["ifname"].startswith("cali"):
                assert device["ifname"] in text and device["address"] in text
                for address in device.get("addr_info", []):
                    if address["family"] == "inet":
                        assert f"{address['local']}/{address['prefixlen']}" in text
    for pod in data["inventory"]["pods"]:
        if pod["node"] not in NODES:
            continue
        eth0 = json.loads(printed(data, pod["name"], "ip -j addr"))[1]
        assert pod["name"] in text and pod["veth"] in text
        assert f"{pod['ip']}/32" in text and eth0["address"] in text
    assert "169.254.1.1" in text and "无人拥有" in text
    assert "VXLAN VNI 4096" in text


def test_the_svg_carries_the_values_for_the_browser_test(two_nodes: Diagram) -> None:
    svg = two_nodes.svg()
    root = svg.split(">", 1)[0]
    assert 'class="labkit-diagram"' in root and 'data-kind="topology"' in root
    assert 'data-pod-ips="10.244.244.65 10.244.244.66 10.244.79.1"' in root
    assert 'data-gateway="169.254.1.1"' in root and 'data-gateway-owners=""' in root
    assert 'data-cali="cali901351b37ee cali163bc537571 calid46ceabfbbc"' in root
    assert svg.count('class="lk-pod"') == 3 and svg.count('class="lk-node"') == 2
    assert svg.count('class="lk-ghost"') == 3  # 169.254.1.1, dashed, beside each veth


def test_the_default_is_the_seeds_node() -> None:
    lab, replayer = replay(sample())
    assert default_nodes(lab) == ["calico-ipip-worker2"]
    figure = diagram(lab)
    assert [n.name for n in figure.nodes] == ["calico-ipip-worker2"]
    assert len(figure.pods) == 2
    assert replayer.leftover()[0]["target"] == "calico-ipip-worker"  # nothing else was asked


def test_markdown_is_one_html_block_then_tables(two_nodes: Diagram) -> None:
    text = two_nodes.markdown()
    block, _, tables = text.partition("\n\n")
    assert block.startswith('<div class="labkit-figure') and block.endswith("</div>")
    assert "\n\n" not in block and block.count("<svg") == 1
    assert 'width="100%"' in block and "<title>" in block
    rendered = markdown.markdown(text, extensions=["tables", "md_in_html"])
    # Three pods: two of them in one table and one in another (two a table, so it fits a
    # phone), then the nodes' table.
    assert rendered.count("<table>") == 3 and "<p><svg" not in rendered
    heads = [line for line in tables.splitlines() if line.startswith("| Pod |")]
    assert [head.count("|") for head in heads] == [4, 3]
    assert "`10.244.244.65/32`" in tables and "`cali901351b37ee`" in tables


def test_caption_says_only_what_was_read(two_nodes: Diagram) -> None:
    caption = two_nodes.caption()
    assert "3 个 pod" in caption and "/32" in caption and CALI_MAC in caption
    assert "169.254.1.1 不属于任何接口" in caption and "proxy_arp" in caption


def test_a_hostile_value_in_ip_output_is_shown_not_run() -> None:
    data = sample()
    for call in data["calls"]:
        if call.get("command") == "ip -j -d link" and call["target"] == "app-5c7b8d4f6d-x2k9p":
            devices = json.loads(call["result"]["stdout"])
            devices[1]["address"] = HOSTILE
            call["result"]["stdout"] = json.dumps(devices)
    lab, _ = replay(data)
    figure = diagram(lab, NODES)
    text = figure.markdown()
    rendered = markdown.markdown(text, extensions=["tables", "md_in_html"])
    parsed = visible(rendered)
    assert "script" not in parsed.tags
    assert HOSTILE in "\n".join(parsed.texts)
    assert "<script" not in text
    assert 'data-pod-macs="' in text and "&lt;script&gt;" in text


# -- live ------------------------------------------------------------------------------

def test_live_diagram_shows_what_the_lab_reports(lab: Lab) -> None:
    figure = diagram(lab)
    text = shown(figure)
    [node] = figure.nodes
    pods = [p for p in lab.pods if p.node == node.name]
    assert len(pods) >= 2 and len(figure.pods) == len(pods)
    for pod in pods:
        mac = json.loads(pod.sh("ip -j link show eth0").stdout)[0]["address"]
        assert pod.ip in text and pod.veth in text and mac in text
    assert lab.node(node.name).ip in text
    assert lab.node(node.name).tunnel_device in text
    assert figure.owners("169.254.1.1") == ()
    assert {p.cali.mac for p in figure.pods if p.cali} == {CALI_MAC}
