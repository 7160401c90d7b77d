# The contract every lab keeps: the seed's observations, and the Lab API's behaviour.
"""One suite, run against each lab.

The netns replica runs here; the kind lab runs where Docker and kind are,
and is skipped, saying which is missing, elsewhere.  The assertions are what
the seed's screenshots show on a real kind + Calico cluster, so a lab that
passes them shows readers the same things.  Traffic only goes between the
lab's own addresses.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterator

import pytest

import labkit
from labkit import calico
from labkit.errors import CommandTimeout, LabError, UnknownTarget
from labkit.lab import Lab, Node, Pod


def _kind_unavailable() -> str | None:
    from labkit.kind import cluster

    return cluster.unavailable()


@pytest.fixture(scope="module", params=["netns", pytest.param("kind", marks=pytest.mark.kind)])
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    if request.param == "kind":
        reason = _kind_unavailable()
        if reason is not None:
            # CI that asked for the kind lab (--lab kind --require-lab) must not pass by skipping
            config = request.config
            if config.getoption("--require-lab", default=False) and \
                    config.getoption("--lab", default="netns") == "kind":
                pytest.fail(f"kind lab: {reason}", pytrace=False)
            pytest.skip(f"kind lab: {reason}")
    with labkit.open_lab(request.param) as opened:
        yield opened


def on_one_node(lab: Lab) -> tuple[Pod, Pod]:
    """Two pods of the Deployment on the same node (four pods on three nodes: there are)."""
    for node in lab.nodes:
        pods = lab.select(node=node.name, app="app")
        if len(pods) >= 2:
            return pods[0], pods[1]
    pytest.fail("no node runs two of the Deployment's pods")


def across_nodes(lab: Lab, pod: Pod) -> Pod:
    others = [p for p in lab.select(app="app") if p.node != pod.node]
    if not others:
        pytest.fail("every pod of the Deployment is on one node")
    return others[0]


# -- the inventory --------------------------------------------------------------------------


def test_the_seeds_cluster(lab: Lab) -> None:
    assert lab.backend in ("netns", "kind")
    assert lab.encapsulation in ("IPIP", "VXLAN")
    for key in ("cluster", "calico", "kernel"):
        assert lab.info[key], key
    assert lab.info["cluster"] == "calico-ipip"
    assert lab.info["calico"] == "v3.23.5"
    assert [n.name for n in lab.nodes] == ["calico-ipip-control-plane", "calico-ipip-worker",
                                          "calico-ipip-worker2"]
    assert len(lab.select(app="app")) == 4


def test_nodes_and_pods_are_described_as_a_reader_sees_them(lab: Lab) -> None:
    subnet = ipaddress.ip_network("10.244.0.0/16")
    for node in lab.nodes:
        assert isinstance(node, Node)
        assert node.prompt == f"root@{node.hostname}:/#"
        assert node.tunnel_device == ("tunl0" if lab.encapsulation == "IPIP" else "vxlan.calico")
        block = ipaddress.ip_network(node.block)
        assert block.subnet_of(subnet) and block.prefixlen == 26  # type: ignore[arg-type]
        assert ipaddress.ip_address(node.tunnel_ip) in block
        ipaddress.ip_address(node.ip)
    for pod in lab.pods:
        assert pod.prompt == f"root@{pod.name}:/#" and pod.hostname == pod.name
        assert pod.veth == calico.veth_name(pod.namespace, pod.name)
        assert ipaddress.ip_address(pod.ip) in ipaddress.ip_network(lab.node(pod.node).block)


# -- the seed's observations, in a pod -------------------------------------------------------


def test_the_pod_address_is_a_32_without_broadcast(lab: Lab) -> None:
    pod = lab.pods[0]
    output = pod.sh("ip -4 addr show eth0").stdout
    inet = [line.strip() for line in output.splitlines() if line.strip().startswith("inet ")]
    assert inet == [f"inet {pod.ip}/32 scope global eth0"]
    assert "brd" not in inet[0]


def test_the_pod_routes_everything_to_169_254_1_1(lab: Lab) -> None:
    for pod in lab.pods:
        routes = [line.strip() for line in pod.sh("ip route").stdout.splitlines()]
        assert routes == ["default via 169.254.1.1 dev eth0", "169.254.1.1 dev eth0 scope link"]


def test_the_gateway_answers_arp_as_ee_ee_ee_ee_ee_ee(lab: Lab) -> None:
    pod = lab.pods[0]
    output = pod.sh("arping -c 1 -I eth0 169.254.1.1").output
    assert re.search(r"reply from 169\.254\.1\.1 \[EE:EE:EE:EE:EE:EE\]", output, re.IGNORECASE)


def test_the_gateway_does_not_answer_ping_and_nothing_says_why(lab: Lab) -> None:
    result = lab.pods[0].sh("ping -c 2 -W 1 169.254.1.1", check=False)
    assert result.rc != 0
    assert "100% packet loss" in result.output
    # No ICMP error: the node drops it silently (no "From ... Destination Host Unreachable").
    assert not re.search(r"^From |Unreachable|Time to live exceeded", result.output, re.M)


def test_the_pod_eth0_is_one_end_of_a_veth(lab: Lab) -> None:
    output = lab.pods[0].sh("ip -d link show eth0").stdout
    assert re.search(r"^\d+: eth0@if\d+:", output)
    assert "link-netnsid 0" in output
    assert re.search(r"^\s+veth\b", output, re.M)


# -- ... and on its node -------------------------------------------------------------------


def test_the_node_routes_each_local_pod_to_its_cali_device(lab: Lab) -> None:
    first, second = on_one_node(lab)
    routes = [line.strip() for line in lab.node(first.node).sh("ip route").stdout.splitlines()]
    for pod in (first, second):
        assert f"{pod.ip} dev {pod.veth} scope link" in routes


def test_the_cali_device_is_ee_ee_ee_ee_ee_ee_with_proxy_arp(lab: Lab) -> None:
    pod = lab.pods[0]
    node = lab.node(pod.node)
    assert node.sh(f"cat /sys/class/net/{pod.veth}/address").stdout.strip() == calico.CALI_MAC
    link = node.sh(f"ip link show {pod.veth}").stdout
    assert f"link/ether {calico.CALI_MAC}" in link
    assert node.sh(f"sysctl net.ipv4.conf.{pod.veth}.proxy_arp").stdout.strip() == \
        f"net.ipv4.conf.{pod.veth}.proxy_arp = 1"


def test_the_pods_frames_go_to_ee_ee_ee_ee_ee_ee(lab: Lab) -> None:
    source, destination = on_one_node(lab)
    node = lab.node(source.node)
    with node.start(f"tcpdump -n -e -l -i {source.veth} icmp", ready="listening on") as capture:
        source.sh(f"ping -c 2 -W 1 {destination.ip}")
    output = capture.stop().stdout
    assert re.search(rf"> {calico.CALI_MAC}, ethertype IPv4 .*: {re.escape(source.ip)} > "
                     rf"{re.escape(destination.ip)}: ICMP echo request", output), output


def test_ttl_63_on_one_node_and_62_across_nodes(lab: Lab) -> None:
    source, neighbour = on_one_node(lab)
    remote = across_nodes(lab, source)
    assert "ttl=63" in source.sh(f"ping -c 1 -W 2 {neighbour.ip}").stdout
    assert "ttl=62" in source.sh(f"ping -c 1 -W 2 {remote.ip}").stdout


def test_the_cali_name_is_calicos_hash_of_namespace_and_pod(lab: Lab) -> None:
    for pod in lab.pods:
        assert pod.veth == calico.veth_name(pod.namespace, pod.name)
        link = lab.node(pod.node).sh(f"ip -o link show {pod.veth}").stdout
        assert link.split(":")[1].strip().split("@")[0] == pod.veth


# -- the Lab API -------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["node", "pod"])
def test_stdout_stderr_output_and_rc(lab: Lab, where: str) -> None:
    target = lab.nodes[0] if where == "node" else lab.pods[0]
    command = "sh -c 'echo out; sleep 0.1; echo err >&2; exit 3'"
    before = time.time()
    result = target.sh(command, check=False)
    assert (result.stdout, result.stderr, result.output, result.rc) == \
        ("out\n", "err\n", "out\nerr\n", 3)
    assert (result.command, result.target, result.prompt) == (command, target.name, target.prompt)
    assert before - 1 <= result.started <= time.time() and 0 < result.duration < 10
    assert not result.ok and not result.timed_out
    with pytest.raises(LabError, match="exited with 3"):
        target.sh(command)


def test_output_keeps_the_order_of_stdout_and_stderr(lab: Lab) -> None:
    result = lab.pods[0].sh("echo 1; sleep 0.1; echo 2 >&2; sleep 0.1; echo 3")
    assert result.output == "1\n2\n3\n"


def test_bytes_that_are_not_utf8_are_replaced_and_counted(lab: Lab) -> None:
    result = lab.pods[0].sh("printf '\\377ok\\n'")
    assert (result.stdout, result.invalid_bytes) == ("\ufffdok\n", 1)


def test_a_command_past_its_timeout_is_killed(lab: Lab) -> None:
    pod = lab.pods[0]
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        pod.sh("echo started; sleep 7.77", timeout=1)
    assert time.monotonic() - t0 < 8
    assert caught.value.result.timed_out and caught.value.result.stdout == "started\n"
    # It is gone, not left running in the pod ([.] so the search does not find itself).
    left = pod.sh("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | "
                  "grep -c 'sleep 7[.]77' || true").stdout.strip()
    assert left == "0"


def test_a_background_command_is_stopped_like_ctrl_c(lab: Lab) -> None:
    node = lab.node(lab.pods[0].node)
    background = node.start("echo listening on eth0; sleep 30", ready="listening on")
    result = background.stop()
    assert result.stdout == "listening on eth0\n"
    # 128 + SIGINT, as a shell reports Ctrl-C (not 137: not killed after the grace)
    assert (result.rc, result.timed_out) == (130, False)
    assert background.stop() is result


def test_waiting_for_a_background_command_to_end(lab: Lab) -> None:
    background = lab.pods[0].start("sleep 0.2; echo done")
    result = background.wait(timeout=5)
    assert (result.stdout, result.rc, result.timed_out) == ("done\n", 0, False)
    endless = lab.pods[0].start("echo waiting; sleep 7.78")
    with pytest.raises(CommandTimeout) as caught:
        endless.wait(timeout=0.5)
    assert caught.value.result.stdout == "waiting\n"


def test_a_background_command_that_never_gets_ready(lab: Lab) -> None:
    pod = lab.pods[0]
    with pytest.raises(CommandTimeout):
        pod.start("sleep 30", ready="listening on", timeout=0.5)
    with pytest.raises(LabError, match="before printing 'listening on'"):
        pod.start("echo no such device >&2; exit 1", ready="listening on", timeout=5)


def test_unknown_targets_are_errors_that_list_the_known_ones(lab: Lab) -> None:
    with pytest.raises(UnknownTarget) as caught:
        lab.sh("calico-ipip-worker3", "true")
    assert set(caught.value.known) >= {n.name for n in lab.nodes} | {p.name for p in lab.pods}
    with pytest.raises(UnknownTarget):
        lab.select(node="calico-ipip-worker3", app="app")
    with pytest.raises(UnknownTarget):
        lab._backend.run("calico-ipip-worker3", "true", 5)
