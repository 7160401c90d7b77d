# The contract every lab keeps: the seed's observations, and the Lab API's behaviour.
"""One suite, run against each lab.

The netns replica runs here; the kind lab runs where Docker and kind are,
and is skipped, saying which is missing, elsewhere.  The assertions are what
the seed's screenshots show on a real kind + Calico cluster, so a lab that
passes them shows readers the same things.  Traffic only goes between the
lab's own addresses.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import time
from collections.abc import Iterator

import pytest

import labkit
from labkit.api.lab import Lab, Node, Pod
from labkit.integrations.sybil import NO_LAB
from labkit.model import calico
from labkit.model.errors import CommandTimeout, LabError, LabUnavailable, UnknownTarget


def _kind_unavailable() -> str | None:
    from labkit.backends.kind import cluster

    return cluster.unavailable()


def _native_unavailable(cni: str) -> str | None:
    from labkit.backends.native import backend

    return backend.unavailable(cni)


# (backend, lab): both replica labs here, both real clusters where Docker and kind are.
LABS = [
    pytest.param(("netns", "calico"), id="netns-calico"),
    pytest.param(("netns", "flannel"), id="netns-flannel"),
    pytest.param(("kind", "calico"), id="kind-calico", marks=pytest.mark.kind),
    pytest.param(("kind", "flannel"), id="kind-flannel", marks=pytest.mark.kind),
    # The real cluster in Linux namespaces (as root, the parts built): tests/test_native.py.
    pytest.param(("native", "calico"), id="native-calico", marks=pytest.mark.native),
    # ... and tests/test_native_flannel.py.
    pytest.param(("native", "flannel"), id="native-flannel", marks=pytest.mark.native),
]
calico_only = pytest.mark.only_on("calico")
"""A fact of the seed's Calico cluster (pods behind proxy ARP), not of a Flannel one."""
flannel_only = pytest.mark.only_on("flannel")
"""A fact of the Flannel cluster (pods on a bridge), not of a Calico one."""


@pytest.fixture(autouse=True)
def _only_on(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("only_on")
    if marker is None or "lab" not in request.fixturenames:
        return
    lab = request.getfixturevalue("lab")
    if lab.cni != marker.args[0]:
        pytest.skip(f"a {marker.args[0]}-only fact; this is the {lab.cni} lab")


@pytest.fixture(scope="module", params=LABS)
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    backend, name = request.param
    if backend in ("kind", "native"):
        # A real cluster this machine cannot run (no Docker; not root, or the parts not
        # built) skips, saying why; CI that asked for that lab (--lab kind --require-lab)
        # must not pass by skipping, and neither may one that asked for the parts.
        reason = _kind_unavailable() if backend == "kind" else _native_unavailable(name)
        if reason is not None:
            config = request.config
            if config.getoption("--require-lab", default=False) and \
                    config.getoption("--lab", default="netns") == backend:
                pytest.fail(f"{backend} lab: {reason}", pytrace=False)
            pytest.skip(f"{backend} lab: {reason}")
    try:
        opened = labkit.open_lab(backend, lab=name)  # a lab that fails to build: an error
    except LabUnavailable as exc:
        pytest.skip(f"{NO_LAB}: {exc.one_line()}")
    with opened:
        yield opened


def on_one_node(lab: Lab, count: int = 2) -> list[Pod]:
    """``count`` pods of the Deployment on the same node (four pods on three nodes: two
    are; the Flannel replica puts three on one node)."""
    for node in lab.nodes:
        pods = lab.select(node=node.name, app="app")
        if len(pods) >= count:
            return pods[:count]
    if lab.kind != "netns":
        # A real scheduler spreads four pods over three nodes (2, 1, 1): where it put them
        # is the cluster's choice, not something the lab got wrong.
        pytest.skip(f"the scheduler put no {count} of the Deployment's pods on one node")
    pytest.fail(f"no node runs {count} of the Deployment's pods")


def across_nodes(lab: Lab, pod: Pod) -> Pod:
    others = [p for p in lab.select(app="app") if p.node != pod.node]
    if not others:
        pytest.fail("every pod of the Deployment is on one node")
    return others[0]


# -- the inventory --------------------------------------------------------------------------


@calico_only
def test_the_seeds_cluster(lab: Lab) -> None:
    assert lab.kind in ("netns", "kind", "native")
    assert lab.encapsulation in ("IPIP", "VXLAN")
    for key in ("cluster", "calico", "kernel"):
        assert lab.info[key], key
    assert lab.info["cluster"] == "calico-ipip"
    # The native lab runs v3.23.2, the nearest release the Go module proxy serves.
    assert lab.info["calico"] == ("v3.23.2" if lab.kind == "native" else "v3.23.5")
    assert [n.name for n in lab.nodes] == ["calico-ipip-control-plane", "calico-ipip-worker",
                                          "calico-ipip-worker2"]
    assert len(lab.select(app="app")) == 4


@calico_only
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
        assert pod.veth == "cali" + hashlib.sha1(f"{pod.namespace}.{pod.name}".encode()
                                                 ).hexdigest()[:11]
        assert ipaddress.ip_address(pod.ip) in ipaddress.ip_network(lab.node(pod.node).block)


# -- the seed's observations, in a pod -------------------------------------------------------


@calico_only
def test_the_pod_address_is_a_32_without_broadcast(lab: Lab) -> None:
    pod = lab.pods[0]
    output = pod.sh("ip -4 addr show eth0").stdout
    inet = [line.strip() for line in output.splitlines() if line.strip().startswith("inet ")]
    assert inet == [f"inet {pod.ip}/32 scope global eth0"]
    assert "brd" not in inet[0]


@calico_only
def test_the_pod_routes_everything_to_169_254_1_1(lab: Lab) -> None:
    # The Deployment's: a real cluster's lab.pods also lists CoreDNS's, which has no shell.
    for pod in lab.select(app="app"):
        routes = [line.strip() for line in pod.sh("ip route").stdout.splitlines()]
        assert routes == ["default via 169.254.1.1 dev eth0", "169.254.1.1 dev eth0 scope link"]


@calico_only
def test_the_gateway_answers_arp_as_ee_ee_ee_ee_ee_ee(lab: Lab) -> None:
    pod = lab.pods[0]
    output = pod.sh("arping -c 1 -I eth0 169.254.1.1").output
    assert re.search(r"reply from 169\.254\.1\.1 \[EE:EE:EE:EE:EE:EE\]", output, re.IGNORECASE)


@calico_only
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


@calico_only
def test_the_node_routes_each_local_pod_to_its_cali_device(lab: Lab) -> None:
    first, second = on_one_node(lab)
    routes = [line.strip() for line in lab.node(first.node).sh("ip route").stdout.splitlines()]
    for pod in (first, second):
        assert f"{pod.ip} dev {pod.veth} scope link" in routes


@calico_only
def test_the_cali_device_is_ee_ee_ee_ee_ee_ee_with_proxy_arp(lab: Lab) -> None:
    pod = lab.pods[0]
    node = lab.node(pod.node)
    assert node.sh(f"cat /sys/class/net/{pod.veth}/address").stdout.strip() == calico.CALI_MAC
    link = node.sh(f"ip link show {pod.veth}").stdout
    assert f"link/ether {calico.CALI_MAC}" in link
    assert node.sh(f"sysctl net.ipv4.conf.{pod.veth}.proxy_arp").stdout.strip() == \
        f"net.ipv4.conf.{pod.veth}.proxy_arp = 1"


@calico_only
def test_the_pods_frames_go_to_ee_ee_ee_ee_ee_ee(lab: Lab) -> None:
    source, destination = on_one_node(lab)
    node = lab.node(source.node)
    with node.start(f"tcpdump -n -e -l -i {source.veth} icmp", ready="listening on") as capture:
        source.sh(f"ping -c 2 -W 1 {destination.ip}")
    output = capture.stop().stdout
    assert re.search(rf"> {calico.CALI_MAC}, ethertype IPv4 .*: {re.escape(source.ip)} > "
                     rf"{re.escape(destination.ip)}: ICMP echo request", output), output


@calico_only
def test_ttl_63_on_one_node_and_62_across_nodes(lab: Lab) -> None:
    source, neighbour = on_one_node(lab)
    remote = across_nodes(lab, source)
    assert "ttl=63" in source.sh(f"ping -c 1 -W 2 {neighbour.ip}").stdout
    assert "ttl=62" in source.sh(f"ping -c 1 -W 2 {remote.ip}").stdout


# FIDELITY.md's example, and its sha1 written out: the name is "cali" + its first 11 digits.
SHA1_DEFAULT_APP_1 = "553a67e357d19f73ea0fbaca781ffa97032ebb44"


def test_calicos_veth_name_is_the_documented_hash() -> None:
    assert hashlib.sha1(b"default.app-1").hexdigest() == SHA1_DEFAULT_APP_1
    assert calico.veth_name("default", "app-1") == "cali553a67e357d"
    assert "cali" + SHA1_DEFAULT_APP_1[:11] == "cali553a67e357d"


@calico_only
def test_the_cali_name_is_calicos_hash_of_namespace_and_pod(lab: Lab) -> None:
    for pod in lab.pods:
        # Computed here, as the CNI plugin does, not by the function that named the device.
        digest = hashlib.sha1(f"{pod.namespace}.{pod.name}".encode()).hexdigest()
        assert pod.veth == "cali" + digest[:11]
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


def _running(target: Node | Pod, command: str) -> bool:
    """Whether a process whose command line is ``command`` runs where ``target`` is."""
    pattern = re.sub(r"\.", "[.]", command)  # [.] so the search does not find itself
    found = target.sh("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | "
                      f"grep -c '{pattern} ' || true").stdout.strip()
    return found != "0"


def test_a_background_command_is_stopped_like_ctrl_c(lab: Lab) -> None:
    node = lab.node(lab.pods[0].node)
    background = node.start("echo listening on eth0; sleep 30.31", ready="listening on")
    # The ready text is printed before `sleep` runs: Ctrl-C then would hit the shell between
    # two commands. Wait for the state a reader waits for, the command itself running.
    deadline = time.monotonic() + 10
    while not _running(node, "sleep 30.31"):
        assert time.monotonic() < deadline, "`sleep 30.31` never started"
        time.sleep(0.05)
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
        lab.backend.run("calico-ipip-worker3", "true", 5)


# -- the Flannel cluster (FIDELITY.md, "A kind + Flannel (vxlan) cluster") --------------------

FLANNEL_CONFLIST = {
    "name": "cbr0", "cniVersion": "0.3.1",
    "plugins": [{"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
                {"type": "portmap", "capabilities": {"portMappings": True}}],
}
# What the flannel CNI plugin hands the bridge plugin, captured from the real plugin (FIDELITY.md)
# for the node whose subnet is 10.244.1.0/24.
FLANNEL_DELEGATE = ('{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":'
                    '[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":'
                    '"host-local"},"isDefaultGateway":true,"isGateway":true,"mtu":1450,'
                    '"name":"cbr0","type":"bridge"}')


def subnet(lab: Lab, pod: Pod) -> ipaddress.IPv4Network:
    network = ipaddress.ip_network(lab.node(pod.node).block)
    assert isinstance(network, ipaddress.IPv4Network)
    return network


def mac_of(target: Node | Pod, device: str) -> str:
    return target.sh(f"cat /sys/class/net/{device}/address").stdout.strip()


@flannel_only
def test_the_flannel_cluster(lab: Lab) -> None:
    assert lab.info["cluster"] == "flannel" and lab.info["flannel"] == "v0.22.0"
    assert lab.encapsulation == "VXLAN"
    assert [n.name for n in lab.nodes] == ["flannel-control-plane", "flannel-worker",
                                          "flannel-worker2"]
    # The control-plane registers first: kube-controller-manager gives it the first /24.
    assert lab.node("flannel-control-plane").block == "10.244.0.0/24"
    assert sorted(n.block for n in lab.nodes) == ["10.244.0.0/24", "10.244.1.0/24",
                                                  "10.244.2.0/24"]
    assert len(lab.select(app="app")) == 7  # three can land on one node
    for node in lab.nodes:
        assert node.tunnel_device == "flannel.1"
        assert node.tunnel_ip == node.block.split("/")[0]


@flannel_only
def test_flanneld_writes_subnet_env_and_the_conflist(lab: Lab) -> None:
    for node in lab.nodes:
        net = ipaddress.ip_network(node.block)
        assert node.sh("cat /run/flannel/subnet.env").stdout == (
            "FLANNEL_NETWORK=10.244.0.0/16\n"
            f"FLANNEL_SUBNET={net.network_address + 1}/24\n"
            "FLANNEL_MTU=1450\n"
            "FLANNEL_IPMASQ=true\n")
        conflist = json.loads(node.sh("cat /etc/cni/net.d/10-flannel.conflist").stdout)
        assert conflist == FLANNEL_CONFLIST


@flannel_only
def test_the_flannel_pod_address_is_a_24_with_broadcast(lab: Lab) -> None:
    for pod in lab.select(app="app"):
        net = subnet(lab, pod)
        inet = [line.strip() for line in pod.sh("ip -4 addr show eth0").stdout.splitlines()
                if line.strip().startswith("inet ")]
        assert inet == [f"inet {pod.ip}/24 brd {net.broadcast_address} scope global eth0"]
    if lab.kind == "netns":  # the replica's placement: host-local hands out .2, .3, ...
        assert [p.ip for p in lab.select(node="flannel-worker")] == [
            "10.244.1.2", "10.244.1.3", "10.244.1.4"]


@flannel_only
def test_the_flannel_pod_has_three_routes(lab: Lab) -> None:
    for pod in lab.select(app="app"):
        net = subnet(lab, pod)
        gateway = net.network_address + 1
        routes = [line.strip() for line in pod.sh("ip route").stdout.splitlines()]
        kernel = f"{net} dev eth0 proto kernel scope link src {pod.ip}"
        expected = [f"default via {gateway} dev eth0", f"10.244.0.0/16 via {gateway} dev eth0",
                    kernel]
        if str(net) == "10.244.0.0/24":  # sorts before 10.244.0.0/16's entry
            expected = [expected[0], kernel, expected[1]]
        assert routes == expected
    if lab.kind == "netns":
        first = lab.select(node="flannel-worker")[0]
        assert [line.strip() for line in first.sh("ip route").stdout.splitlines()] == [
            "default via 10.244.1.1 dev eth0", "10.244.0.0/16 via 10.244.1.1 dev eth0",
            "10.244.1.0/24 dev eth0 proto kernel scope link src 10.244.1.2"]


@flannel_only
def test_flannel_1_is_vni_1_port_8472_nolearning_with_an_entry_per_remote_node(lab: Lab) -> None:
    for node in lab.nodes:
        details = node.sh("ip -d link show flannel.1").stdout
        assert " mtu 1450 " in details
        assert re.search(rf"\n    vxlan id 1 local {re.escape(node.ip)} dev eth0 "
                         r"srcport 0 0 dstport 8472 nolearning ", details), details
        own = node.block.split("/")[0]
        assert f"inet {own}/32 scope global flannel.1" in node.sh("ip addr show flannel.1").stdout
        neigh = node.sh("ip neigh show dev flannel.1").stdout.splitlines()
        fdb = node.sh("bridge fdb show dev flannel.1").stdout.splitlines()
        routes = node.sh("ip route").stdout.splitlines()
        for other in (n for n in lab.nodes if n is not node):
            vtep, address = mac_of(other, "flannel.1"), other.block.split("/")[0]
            assert f"{address} lladdr {vtep} PERMANENT " in neigh
            assert f"{vtep} dst {other.ip} self permanent" in fdb
            assert f"{other.block} via {address} dev flannel.1 onlink " in routes
        # A locally administered unicast MAC, like the kernel's random ones.
        assert int(mac_of(node, "flannel.1").split(":")[0], 16) & 3 == 2


@flannel_only
def test_cni0_is_the_gateway_and_every_pod_a_hairpin_port(lab: Lab) -> None:
    for node in lab.nodes:
        pods = lab.select(node=node.name)
        if not pods:
            continue
        net = ipaddress.ip_network(node.block)
        cni0 = node.sh("ip addr show cni0").stdout
        assert f"inet {net.network_address + 1}/24 brd {net.broadcast_address} scope global " \
               "cni0" in cni0
        assert " mtu 1450 " in cni0
        for pod in pods:
            assert re.fullmatch(r"veth[0-9a-f]{8}", pod.veth), pod.veth
            port = node.sh(f"bridge -d link show dev {pod.veth}").stdout
            assert "master cni0" in port and "hairpin on" in port, port


@flannel_only
def test_host_local_keeps_one_file_per_address(lab: Lab) -> None:
    for node in lab.nodes:
        pods = lab.select(node=node.name)
        if not pods:
            continue
        listing = node.sh("ls /var/lib/cni/networks/cbr0").stdout.split()
        assert sorted(listing) == sorted([p.ip for p in pods] + ["last_reserved_ip.0", "lock"])
        # host-local hands out the node's addresses in order: the last reserved is the highest.
        highest = max(pods, key=lambda p: ipaddress.ip_address(p.ip))
        assert node.sh("cat /var/lib/cni/networks/cbr0/last_reserved_ip.0").stdout == highest.ip


@flannel_only
def test_ttl_64_on_one_node_and_62_across_nodes(lab: Lab) -> None:
    source, neighbour = on_one_node(lab)
    remote = across_nodes(lab, source)
    # A bridge is no router: nothing decrements the TTL between two pods of one node.
    assert "ttl=64" in source.sh(f"ping -c 1 -W 2 {neighbour.ip}").stdout
    assert "ttl=62" in source.sh(f"ping -c 1 -W 2 {remote.ip}").stdout


@flannel_only
def test_a_third_pod_sees_the_arp_broadcast_but_not_the_reply_or_the_ping(lab: Lab) -> None:
    asking, asked, third = on_one_node(lab, 3)
    node = lab.node(asking.node)
    asking.sh("ip neigh flush dev eth0")
    with node.start(f"tcpdump -n -l -i {third.veth} arp or icmp",
                    ready="listening on") as on_veth, \
            third.start("tcpdump -n -l -i eth0 arp or icmp", ready="listening on") as in_pod:
        asking.sh(f"ping -c 1 -W 2 {asked.ip}")
        lab.pause(0.5)
    for seen in (on_veth.stop().stdout, in_pod.stop().stdout):
        lines = seen.splitlines()
        assert [line for line in lines
                if f"ARP, Request who-has {asked.ip} tell {asking.ip}" in line], seen
        # The reply (to the asking pod's MAC) and the ping are unicast: not flooded to it.
        assert not [line for line in lines if f"Reply {asked.ip} is-at" in line], seen
        assert not [line for line in lines if "ICMP" in line], seen
    # After the ping the asking pod knows the other pod's own MAC (Calico: only 169.254.1.1's).
    neigh = asking.sh("ip neigh").stdout
    assert re.search(rf"^{re.escape(asked.ip)} dev eth0 lladdr {mac_of(asked, 'eth0')} ",
                     neigh, re.M), neigh


@flannel_only
def test_the_bridge_learns_the_pods_macs(lab: Lab) -> None:
    source, destination = on_one_node(lab)
    source.sh(f"ping -c 1 -W 2 {destination.ip}")
    fdb = lab.node(source.node).sh("bridge fdb show br cni0").stdout.splitlines()
    for pod in (source, destination):
        assert f"{mac_of(pod, 'eth0')} dev {pod.veth} master cni0 " in fdb, fdb


@flannel_only
def test_the_plugins_results_are_what_the_pod_shows(lab: Lab) -> None:
    if lab.kind != "netns":
        pytest.skip("the replica runs the CNI plugins itself and keeps their results; on a "
                    "real cluster containerd does and keeps them to itself")
    for pod in lab.select(app="app"):
        node = lab.node(pod.node)
        net = subnet(lab, pod)
        plugins = [(call["plugin"], call["ifname"]) for call in pod.cni]
        assert plugins == [("loopback", "lo"), ("bridge", "eth0"), ("portmap", "eth0")]
        loopback, bridge, portmap = (call["result"] for call in pod.cni)
        assert [ip["address"] for ip in loopback["ips"]] == ["127.0.0.1/8", "::1/128"]
        assert "inet 127.0.0.1/8 scope host lo" in pod.sh("ip addr show lo").stdout
        # The config the bridge plugin read on stdin, as the flannel plugin writes it.
        config = json.dumps(pod.cni[1]["config"], sort_keys=True, separators=(",", ":"))
        assert config == FLANNEL_DELEGATE.replace("10.244.1.0/24", str(net))
        assert node.sh("ls /var/lib/cni/flannel/ | wc -l").stdout.strip() == \
            str(len(lab.select(node=node.name)))
        gateway = str(net.network_address + 1)
        assert bridge["ips"] == [{"version": "4", "interface": 2,
                                  "address": f"{pod.ip}/24", "gateway": gateway}]
        assert bridge["routes"] == [{"dst": "10.244.0.0/16"}, {"dst": "0.0.0.0/0", "gw": gateway}]
        cni0, veth, eth0 = bridge["interfaces"]
        assert (cni0["name"], cni0["mac"]) == ("cni0", mac_of(node, "cni0"))
        assert (veth["name"], veth["mac"]) == (pod.veth, mac_of(node, pod.veth))
        assert (eth0["name"], eth0["mac"]) == ("eth0", mac_of(pod, "eth0"))
        assert eth0["sandbox"] == f"/run/netns/{pod.netns}"
        assert pod.netns in node.sh(f"ip -o link show {pod.veth}").stdout
        # portmap had no ports to map: it hands the bridge plugin's result on.
        assert portmap["ips"] == bridge["ips"]


@flannel_only
def test_the_diagram_and_the_walk_draw_the_bridge_path(lab: Lab) -> None:
    source, destination = on_one_node(lab)
    node = lab.node(source.node)
    gateway = ipaddress.ip_network(node.block).network_address + 1
    caption = labkit.diagram(lab, nodes=[node.name], pods=lab.select(app="app")).caption()
    assert "经 veth 对连到节点上的网桥 cni0（每个 veth 的节点一端都是它的端口）" in caption
    assert f"pod 的网关 {gateway} 属于 {node.name}/cni0" in caption
    assert "cali" not in caption and "proxy_arp" not in caption
    walk = labkit.walk(source, destination)
    requests = [hop for hop in walk.hops if hop.icmp == "echo request"]
    macs = {(hop.src_mac, hop.dst_mac) for hop in requests}
    assert macs == {(mac_of(source, "eth0"), mac_of(destination, "eth0"))}
    assert [hop.ttl for hop in requests] == [64] * len(requests) and len(requests) == 4
    assert "MAC 头一路不变" in walk.caption() and "TTL 始终是 64" in walk.caption()
