# The native lab's Flannel cluster: flanneld v0.22.0 and kube-flannel.yml for real.
"""The Flannel cluster (``manifests/flannel/``) brought up once for this module by the
native lab, and checked against what Flannel v0.22.0 is documented to do; then that the
Calico cluster runs beside it (as chapter 五 holds both), and that nothing is left of
either after ``close()``.

The expected values are written down here from kube-flannel.yml v0.22.0 and Flannel's
docs (Documentation/backends.md: vxlan ``VNI`` 1, ``Port`` 8472 on Linux;
Documentation/kube-flannel.yml: ``--ip-masq --kube-subnet-mgr``, Network
10.244.0.0/16), not read back from labkit's own model of them.

Runs as root with the parts built (``labkit parts build``); skips, saying which is
missing, elsewhere (``--require-parts`` turns a missing part into a failure; a lab that
does not come up is an error, never a skip).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import labkit
from labkit.api.lab import Lab, Node, Pod

CONTROL_PLANE = "flannel-control-plane"
NODES = [CONTROL_PLANE, "flannel-worker", "flannel-worker2"]
NETWORK = "10.244.0.0/16"
KUBECTL = "KUBECONFIG=/etc/kubernetes/admin.conf kubectl"


def _unavailable() -> str | None:
    from labkit.backends.native import backend

    return backend.unavailable("flannel")


@pytest.fixture(scope="module")
def why_not() -> None:
    reason = _unavailable()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def lab(why_not: None) -> Iterator[Lab]:
    opened = labkit.open_lab("native", lab="flannel", name="pytest-flannel")
    with opened:
        yield opened


def leftovers(folder: str, owner: int) -> list[str]:
    """What a native lab whose folder is ``folder`` left on this machine."""
    name = Path(folder).name
    left = [f"folder {folder}"] if Path(folder).exists() else []
    mounts = Path("/proc/self/mountinfo").read_text()
    left += [f"mount {line.split()[4]}" for line in mounts.splitlines() if name in line]
    left += [f"cgroup {c}" for c in Path("/sys/fs/cgroup").glob(f"*/{name}")]
    if Path(f"/proc/{owner}").exists():
        left.append(f"owner {owner}")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"/{name}/" in (entry / "cgroup").read_text():
                    left.append(f"process {entry.name}")
            except OSError:
                pass
    return left


def _sh(target: Node | Pod, command: str) -> str:
    return target.sh(command, timeout=120).stdout


def _app(lab: Lab) -> list[Pod]:
    return lab.select(app="app")


def _annotations(lab: Lab) -> dict[str, dict[str, str]]:
    out = _sh(lab.node(CONTROL_PLANE), f"{KUBECTL} get nodes -o json")
    return {n["metadata"]["name"]: n["metadata"]["annotations"]
            for n in json.loads(out)["items"]}


# -- flanneld -------------------------------------------------------------------------------


def test_flanneld_is_v0_22_0_and_runs_on_every_node_as_the_manifest_says(lab: Lab) -> None:
    version = _sh(lab.node(CONTROL_PLANE), f"{KUBECTL} -n kube-flannel exec ds/kube-flannel-ds "
                                           "-c kube-flannel -- /opt/bin/flanneld --version 2>&1")
    assert version.strip() == "v0.22.0"
    for node in lab.nodes:
        assert _sh(node, "pgrep -a flanneld").split(None, 1)[1].strip() == \
            "/opt/bin/flanneld --ip-masq --kube-subnet-mgr", node.name


def test_the_daemonset_runs_the_manifests_images_without_a_pull(lab: Lab) -> None:
    out = _sh(lab.node(CONTROL_PLANE), f"{KUBECTL} -n kube-flannel get pods -o json")
    pods = json.loads(out)["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(NODES)
    for pod in pods:
        status = pod["status"]
        assert [s["image"] for s in status["initContainerStatuses"]] == [
            "docker.io/flannel/flannel-cni-plugin:v1.1.2", "docker.io/flannel/flannel:v0.22.0"]
        assert [s["image"] for s in status["containerStatuses"]] == [
            "docker.io/flannel/flannel:v0.22.0"]
    events = _sh(lab.node(CONTROL_PLANE), f"{KUBECTL} -n kube-flannel get events")
    assert "Pulling image" not in events and "already present on machine" in events, events


def test_each_node_leases_a_24_from_the_api(lab: Lab) -> None:
    annotations = _annotations(lab)
    blocks = []
    for node in lab.nodes:
        mine = annotations[node.name]
        assert mine["flannel.alpha.coreos.com/backend-type"] == "vxlan"
        assert mine["flannel.alpha.coreos.com/public-ip"] == node.ip
        assert mine["flannel.alpha.coreos.com/kube-subnet-manager"] == "true"
        data = json.loads(mine["flannel.alpha.coreos.com/backend-data"])
        assert data["VNI"] == 1
        assert data["VtepMAC"] == _sh(node, "cat /sys/class/net/flannel.1/address").strip()
        block = ipaddress.ip_network(node.block)
        assert block.prefixlen == 24 and block.subnet_of(ipaddress.ip_network(NETWORK))
        blocks.append(block)
    assert len(set(blocks)) == 3


def test_subnet_env_is_flannelds_for_the_nodes_subnet(lab: Lab) -> None:
    for node in lab.nodes:
        gateway = node.block.replace(".0/24", ".1/24")
        assert _sh(node, "cat /run/flannel/subnet.env").splitlines() == [
            f"FLANNEL_NETWORK={NETWORK}", f"FLANNEL_SUBNET={gateway}", "FLANNEL_MTU=1450",
            "FLANNEL_IPMASQ=true"], node.name


def test_flannel_1_is_vxlan_id_1_on_port_8472(lab: Lab) -> None:
    for node in lab.nodes:
        link = _sh(node, "ip -d link show flannel.1")
        assert " mtu 1450 " in link, link
        assert re.search(rf"vxlan id 1 local {re.escape(node.ip)} dev eth0 .*dstport 8472 "
                         r"nolearning", link), link
        network = node.block.split("/")[0]
        assert f"inet {network}/32 scope global flannel.1" in _sh(node, "ip addr show flannel.1")


def test_every_remote_node_has_its_neighbour_fdb_entry_and_route(lab: Lab) -> None:
    annotations = _annotations(lab)
    for node in lab.nodes:
        neigh = [line.strip() for line in _sh(node, "ip neigh show dev flannel.1").splitlines()]
        fdb = [line.strip() for line in _sh(node, "bridge fdb show dev flannel.1").splitlines()]
        routes = _sh(node, "ip route").splitlines()
        for other in (n for n in lab.nodes if n.name != node.name):
            mac = json.loads(annotations[other.name]
                             ["flannel.alpha.coreos.com/backend-data"])["VtepMAC"]
            vtep = other.block.split("/")[0]
            assert f"{vtep} lladdr {mac} PERMANENT" in neigh, (node.name, neigh)
            assert f"{mac} dst {other.ip} self permanent" in fdb, (node.name, fdb)
            assert f"{other.block} via {vtep} dev flannel.1 onlink " in routes, routes


def test_flannels_iptables_chains_are_there(lab: Lab) -> None:
    for node in lab.nodes:
        nat = _sh(node, "iptables-save -t nat").splitlines()
        assert ":FLANNEL-POSTRTG - [0:0]" in nat
        assert '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG' in nat
        assert (f'-A FLANNEL-POSTRTG -s {node.block} -d {NETWORK} -m comment --comment '
                '"flanneld masq" -j RETURN') in nat, nat
        forward = _sh(node, "iptables-save -t filter").splitlines()
        assert ":FLANNEL-FWD - [0:0]" in forward
        assert (f'-A FLANNEL-FWD -s {NETWORK} -m comment --comment "flanneld forward" '
                "-j ACCEPT") in forward
        # In the table kube-proxy writes too: one iptables for the whole node.
        assert any(line.startswith(":KUBE-SERVICES ") for line in nat)


# -- the CNI plugins ----------------------------------------------------------------------


def test_the_nodes_cni_plugins_are_kinds_and_bridge_and_flannel(lab: Lab) -> None:
    from labkit import parts

    flannel = parts.binary("flannel-cni", "flannel").read_bytes()
    for node in lab.nodes:
        assert _sh(node, "ls /opt/cni/bin").split() == [
            "bridge", "flannel", "host-local", "loopback", "portmap", "ptp"]
        # What the init container copied is the flannel-cni part's binary.
        size = _sh(node, "stat -c %s /opt/cni/bin/flannel").strip()
        assert int(size) == len(flannel)
        conflist = json.loads(_sh(node, "cat /etc/cni/net.d/10-flannel.conflist"))
        assert [p["type"] for p in conflist["plugins"]] == ["flannel", "portmap"]


def test_cni0_is_a_bridge_with_the_subnets_first_address(lab: Lab) -> None:
    for node in lab.nodes:
        gateway = node.block.replace(".0/24", ".1")
        brd = node.block.replace(".0/24", ".255")
        assert f"inet {gateway}/24 brd {brd} scope global cni0" in _sh(node, "ip addr show cni0")
        assert "\n    bridge forward_delay " in _sh(node, "ip -d link show cni0")
        ports = _sh(node, "ip -br link show master cni0")
        assert {line.split("@")[0] for line in ports.splitlines()} == {
            p.veth for p in lab.select(node=node.name)}


def test_a_pod_has_a_24_with_brd_and_three_routes(lab: Lab) -> None:
    for pod in _app(lab):
        block = lab.node(pod.node).block
        gateway, brd = block.replace(".0/24", ".1"), block.replace(".0/24", ".255")
        assert f"inet {pod.ip}/24 brd {brd} scope global eth0" in _sh(pod, "ip -4 addr show eth0")
        # In the kernel's order: on the node whose block is 10.244.0.0/24 it comes before
        # 10.244.0.0/16, elsewhere after it.
        assert sorted(line.strip() for line in _sh(pod, "ip route").splitlines()) == sorted([
            f"default via {gateway} dev eth0", f"{NETWORK} via {gateway} dev eth0",
            f"{block} dev eth0 proto kernel scope link src {pod.ip}"])


def test_same_node_ttl_64_other_node_ttl_62(lab: Lab) -> None:
    by_node: dict[str, list[Pod]] = {}
    for pod in _app(lab):
        by_node.setdefault(pod.node, []).append(pod)
    a, b = next(p for p in by_node.values() if len(p) >= 2)[:2]  # four pods, three nodes
    far = next(p for p in _app(lab) if p.node != a.node)
    assert re.findall(r"ttl=(\d+)", _sh(a, f"ping -c 2 {b.ip}")) == ["64", "64"]
    assert re.findall(r"ttl=(\d+)", _sh(a, f"ping -c 2 {far.ip}")) == ["62", "62"]


# -- the Lab API ------------------------------------------------------------------------------


def test_the_inventory_is_the_flannel_labs_shape(lab: Lab) -> None:
    info = lab.info
    assert (info["backend"], info["lab"], info["cni"]) == ("native", "flannel", "flannel")
    assert (lab.name, lab.cni, lab.encapsulation) == ("flannel", "flannel", "VXLAN")
    assert info["flannel"] == "v0.22.0" and info["kubernetes"] == "v1.23.4"
    assert info["cluster"] == "flannel"
    assert any("containernetworking/plugins v0.9.1" in note for note in info["notes"])
    assert any("bridge" in note and "docker cp" in note for note in info["notes"])
    assert [n.name for n in lab.nodes] == NODES
    for node in lab.nodes:
        assert node.tunnel_device == "flannel.1"
        assert node.tunnel_ip == node.block.split("/")[0]
    assert len(_app(lab)) == 7 and lab.pods[0].name.startswith("app-")
    for pod in lab.pods:
        link = _sh(lab.node(pod.node), f"ip -o link show {pod.veth}")
        assert "master cni0" in link and f"link-netns {pod.netns}" in link, link


# -- two clusters at once, and nothing left -----------------------------------------------


def test_the_calico_cluster_runs_beside_it_and_closes_clean(lab: Lab) -> None:
    from labkit.backends.native import backend

    reason = backend.unavailable("calico")
    if reason is not None:
        pytest.skip(reason)
    calico = labkit.open_lab("native", lab="calico", name="pytest-beside-flannel")
    try:
        folder, owner = calico.info["folder"], int(calico.info["owner"])
        assert folder != lab.info["folder"]
        pods = calico.select(app="app")
        out = _sh(pods[0], f"ping -c 1 {pods[1].ip}")
        assert " 0% packet loss" in out, out
        # Both underlays are 172.18.0.0/16, each in its own network namespace.
        assert lab.node("flannel-worker").ip == calico.node("calico-ipip-worker").ip
    finally:
        calico.close()
    assert leftovers(folder, owner) == []
    a, b = _app(lab)[:2]
    assert " 0% packet loss" in _sh(a, f"ping -c 1 {b.ip}")


def test_zz_close_leaves_nothing(lab: Lab) -> None:
    folder, owner = lab.info["folder"], int(lab.info["owner"])
    assert leftovers(folder, owner) != []
    lab.close()
    assert leftovers(folder, owner) == []
