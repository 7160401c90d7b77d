# manifests/ as both labs read them, Calico's naming rules, and the replica's plan.
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from labkit.backends.netns import plan
from labkit.model import calico, topology
from labkit.model.errors import ManifestError

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def test_the_seed_cluster_comes_from_the_manifests() -> None:
    topo = topology.load()
    assert topo.cluster == "calico-ipip"
    assert topo.pod_subnet == "10.244.0.0/16"
    assert [n.name for n in topo.nodes] == [
        "calico-ipip-control-plane", "calico-ipip-worker", "calico-ipip-worker2"]
    assert {n.image for n in topo.nodes} == {"kindest/node:v1.23.4"}
    assert (topo.ipip_mode, topo.calico_version) == ("Always", "v3.23.5")
    app = [p for p in topo.pods if p.labels.get("app") == "app"]
    assert len(app) == 4 and {p.namespace for p in app} == {"default"}
    assert sum(p.node == "calico-ipip-worker2" for p in app) >= 2


def test_a_topology_reaches_the_labs_agent_whole() -> None:
    # The agent is handed the topology as JSON rather than reading the manifests again.
    for folder in (MANIFESTS, MANIFESTS / "flannel"):
        topo = topology.load(folder)
        again = topology.from_json(topology.to_json(topo))
        assert again == topo
        assert again.node("calico-ipip-worker2" if topo.cni == "calico" else
                          topo.nodes[-1].name).blocks == topo.nodes[-1].blocks
        assert again.fingerprint == topo.fingerprint and len(topo.fingerprint) == 64


def test_the_clusters_own_pods_take_addresses_first() -> None:
    pods = topology.load().pods
    dns = [p for p in pods if p.labels.get("k8s-app") == "kube-dns"]
    assert len(dns) == 2 and all(p.name.startswith("coredns-") for p in dns)
    assert {p.namespace for p in dns} == {"kube-system"}
    controllers = [p for p in pods if p.name.startswith("calico-kube-controllers-")]
    assert [p.namespace for p in controllers] == ["kube-system"]
    storage = [p for p in pods if p.name.startswith("local-path-provisioner-")]
    assert [p.namespace for p in storage] == ["local-path-storage"]
    # The seed's screenshots: the two app pods on worker2 are .67 and .68.
    on_worker2 = [p.ip for p in pods if p.node == "calico-ipip-worker2"
                  and p.labels.get("app") == "app"]
    assert on_worker2 == ["10.244.244.67", "10.244.244.68"]


def test_ipam_follows_calico() -> None:
    worker2 = topology.load().node("calico-ipip-worker2")
    assert worker2.block == "10.244.244.64/26"  # FIDELITY.md, computed from the hostname
    assert worker2.tunnel_ip == "10.244.244.64"  # the tunnel takes the block's first address
    pods = [p for p in topology.load().pods if p.node == worker2.name]
    # then pods, in the order they started
    assert [p.ip for p in pods] == [f"10.244.244.{n}" for n in (65, 66, 67, 68)]
    # FIDELITY.md's blocks for the other two names
    assert topology.load().node("calico-ipip-control-plane").block == "10.244.51.192/26"
    assert topology.load().node("calico-ipip-worker").block == "10.244.79.0/26"


def test_a_full_block_makes_ipam_claim_the_next_free_one() -> None:
    # Calico walks the pool from the node's first block, skipping claimed ones, wrapping.
    assert calico.next_block("10.244.0.0/16", "10.244.244.64/26", set()) == "10.244.244.64/26"
    claimed = {"10.244.244.64/26", "10.244.244.128/26"}
    assert calico.next_block("10.244.0.0/16", "10.244.244.64/26", claimed) == "10.244.244.192/26"
    last = {"10.244.255.192/26"}
    assert calico.next_block("10.244.0.0/16", "10.244.255.192/26", last) == "10.244.0.0/26"
    ipam = calico.Ipam("10.244.0.0/16", {"a": "10.244.244.64/26", "b": "10.244.244.128/26"})
    got = [ipam.assign("a") for _ in range(64)]
    assert got[0] == "10.244.244.65" and got[62] == "10.244.244.127"
    # b holds .128/26, so a's second block is the one after it; its first address is a pod's.
    assert got[63] == "10.244.244.192"
    assert ipam.blocks["a"] == ["10.244.244.64/26", "10.244.244.192/26"]


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
     "must be exactly kind's node names"),
    ("replica.yaml", "block: 10.244.79.0/26", "block: 10.99.0.0/26",
     "is not in the pod subnet 10.244.0.0/16"),
    ("replica.yaml", "ip: 172.18.0.3", "ip: 192.168.0.3", "is not in 172.18.0.0/16"),
    ("app-deployment.yaml", "replicas: 4", "replicas: 5", "lists 4 pods of the Deployment"),
    ("kind-cluster.yaml", "  podSubnet:", "  podSubnetX:", "`networking.podSubnet`: missing"),
    ("replica.yaml", "node: calico-ipip-worker}", "node: nowhere}", "'nowhere' is not a node"),
    ("replica.yaml", "labels: {k8s-app: kube-dns}", "labels: kube-dns",
     "should be a valid dictionary"),
    ("calico.yaml", "version: v3.23.5", "version: [", "calico.yaml:"),
])
def test_manifest_mistakes_name_the_file_and_the_problem(
        tmp_path: Path, file: str, old: str, new: str, message: str) -> None:
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    text = (copy / file).read_text()
    assert old in text
    (copy / file).write_text(text.replace(old, new, 1))
    with pytest.raises(ManifestError) as error:
        topology.load(copy)
    assert message in str(error.value)
    assert str(error.value).startswith(f"{copy}/")  # the folder as read
    assert file in str(error.value)


def test_the_fingerprint_changes_with_any_manifest(tmp_path: Path) -> None:
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    before = topology.load(copy).fingerprint
    edits = {  # one change per file that a lab would build differently
        "kind-cluster.yaml": ("role: worker\n", "role: worker\n    labels: {x: y}\n"),
        "calico.yaml": ("name: default-ipv4-ippool", "name: another-pool"),
        "app-deployment.yaml": ("name: nettoolbox", "name: toolbox"),
        "replica.yaml": ("ip: 172.18.0.3", "ip: 172.18.0.9"),
    }
    for name in edits:
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
    batch = plan.node(topo, "calico-ipip-worker2", "VXLAN")
    assert "route add blackhole 10.244.244.64/26 proto 80" in batch.ip
    assert "link add vxlan.calico txqueuelen 0 type vxlan id 4096 local 172.18.0.4 dev eth0 " \
        "dstport 4789 nolearning" in batch.ip
    fdb = "fdb add 66:20:24:67:fc:16 dev vxlan.calico dst 172.18.0.3 self permanent"
    assert fdb in batch.bridge
    assert "addr add 172.18.0.4/16 brd + dev eth0" in batch.ip
    assert "addr add fc00:f853:ccd:e793::4/64 dev eth0 nodad" in batch.ip
    assert "route add default via fc00:f853:ccd:e793::1 dev eth0" in batch.ip
    ipip = plan.node(topo, "calico-ipip-worker2", "IPIP")
    # Calico's BIRD fork installs these with krt_tunnel; upstream BIRD cannot, so labkit does,
    # as Felix does for the routes it owns (proto 80). The blackhole is BIRD's, not the plan's.
    assert "route add 10.244.79.0/26 via 172.18.0.3 dev tunl0 proto 80 onlink" in ipip.ip
    assert not any("blackhole" in line for line in ipip.ip)
    assert "link set tunl0 mtu 1480 up" in ipip.ip
    no_bird = plan.node(topo, "calico-ipip-worker2", "IPIP", bird=False)
    assert not any("10.244.79.0/26" in line for line in no_bird.ip)
    # A plain BGP pool: no tunnel, MTU 1500, and every route between nodes is BIRD's.
    bgp = plan.node(topo, "calico-ipip-worker2", "None")
    assert not any("tunl0" in line or "vxlan" in line or "blackhole" in line for line in bgp.ip)
    assert not any(line.startswith("route add 10.244.") and "/26" in line for line in bgp.ip)
    made = plan.pod(topo, pods[0].name, "None", pids)
    assert any(f"peer name {pods[0].veth} mtu 1500 " in line for line in made.ip)
    side = plan.node_pods(topo, "calico-ipip-worker2", pids)
    for pod in pods:
        assert f"link set {pod.veth} up" in side.ip
        assert f"route add {pod.ip}/32 dev {pod.veth} scope link" in side.ip
        assert side.sysctl[f"net.ipv4.conf.{pod.veth}.proxy_arp"] == "1"
        assert side.sysctl[f"net.ipv4.neigh.{pod.veth}.proxy_delay"] == "0"
        assert side.sysctl[f"net.ipv6.conf.{pod.veth}.accept_ra"] == "0"


def test_the_plan_programs_a_pod_as_the_cni_plugin_does() -> None:
    topo = topology.load()
    pod = topo.pods[0]
    pids = {n.name: 7 for n in topo.nodes}
    batch = plan.pod(topo, pod.name, "VXLAN", pids)
    # Made in the pod, eth0 numbered as v3.23.5's order numbers it (the peer took 2), the
    # host end in the node; one queue each way, as the real cluster's `ip -d link` shows
    # (numtxqueues 1 numrxqueues 1 on a 2-CPU machine, docs_src/transcripts/native/).
    made = next(line for line in batch.ip if line.startswith("link add eth0 "))
    assert made.startswith("link add eth0 index 3 mtu 1450 txqueuelen 0 numtxqueues 1 "
                           "numrxqueues 1 address ")
    assert made.endswith(f"peer name {pod.veth} mtu 1450 txqueuelen 0 numtxqueues 1 "
                         "numrxqueues 1 address ee:ee:ee:ee:ee:ee netns 7")
    with_tunl0 = plan.pod(topo, pod.name, "IPIP", pids, fresh=2)
    assert any(line.startswith("link add eth0 index 4 mtu 1480 ") for line in with_tunl0.ip)
    assert batch.ip.index("route add 169.254.1.1 dev eth0 scope link") < batch.ip.index(
        "route add default via 169.254.1.1 dev eth0")
    assert f"addr add {pod.ip}/32 dev eth0" in batch.ip
    assert batch.sysctl == {"net.ipv4.ip_forward": "0"}


def test_what_a_real_node_picks_at_random_is_fixed_per_pod() -> None:
    a, b = topology.load().pods[:2]
    assert plan.pod_mac(a) != plan.pod_mac(b)
    first = int(plan.pod_mac(a).split(":")[0], 16)
    assert first & 0b10 and not first & 0b1  # locally administered, unicast
    assert re.fullmatch(r"cni-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        plan.netns_name(a))
    assert plan.netns_name(a) != plan.netns_name(b)


def test_the_underlay_gateway_routes_nothing_anywhere() -> None:
    topo = topology.load()
    batch = plan.underlay(topo, {n.name: 1 for n in topo.nodes})
    assert "route add blackhole default" in batch.ip
    assert "route add blackhole ::/0" in batch.ip
    assert "addr add fc00:f853:ccd:e793::1/64 dev br-" + plan.bridge_name(topo.cluster)[3:] \
        + " nodad" in batch.ip
    assert not any(line.startswith("route add default via") for line in batch.ip)
