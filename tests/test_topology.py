# manifests/ as both labs read them, Calico's naming rules, and the replica's plan.
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labkit import calico, topology
from labkit.netns import plan

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def test_the_seed_cluster_comes_from_the_manifests() -> None:
    topo = topology.load()
    assert topo.cluster == "calico-ipip"
    assert topo.pod_subnet == "10.244.0.0/16"
    assert [n.name for n in topo.nodes] == [
        "calico-ipip-control-plane", "calico-ipip-worker", "calico-ipip-worker2"]
    assert {n.image for n in topo.nodes} == {"kindest/node:v1.23.4"}
    assert (topo.ipip_mode, topo.calico_version) == ("Always", "v3.23.5")
    assert len(topo.pods) == 4 and {p.labels["app"] for p in topo.pods} == {"app"}
    assert sum(p.node == "calico-ipip-worker2" for p in topo.pods) >= 2


def test_ipam_follows_calico() -> None:
    worker2 = topology.load().node("calico-ipip-worker2")
    assert worker2.block == "10.244.244.64/26"  # FIDELITY.md, computed from the hostname
    assert worker2.tunnel_ip == "10.244.244.64"  # the tunnel takes the block's first address
    pods = [p for p in topology.load().pods if p.node == worker2.name]
    assert [p.ip for p in pods] == ["10.244.244.65", "10.244.244.66"]  # then pods, in order


def test_calico_names() -> None:
    assert calico.veth_name("default", "app-1") == "cali553a67e357d"  # FIDELITY.md's example
    assert len(calico.veth_name("default", "x" * 60)) == 15  # fits IFNAMSIZ
    assert calico.vxlan_mac("calico-ipip-worker2") == "66:3a:4c:40:ca:e7"
    assert calico.MTU == {"IPIP": 1480, "IPIPCrossSubnet": 1480, "VXLAN": 1450, "None": 1500}


def test_kind_node_names() -> None:
    roles = ["control-plane", "worker", "worker", "worker"]
    assert topology.node_names("kind", roles) == [
        "kind-control-plane", "kind-worker", "kind-worker2", "kind-worker3"]


@pytest.mark.parametrize(("file", "old", "new", "message"), [
    ("replica.yaml", "calico-ipip-worker2: {", "calico-ipip-worker9: {",
     "`nodes` must be exactly kind's node names"),
    ("replica.yaml", "block: 10.244.79.0/26", "block: 10.99.0.0/26", "is not in 10.244.0.0/16"),
    ("replica.yaml", "ip: 172.18.0.3", "ip: 192.168.0.3", "is not in 172.18.0.0/16"),
    ("app-deployment.yaml", "replicas: 4", "replicas: 5", "lists 4 pods but the Deployment"),
    ("kind-cluster.yaml", "  podSubnet:", "  podSubnetX:", "missing `networking.podSubnet`"),
    ("replica.yaml", "node: calico-ipip-worker}", "node: nowhere}", "which is not a node"),
    ("calico.yaml", "version: v3.23.5", "version: [", "calico.yaml:"),
])
def test_manifest_mistakes_name_the_file_and_the_problem(
        tmp_path: Path, file: str, old: str, new: str, message: str) -> None:
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    text = (copy / file).read_text()
    assert old in text
    (copy / file).write_text(text.replace(old, new, 1))
    with pytest.raises(topology.TopologyError) as error:
        topology.load(copy)
    assert message in str(error.value)
    assert file in str(error.value)


def test_the_fingerprint_changes_with_any_manifest(tmp_path: Path) -> None:
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    before = topology.load(copy).fingerprint
    edits = {  # one change per file that a lab would build differently
        "kind-cluster.yaml": ("role: worker\n", "role: worker\n    labels: {x: y}\n"),
        "calico.yaml": ("blockSize: 26", "blockSize: 27"),
        "app-deployment.yaml": ("name: nettoolbox", "name: toolbox"),
        "replica.yaml": ("ip: 172.18.0.3", "ip: 172.18.0.9"),
    }
    for name in topology.FILES:
        path = copy / name
        original = path.read_text()
        old, new = edits[name]
        assert old in original
        path.write_text(original.replace(old, new, 1))
        assert topology.load(copy).fingerprint != before, name
        path.write_text(original)
    assert topology.load(copy).fingerprint == before


def test_pinning_a_download_does_not_change_the_fingerprint(tmp_path: Path) -> None:
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    before = topology.load(copy).fingerprint
    text = (copy / "calico.yaml").read_text()
    (copy / "calico.yaml").write_text(text.replace("sha256: null", "sha256: " + "ab" * 32, 1))
    assert topology.load(copy).fingerprint == before
    (copy / "calico.yaml").write_text(text.replace("ipipMode: Always", "ipipMode: Never"))
    assert topology.load(copy).fingerprint != before


def test_the_plan_programs_a_node_as_calico_does() -> None:
    topo = topology.load()
    pods = [p for p in topo.pods if p.node == "calico-ipip-worker2"]
    names = [n.name for n in topo.nodes] + [p.name for p in topo.pods]
    pids = {name: 100 + i for i, name in enumerate(names)}
    netns = {p.name: f"cni-{i}" for i, p in enumerate(topo.pods)}
    batch = plan.node(topo, "calico-ipip-worker2", "VXLAN", pids, netns)
    for pod in pods:
        assert f"link set {pod.veth} address ee:ee:ee:ee:ee:ee mtu 1450" in batch.ip
        assert f"route add {pod.ip}/32 dev {pod.veth} scope link" in batch.ip
        assert batch.sysctl[f"net.ipv4.conf.{pod.veth}.proxy_arp"] == "1"
        assert batch.sysctl[f"net.ipv4.neigh.{pod.veth}.proxy_delay"] == "0"
        assert batch.sysctl[f"net.ipv6.conf.{pod.veth}.accept_ra"] == "0"
    assert "route add blackhole 10.244.244.64/26 proto 80" in batch.ip
    fdb = "fdb add 66:20:24:67:fc:16 dev vxlan.calico dst 172.18.0.3 self permanent"
    assert fdb in batch.bridge
    ipip = plan.node(topo, "calico-ipip-worker2", "IPIP", pids, netns)
    # Calico's BIRD fork installs these with krt_tunnel; upstream BIRD cannot, so labkit does,
    # as Felix does for the routes it owns (proto 80). The blackhole is BIRD's, not the plan's.
    assert "route add 10.244.79.0/26 via 172.18.0.3 dev tunl0 proto 80 onlink" in ipip.ip
    assert not any("blackhole" in line for line in ipip.ip)
    assert "link set tunl0 mtu 1480 up" in ipip.ip
    no_bird = plan.node(topo, "calico-ipip-worker2", "IPIP", pids, netns, bird=False)
    assert not any("10.244.79.0/26" in line for line in no_bird.ip)
    # A plain BGP pool: no tunnel, MTU 1500, and every route between nodes is BIRD's.
    bgp = plan.node(topo, "calico-ipip-worker2", "None", pids, netns)
    assert not any("tunl0" in line or "vxlan" in line or "blackhole" in line for line in bgp.ip)
    assert not any(line.startswith("route add 10.244.") and "/26" in line for line in bgp.ip)
    assert f"link set {pods[0].veth} address ee:ee:ee:ee:ee:ee mtu 1500" in bgp.ip


def test_the_plan_programs_a_pod_as_the_cni_plugin_does() -> None:
    topo = topology.load()
    pod = topo.pods[0]
    batch = plan.pod(topo, pod.name, "IPIP")
    assert batch.ip.index("route add 169.254.1.1 dev eth0 scope link") < batch.ip.index(
        "route add default via 169.254.1.1 dev eth0")
    assert f"addr add {pod.ip}/32 dev eth0" in batch.ip
    assert batch.sysctl == {"net.ipv4.ip_forward": "0"}


def test_the_underlay_gateway_routes_nothing_anywhere() -> None:
    topo = topology.load()
    batch = plan.underlay(topo, {n.name: 1 for n in topo.nodes})
    assert "route add blackhole default" in batch.ip
    assert not any(line.startswith("route add default via") for line in batch.ip)
