# Normalisers on real lab outputs: they mask what varies between honest runs, and nothing else.
"""The samples in ``tests/samples/outputs/`` were printed by two netns labs started one
after the other (``capture.py`` there records them again)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labkit.book import snippets
from labkit.book.normalize import NORMALIZERS, normalizer

SAMPLES = Path(__file__).parent / "samples" / "outputs"
# What the chapters declare between them: the set a check of these outputs would use.
EVERYTHING = normalizer(["mac", "ifindex", "time", "ids", "neigh", "uuid"])
PAIRS = sorted(p.name.removesuffix(".1.txt") for p in SAMPLES.glob("*.1.txt"))
IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d+)?\b")


def sample(name: str, run: int = 1) -> str:
    return (SAMPLES / f"{name}.{run}.txt").read_text(encoding="utf-8")


def test_the_samples_are_there_and_really_differ_between_runs() -> None:
    assert len(PAIRS) >= 10
    differing = [name for name in PAIRS if sample(name, 1) != sample(name, 2)]
    # Random MACs, uuids, timings: most of the outputs are not byte-identical across labs.
    assert {"pod-ip-addr", "node-ip-link", "node-tcpdump", "pod-arping",
            "pod-ping-same-node"} <= set(differing)


@pytest.mark.parametrize("name", PAIRS)
def test_two_honest_runs_compare_equal_after_normalising(name: str) -> None:
    assert EVERYTHING(sample(name, 1)) == EVERYTHING(sample(name, 2))


@pytest.mark.parametrize("name", PAIRS)
def test_addresses_ttls_and_calicos_mac_are_never_masked(name: str) -> None:
    raw = sample(name)
    masked = EVERYTHING(raw)
    assert IPV4.findall(masked) == IPV4.findall(raw)
    assert re.findall(r"ttl=\d+", masked) == re.findall(r"ttl=\d+", raw)
    assert re.findall(r"icmp_seq=\d+|seq \d+", masked) == re.findall(r"icmp_seq=\d+|seq \d+", raw)
    for fixed in ("ee:ee:ee:ee:ee:ee", "EE:EE:EE:EE:EE:EE", "ff:ff:ff:ff:ff:ff",
                  "00:00:00:00:00:00"):
        assert masked.count(fixed) == raw.count(fixed)
    # The commands themselves (first line) stay as typed.
    assert masked.splitlines()[0] == raw.splitlines()[0]


def test_what_each_normaliser_masks_in_real_outputs() -> None:
    addr = normalizer(["mac"])(sample("pod-ip-addr"))
    assert re.search(r"link/ether <mac1> brd ff:ff:ff:ff:ff:ff link-netnsid 0", addr)
    assert "inet6 <fe80-1>/64 scope link" in addr
    assert "inet6 ::1/128 scope host" in addr  # loopback is not link-local: kept

    ping = normalizer(["time"])(sample("pod-ping-same-node"))
    assert "icmp_seq=1 ttl=63 time=<t> ms" in ping
    assert "3 packets transmitted, 3 received, 0% packet loss, time <t>ms" in ping
    assert "rtt min/avg/max/mdev = <t> ms" in ping

    arping = normalizer(["time"])(sample("pod-arping"))
    assert "Unicast reply from 169.254.1.1 [EE:EE:EE:EE:EE:EE]  <t>ms" in arping

    capture = normalizer(["mac", "time"])(sample("node-tcpdump"))
    assert "<clock> <mac1> > ee:ee:ee:ee:ee:ee, ethertype IPv4 (0x0800), length 98: " \
           "10.244.244.65 > 10.244.244.66: ICMP echo request" in capture

    links = normalizer(["uuid"])(sample("node-ip-link"))
    assert "link-netns cni-<uuid1>" in links and "link-netns cni-<uuid2>" in links


def test_ifindex_masks_the_numbers_that_depend_on_creation_order() -> None:
    # Two pods on one node: same device, its peer created at another moment.
    mine = sample("pod-ip-d-link").split("\n", 1)[1]
    other = sample("other-pod-ip-d-link").split("\n", 1)[1]
    assert "eth0@if4" in mine and "eth0@if5" in other
    assert normalizer(["mac"])(mine) != normalizer(["mac"])(other)
    assert normalizer(["mac", "ifindex"])(mine) == normalizer(["mac", "ifindex"])(other)
    assert normalizer(["ifindex"])(mine).startswith("<n>: eth0@if<n>: ")


def test_ifindex_masks_the_same_numbers_in_ip_json() -> None:
    # Two pods' eth0 in `ip -j addr` as CI's real Flannel cluster printed them and as the
    # replica did (2026-12-07): the node made the second pod's veth first.
    real = ('{"ifindex":2,"link_index":6,"ifname":"eth0","mtu":1450,'
            '"addr_info":[{"family":"inet","local":"10.244.2.2","prefixlen":24}]}')
    replica = real.replace('"link_index":6', '"link_index":5')
    masked = normalizer(["ifindex"])
    assert masked(real) == masked(replica)
    assert '"ifindex":<n>,"link_index":<n>,"ifname":"eth0","mtu":1450' in masked(real)
    # What is not an interface number still counts.
    assert masked(real) != masked(real.replace("10.244.2.2", "10.244.2.3"))
    assert masked(real) != masked(real.replace('"mtu":1450', '"mtu":1500'))


@pytest.mark.parametrize(("name", "before", "after"), [
    # The node forwarded twice instead of once.
    ("pod-ping-same-node", "ttl=63", "ttl=62"),
    # Packets were lost.
    ("pod-ping-same-node", "3 received, 0% packet loss", "0 received, 100% packet loss"),
    # Another address answered.
    ("pod-ping-same-node", "from 10.244.244.66", "from 10.244.244.67"),
    # The gateway's MAC is no longer Calico's.
    ("pod-arping", "[EE:EE:EE:EE:EE:EE]", "[02:42:AC:12:00:04]"),
    # The cali device got a kernel-random MAC.
    ("node-ip-link", "link/ether ee:ee:ee:ee:ee:ee", "link/ether 5a:11:22:33:44:55"),
    # A route is different.
    ("node-ip-route", "scope link", "proto bird"),
    # A reply went to a third MAC instead of the pod that asked.
    ("node-tcpdump", "ee:ee:ee:ee:ee:ee > ", "ee:ee:ee:ee:ee:ee > 0a:0b:0c:0d:0e:0f, "),
])
def test_a_real_change_still_shows_after_normalising(name: str, before: str, after: str) -> None:
    raw = sample(name)
    assert before in raw
    changed = raw.replace(before, after, 1)
    if name == "node-tcpdump":  # keep the line well-formed: drop the MAC that was there
        changed = re.sub(r"(0a:0b:0c:0d:0e:0f, )[0-9a-f:]{17},", r"\1", changed, count=1)
    assert EVERYTHING(changed) != EVERYTHING(raw)


def test_a_missing_line_shows() -> None:
    raw = sample("node-ip-route")
    shorter = "".join(line for line in raw.splitlines(keepends=True) if "blackhole" not in line)
    assert EVERYTHING(shorter) != EVERYTHING(raw)


def test_unknown_normalisers_are_refused_where_they_are_declared() -> None:
    with pytest.raises(KeyError, match="nosuch"):
        normalizer(["mac", "nosuch"])
    with pytest.raises(snippets.SnippetError, match=r"docs_src/x.md:2: unknown normaliser"):
        snippets.parse("---\nnormalize: [nosuch]\n---\n# x\n", "docs_src/x.md")
    with pytest.raises(snippets.SnippetError, match=r"docs_src/x.md:3: unknown normaliser"):
        snippets.parse("# x\n\n```python labkit normalize=mac,nosuch\npass\n```\n",
                       "docs_src/x.md")


def test_every_chapter_declares_only_known_normalisers() -> None:
    source = Path(__file__).resolve().parent.parent / "docs_src"
    for path in sorted(source.glob("*.md")):
        chapter = snippets.load(path, source.parent)
        for snippet in chapter.snippets:
            assert set(chapter.normalizers + snippet.normalizers) <= NORMALIZERS.keys()


def test_bird_times_are_normalised_and_tcpdump_clocks_left_to_time() -> None:
    bird = normalizer(["bird"])
    line = "Mesh_172_18_0_2 BGP      master   up     19:08:37    Established"
    assert bird(line) == "Mesh_172_18_0_2 BGP      master   up     <since>    Established"
    route = "10.244.79.0/26     via 172.18.0.3 on eth0 [Mesh_172_18_0_3 19:08:37] * (100/0) [i]"
    assert "[Mesh_172_18_0_3 <since>]" in bird(route)
    assert bird("19:08:37.123456 IP 10.244.79.1") == "19:08:37.123456 IP 10.244.79.1"


def test_cni_masks_the_bridge_plugins_veth_names_and_the_bridges_timers() -> None:
    one = ("5: veth372a717d@if2: <BROADCAST> master cni0\n"
           "    bridge forward_delay 1500 hello_timer    0.00 gc_timer  289.37 group_fwd_mask 0\n")
    two = ("5: vethc2c1abd8@if2: <BROADCAST> master cni0\n"
           "    bridge forward_delay 1500 hello_timer    0.00 gc_timer  12.05 group_fwd_mask 0\n")
    normalize = normalizer(["cni"])
    assert normalize(one) == normalize(two)
    assert "forward_delay 1500" in normalize(one)  # a setting, not a timer: kept
    assert normalizer(["cni"])("vethc2c1abd8x veth1234") == "vethc2c1abd8x veth1234"
    # A bridge id is its MAC, unpadded; ip -j prints the timers as JSON numbers.
    json_one = '"bridge_id":"8000.5a:a2:0:b6:7a:ba","gc_timer":289.01,"hold_timer":0.00'
    json_two = '"bridge_id":"8000.5a:a2:10:b6:7a:ba","gc_timer":12.50,"hold_timer":0.00'
    both = normalizer(["cni", "mac"])
    assert both(json_one) == both(json_two) == \
        '"bridge_id":"8000.<bridge-id>","gc_timer":<t>,"hold_timer":<t>'


def test_vxlan_port_masks_the_outer_source_port_and_nothing_else() -> None:
    # Two real captures of the tunnel between worker2 and worker: this sample, and the line
    # docs_src/transcripts/04-gateway.yaml recorded (another ICMP id, so another flow hash).
    capture = sample("node-tcpdump-vxlan")
    assert "    172.18.0.4.59118 > 172.18.0.3.4789: VXLAN, flags [I] (0x08), vni 4096" in capture
    recorded = "    172.18.0.4.41160 > 172.18.0.3.4789: VXLAN, flags [I] (0x08), vni 4096"
    port = normalizer(["vxlan-port"])
    assert port(recorded) == \
        "    172.18.0.4.<port> > 172.18.0.3.4789: VXLAN, flags [I] (0x08), vni 4096"
    assert port(capture).count("<port>") == 2  # the request and the reply
    assert port(capture.replace("59118", "41160")) == port(capture)
    assert "172.18.0.3.<port> > 172.18.0.4.4789: VXLAN" in port(capture)
    # The same words in the walk's table, and nothing that is not VXLAN's outer header.
    assert port("VXLAN，UDP 41160 → 4789") == "VXLAN，UDP <port> → 4789"
    for kept in ("172.18.0.4.41160 > 172.18.0.3.8472: OTV", "172.18.0.4.4789 > 172.18.0.3.41160:",
                 "10.244.244.65 > 10.244.79.1: ICMP echo request, id 55, seq 1, length 64"):
        assert port(kept) == kept
    # Another node, another VNI or another destination port still shows.
    everything = normalizer(["mac", "ifindex", "time", "ids", "neigh", "vxlan-port"])
    for old, new in (("172.18.0.4.59118 > ", "172.18.0.2.59118 > "), ("vni 4096", "vni 4097"),
                     ("172.18.0.3.4789:", "172.18.0.3.4790:")):
        assert everything(capture.replace(old, new, 1)) != everything(capture)


def test_podname_masks_kinds_generated_suffixes_and_nothing_else() -> None:
    podname = normalizer(["podname"])
    # Two runs of the seed's Deployment (ReplicaSet hash, then the pod's random suffix).
    assert podname("app-5c7b8d4f6d-x2k9p") == podname("app-6d8d9d5c77-w7cqt") == \
        "app-<hash>-<id>"
    line = "default  app-5c7b8d4f6d-x2k9p  1/1  Running  10.244.244.65  calico-ipip-worker2"
    assert podname(line) == ("default  app-<hash>-<id>  1/1  Running  10.244.244.65  "
                             "calico-ipip-worker2")
    # Node names, Calico's devices and a Deployment's own name are not pod names.
    for kept in ("calico-ipip-worker2", "cali553a67e357d", "calico-kube-controllers",
                 "app", "kube-system"):
        assert podname(kept) == kept
