# The netns replica prints what a real Calico v3.23.5 kind cluster prints (issue 13), line by
# line; the expected lines and values are FIDELITY.md's, written out here, not computed.
from __future__ import annotations

import ipaddress
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import labkit
from labkit.api.lab import Lab

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
WORKER2 = "calico-ipip-worker2"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with labkit.open_lab() as opened:
        yield opened


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def with_tunl0(lab: Lab) -> bool:
    """Where the kernel has the ipip module, every netns has tunl0@NONE as interface 2."""
    return lab.encapsulation == "IPIP"


# -- 1. txqueuelen 0: no qlen ---------------------------------------------------------------

def test_no_qlen_on_the_cali_device_as_ip_link_and_ip_addr_print_it(lab: Lab) -> None:
    node = lab.node(WORKER2)
    mtu = 1480 if lab.encapsulation == "IPIP" else 1450
    peer = 4 if with_tunl0(lab) else 3
    for pod in lab.select(node=WORKER2):
        link = node.sh(f"ip link show {pod.veth}").stdout.splitlines()[0]
        assert re.fullmatch(
            rf"\d+: {pod.veth}@if{peer}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {mtu} qdisc "
            r"noqueue state UP mode DEFAULT group default ?", link), link
        addr = node.sh(f"ip addr show {pod.veth}").stdout.splitlines()[0]
        assert re.fullmatch(
            rf"\d+: {pod.veth}@if{peer}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {mtu} qdisc "
            r"noqueue state UP group default ?", addr), addr


def test_no_qlen_on_the_pods_eth0_the_nodes_eth0_or_vxlan_calico_but_on_lo(lab: Lab) -> None:
    pod = lab.select(node=WORKER2, app="app")[0]
    eth0 = pod.sh("ip link show eth0").stdout.splitlines()[0]
    assert "qlen" not in eth0 and eth0.rstrip().endswith("state UP mode DEFAULT group default")
    node = lab.node(WORKER2)
    eth0 = node.sh("ip addr show eth0").stdout.splitlines()[0]
    assert re.fullmatch(r"\d+: eth0@if\d+: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc "
                        r"noqueue state UP group default ?", eth0), eth0
    if lab.encapsulation == "VXLAN":
        vxlan = node.sh("ip link show vxlan.calico").stdout.splitlines()[0]
        assert re.fullmatch(r"\d+: vxlan\.calico: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 "
                            r"qdisc noqueue state UNKNOWN mode DEFAULT group default ?",
                            vxlan), vxlan
    for target in (pod, node):
        lo = target.sh("ip link show lo").stdout.splitlines()[0]
        assert lo == ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN "
                      "mode DEFAULT group default qlen 1000")


# -- 2. interface numbers ---------------------------------------------------------------------

def test_the_pods_eth0_is_3_and_its_peer_names_it(lab: Lab) -> None:
    index = 4 if with_tunl0(lab) else 3
    for pod in lab.pods:
        eth0 = pod.sh("ip -o link show eth0").stdout
        assert eth0.startswith(f"{index}: eth0@if"), eth0
        peer = int(eth0.split("@if")[1].split(":")[0])
        cali = lab.node(pod.node).sh(f"ip -o link show {pod.veth}").stdout
        assert cali.startswith(f"{peer}: {pod.veth}@if{index}: "), cali


# -- 3. the node's eth0 on docker's dual-stack kind network ----------------------------------

def test_the_nodes_eth0_is_dual_stack_as_dockers_kind_network(lab: Lab) -> None:
    node = lab.node(WORKER2)
    addr = [line.strip() for line in node.sh("ip addr show eth0").stdout.splitlines()]
    inets = [line for line in addr if line.startswith("inet")]
    assert inets == [
        "inet 172.18.0.4/16 brd 172.18.255.255 scope global eth0",
        "inet6 fc00:f853:ccd:e793::4/64 scope global nodad",
        "inet6 fe80::42:acff:fe12:4/64 scope link",
    ]
    routes = lines(node.sh("ip -6 route").stdout)
    assert "fc00:f853:ccd:e793::/64 dev eth0 proto kernel metric 256 pref medium" in routes
    assert "default via fc00:f853:ccd:e793::1 dev eth0 metric 1024 pref medium" in routes


def test_the_gateway_holds_1_and_drops_ipv6_it_cannot_route(lab: Lab) -> None:
    node = lab.node(WORKER2)
    assert " 0% packet loss" in node.sh("ping -c 1 -W 2 fc00:f853:ccd:e793::1").stdout
    assert " 0% packet loss" in node.sh("ping -c 1 -W 2 fc00:f853:ccd:e793::3").stdout
    # 2001:db8::/32 is for documentation: nobody owns it, and nothing leaves the lab.
    lost = node.sh("ping -c 1 -W 1 2001:db8::1", check=False)
    assert lost.rc == 1 and "100% packet loss" in lost.stdout
    assert not re.search(r"^From |Unreachable", lost.output, re.M)


# -- 4. the cluster's own pods ---------------------------------------------------------------

def test_the_clusters_own_pods_are_real_pods(lab: Lab) -> None:
    dns = lab.select(**{"k8s-app": "kube-dns"})
    assert len(dns) == 2 and all(p.name.startswith("coredns-") for p in dns)
    assert {p.namespace for p in dns} == {"kube-system"}
    by_prefix = {p.name.rsplit("-", 2)[0]: p for p in lab.pods}
    assert by_prefix["calico-kube-controllers"].namespace == "kube-system"
    assert by_prefix["local-path-provisioner"].namespace == "local-path-storage"
    assert len(lab.pods) == 8
    assert {p.namespace for p in lab.select(app="app")} == {"default"}
    assert len(lab.select(app="app")) == 4
    for pod in (*dns, by_prefix["calico-kube-controllers"], by_prefix["local-path-provisioner"]):
        node = lab.node(pod.node)
        assert f"{pod.ip} dev {pod.veth} scope link" in lines(node.sh("ip route").stdout)
        assert f"link-netns {pod.netns}" in node.sh(f"ip link show {pod.veth}").stdout
        assert f"inet {pod.ip}/32 scope global eth0" in pod.sh("ip addr show eth0").stdout


def test_the_app_pods_on_worker2_get_the_seeds_addresses(lab: Lab) -> None:
    assert [p.ip for p in lab.select(node=WORKER2, app="app")] == [
        "10.244.244.67", "10.244.244.68"]
    assert [p.ip for p in lab.select(node=WORKER2) if p.namespace != "default"] == [
        "10.244.244.65", "10.244.244.66"]


def test_labkit_status_lists_every_pod_with_its_namespace(lab: Lab) -> None:
    text = labkit.status(lab).text
    for pod in lab.pods:
        row = next(line for line in text.splitlines() if line.startswith(pod.name + " "))
        assert row.split() == [pod.name, pod.namespace, pod.node, pod.ip, pod.veth]


# -- what a real node picks at random, fixed per pod -----------------------------------------

def test_macs_and_netns_names_are_the_same_in_every_lab(lab: Lab) -> None:
    with labkit.open_lab() as other:
        for pod in lab.pods:
            twin = other.pod(pod.name)
            assert re.fullmatch(r"cni-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                r"[0-9a-f]{12}", pod.netns)
            assert twin.netns == pod.netns
            mac = "cat /sys/class/net/eth0/address"
            assert twin.sh(mac).stdout == pod.sh(mac).stdout
    macs = {pod.sh("cat /sys/class/net/eth0/address").stdout for pod in lab.pods}
    assert len(macs) == len(lab.pods)


# -- FIDELITY.md's example values, as literals ------------------------------------------------

def test_fidelitys_blocks_and_vxlan_mac(lab: Lab) -> None:
    assert {n.name: n.block for n in lab.nodes} == {
        "calico-ipip-control-plane": "10.244.51.192/26",
        "calico-ipip-worker": "10.244.79.0/26",
        "calico-ipip-worker2": "10.244.244.64/26",
    }
    if lab.encapsulation == "VXLAN":
        link = lab.node(WORKER2).sh("ip link show vxlan.calico").stdout
        assert "link/ether 66:3a:4c:40:ca:e7 brd ff:ff:ff:ff:ff:ff" in link


def test_fidelitys_veth_name_for_default_app_1(tmp_path: Path) -> None:
    manifests = copy_manifests(tmp_path)
    replica = yaml.safe_load((manifests / "replica.yaml").read_text())
    replica["pods"][4]["name"] = "app-1"
    (manifests / "replica.yaml").write_text(yaml.safe_dump(replica))
    with labkit.open_lab(manifests=manifests) as lab:
        pod = lab.pod("app-1")
        assert pod.veth == "cali553a67e357d"
        assert "cali553a67e357d@if" in lab.node(pod.node).sh("ip -o link").stdout


# -- 7. IPAM past one block -------------------------------------------------------------------

def copy_manifests(tmp_path: Path) -> Path:
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    return copy


def test_200_pods_on_3_nodes_claim_more_blocks(tmp_path: Path) -> None:
    manifests = copy_manifests(tmp_path)
    nodes = ["calico-ipip-control-plane", "calico-ipip-worker", "calico-ipip-worker2"]
    replica = yaml.safe_load((manifests / "replica.yaml").read_text())
    system = [p for p in replica["pods"] if "namespace" in p]
    replica["pods"] = system + [{"name": f"app-{i}", "node": nodes[i % 3]} for i in range(196)]
    (manifests / "replica.yaml").write_text(yaml.safe_dump(replica))
    deployment = (manifests / "app-deployment.yaml").read_text()
    (manifests / "app-deployment.yaml").write_text(deployment.replace("replicas: 4",
                                                                      "replicas: 196"))
    with labkit.open_lab(manifests=manifests) as lab:
        assert len(lab.pods) == 200
        on_worker2 = sorted(lab.select(node="calico-ipip-worker2"),
                            key=lambda p: ipaddress.ip_address(p.ip))  # in start order
        # 2 of the cluster's pods and 65 of the Deployment's: more than one /26 holds
        # (64 addresses, the first the tunnel's), so IPAM claimed the next free block.
        assert len(on_worker2) == 67
        assert on_worker2[62].ip == "10.244.244.127"
        assert on_worker2[63].ip == "10.244.244.128"
        assert on_worker2[-1].ip == "10.244.244.131"
        routes = lines(lab.node("calico-ipip-worker2").sh("ip route").stdout)
        proto = "bird" if lab.encapsulation == "IPIP" else "80"
        assert f"blackhole 10.244.244.64/26 proto {proto}" in routes
        assert f"blackhole 10.244.244.128/26 proto {proto}" in routes
        assert "10.244.244.128 dev " + on_worker2[63].veth + " scope link" in routes
        remote = lines(lab.node("calico-ipip-worker").sh("ip route").stdout)
        if lab.encapsulation == "VXLAN":
            assert "10.244.244.128/26 via 10.244.244.64 dev vxlan.calico onlink" in remote
            assert "10.244.51.192/26 via 10.244.51.192 dev vxlan.calico onlink" in remote
            assert "10.244.52.0/26 via 10.244.51.192 dev vxlan.calico onlink" in remote
        else:
            assert "10.244.244.128/26 via 172.18.0.4 dev tunl0 proto bird onlink" in remote
        # The second block is routed: a pod there answers from another node.
        far = lab.select(node="calico-ipip-worker")[0]
        assert "ttl=62" in far.sh(f"ping -c 1 -W 2 {on_worker2[-1].ip}").stdout


# -- 8. which tools printed the outputs --------------------------------------------------------

def test_the_lab_names_the_versions_of_the_tools_that_print_its_outputs(lab: Lab) -> None:
    node = lab.node(WORKER2)
    tools = lab.info["tools"]
    assert f"iproute2-{tools['iproute2']}" in node.sh("ip -V").stdout
    assert f"iputils {tools['iputils']}" in node.sh("ping -V").stdout
    assert f"tcpdump version {tools['tcpdump']}\n" in node.sh("tcpdump --version").output


def test_each_page_names_them_and_says_a_kind_node_image_has_older_ones() -> None:
    from labkit.book.differences import box_lines, load
    from labkit.book.render import Provenance, banner

    info = {"backend": "netns", "calico": "v3.23.5", "encapsulation": "VXLAN",
            "kernel": "6.1.0", "tools": {"iproute2": "6.1.0", "iputils": "20221126",
                                         "tcpdump": "4.99.3"}}
    differs = box_lines(load(Path(__file__).resolve().parent.parent / "docs_src"), info)
    page = banner(Provenance(info, "live", 0.0, differs=differs))
    assert "输出由 iproute2 6.1.0、iputils 20221126、tcpdump 4.99.3 打印" in page
    assert "kind 节点镜像" in page and "`ip -d link` 打印的字段更少" in page
    assert "`allmulti`、`tso_max_size`、`tso_max_segs`、`gro_max_size`" in page
