# Calico's pool modes on the replica, and the real BIRD that routes its BGP modes.
"""What a reader of Calico's BGP mode would check on a node: the mesh sessions
``Established`` in ``birdc show protocols``, the other nodes' blocks learned
(``proto bird`` in ``ip route``), and that it is BIRD, not labkit, that put them
there.  Expected values are the seed's (FIDELITY.md's IPAM section) and the
lines Calico v3.23's confd writes, as literals."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import labkit
from labkit.backends.netns import bird, replica, spawn
from labkit.model import topology
from labkit.model.errors import LabUnavailable, ManifestError

ROOT = Path(__file__).resolve().parent.parent
BIRDC = "birdc -s /var/run/calico/bird.ctl"
W2 = "calico-ipip-worker2"


def manifests(tmp: Path, ipip: str, vxlan: str = "Never", fallback: bool = False) -> Path:
    """A copy of the seed's manifests whose pool has these modes."""
    copy = tmp / f"manifests-{ipip}-{vxlan}"
    shutil.copytree(ROOT / "manifests", copy)
    pool = (copy / "calico.yaml").read_text()
    pool = pool.replace("ipipMode: Always", f"ipipMode: {ipip}")
    (copy / "calico.yaml").write_text(pool.replace("vxlanMode: Never", f"vxlanMode: {vxlan}"))
    if not fallback:
        replica = (copy / "replica.yaml").read_text()
        (copy / "replica.yaml").write_text(re.sub(r"(?m)^ipipFallback:.*\n", "", replica))
    return copy


@pytest.fixture(scope="module")
def bgp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[labkit.Lab]:
    """A lab of the seed's cluster whose pool is `ipipMode: Never`, `vxlanMode: Never`."""
    with labkit.open_lab(manifests=manifests(tmp_path_factory.mktemp("bgp"), "Never")) as lab:
        yield lab


def test_every_mesh_session_is_established(bgp: labkit.Lab) -> None:
    for node, peers in {"calico-ipip-control-plane": ("172_18_0_3", "172_18_0_4"),
                        "calico-ipip-worker": ("172_18_0_2", "172_18_0_4"),
                        W2: ("172_18_0_2", "172_18_0_3")}.items():
        shown = bgp.node(node).sh(f"{BIRDC} show protocols").stdout
        assert shown.startswith("BIRD 1.6.8 ready.\n")
        bgp_lines = [line.split() for line in shown.splitlines() if " BGP " in line]
        assert [line[0] for line in bgp_lines] == [f"Mesh_{peer}" for peer in peers]
        for line in bgp_lines:
            assert line[3] == "up" and line[5] == "Established", shown


def test_other_blocks_are_learned_over_bgp_and_the_own_block_is_a_bird_blackhole(
        bgp: labkit.Lab) -> None:
    routes = bgp.node(W2).sh("ip route").stdout.splitlines()
    assert "10.244.79.0/26 via 172.18.0.3 dev eth0 proto bird " in routes
    assert "10.244.51.192/26 via 172.18.0.2 dev eth0 proto bird " in routes
    assert "blackhole 10.244.244.64/26 proto bird " in routes
    # No tunnel in this mode: nothing routes through tunl0 or vxlan.calico.
    assert not any("tunl0" in r or "vxlan" in r for r in routes)
    learned = bgp.node(W2).sh(f"{BIRDC} show route 10.244.79.0/26").stdout
    assert re.search(r"^10\.244\.79\.0/26\s+via 172\.18\.0\.3 on eth0 \[Mesh_172_18_0_3 ",
                     learned, re.M), learned


def test_pods_on_two_nodes_reach_each_other_unencapsulated(bgp: labkit.Lab) -> None:
    src = bgp.select(node=W2, app="app")[0]
    dst = bgp.select(node="calico-ipip-worker", app="app")[0]
    # With no tunnel address to take the block's first address, the pods start at it: the
    # cluster's own pods (coredns...) start first and take .64, .65 and 79.0.
    cluster_pods = [p for p in bgp.pods if p.namespace != "default"]
    assert [p.ip for p in cluster_pods if p.node == W2] == ["10.244.244.64", "10.244.244.65"]
    assert [p.ip for p in cluster_pods if p.node == "calico-ipip-worker"] == ["10.244.79.0"]
    assert (src.ip, dst.ip) == ("10.244.244.66", "10.244.79.1")
    with bgp.node(W2).start("tcpdump -nni eth0 -c 2 icmp", ready="listening on") as capture:
        ping = src.sh(f"ping -c 1 -W 2 {dst.ip}")
        captured = capture.wait(10)
    assert " ttl=62 " in ping.stdout
    assert f"IP {src.ip} > {dst.ip}: ICMP echo request" in captured.stdout
    assert f"IP {dst.ip} > {src.ip}: ICMP echo reply" in captured.stdout


def test_status_names_the_pool_mode_and_bird(bgp: labkit.Lab) -> None:
    text = labkit.status(bgp).text
    assert "encapsulation: None  ipipMode: Never  vxlanMode: Never" in text.splitlines()[0]
    assert "routing: BIRD in every node (node-to-node BGP mesh, AS 64512)" in text
    assert bgp.info["bird"] is True and bgp.info["encapsulation"] == "None"


def test_without_bird_no_node_knows_another_nodes_block(tmp_path: Path) -> None:
    """The routes of the BGP lab are BIRD's: a lab told not to run it has none of them."""
    with labkit.open_lab(manifests=manifests(tmp_path, "Never"), bird=False) as lab:
        routes = lab.node(W2).sh("ip route").stdout
        assert "10.244.79.0/26" not in routes and "10.244.51.192/26" not in routes
        assert "blackhole 10.244.244.64/26" not in routes
        assert "bird.ctl" in lab.node(W2).sh(f"{BIRDC} show protocols", check=False).output
        assert "routing: none (started without BIRD" in labkit.status(lab).text
        dst = lab.select(node="calico-ipip-worker", app="app")[0]
        ping = lab.select(node=W2, app="app")[0].sh(f"ping -c 1 -W 1 {dst.ip}", check=False)
        assert ping.rc == 1 and "100% packet loss" in ping.stdout


def test_graceful_restart_keeps_a_dead_peers_routes_then_they_age_out(tmp_path: Path) -> None:
    """BIRD killed on worker: its peers keep its block (stale, graceful restart), until the
    restart time it advertised (BIRD's default, 120 s) runs out."""
    with labkit.open_lab(manifests=manifests(tmp_path, "Never")) as lab:
        worker, w2 = lab.node("calico-ipip-worker"), lab.node(W2)
        worker.sh("kill -KILL $(cat /var/run/calico/bird.pid)")
        killed = time.monotonic()
        route = "10.244.79.0/26 via 172.18.0.3 dev eth0 proto bird"
        deadline = killed + 30
        while "Established" in _session(w2, "Mesh_172_18_0_3"):
            assert time.monotonic() < deadline, "worker2 never noticed that worker's BIRD died"
            time.sleep(0.5)
        assert route in w2.sh("ip route").stdout  # the session is gone, the route stays
        assert route in w2.sh("ip route").stdout
        while route in w2.sh("ip route").stdout:
            assert time.monotonic() < killed + 180, "the stale route never aged out"
            time.sleep(1)
        gone = time.monotonic() - killed
        assert 110 <= gone <= 135, f"the stale route went after {gone:.0f} s, not about 120 s"
        # worker's own kernel routes outlive its BIRD (`persist`).
        assert "10.244.244.64/26 via 172.18.0.4 dev eth0 proto bird" in worker.sh("ip route").stdout


def _session(node: labkit.Node, name: str) -> str:
    return next((line for line in node.sh(f"{BIRDC} show protocols").stdout.splitlines()
                 if line.startswith(name + " ")), "")


def test_confd_configuration_for_worker2() -> None:
    files = bird.config_files(topology.load(ROOT / "manifests"), W2, "None")
    main = files["bird.cfg"]
    assert "router id 172.18.0.4;" in main
    for line in ("  learn;", "  persist;", "  scan time 2;", "  graceful restart;",
                 "  export filter calico_kernel_programming; # Default is export none",
                 '  interface -"cali*", -"kube-ipvs*", "*";', "template bgp bgp_template {",
                 "  local as 64512;", "protocol bgp Mesh_172_18_0_2 from bgp_template {",
                 "protocol bgp Mesh_172_18_0_3 from bgp_template {",
                 "  neighbor 172.18.0.3 as 64512;",
                 "  source address 172.18.0.4;  # The local address we use for the TCP connection"):
        assert any(have.startswith(line) for have in main.splitlines()), line
    assert "Mesh_172_18_0_4" not in main and "# Skipping ourselves (172.18.0.4)" in main
    # worker2 has the highest address: it dials both peers; the control-plane waits for both.
    assert "passive on" not in main
    cp = bird.config_files(topology.load(ROOT / "manifests"), "calico-ipip-control-plane", "None")
    assert cp["bird.cfg"].count("passive on; # Mesh is unidirectional") == 2
    assert "   route 10.244.244.64/26 blackhole;" in files["bird_aggr.cfg"]
    assert "if ( net ~ 10.244.0.0/16 ) then {" in files["bird_ipam.cfg"]


@pytest.mark.parametrize("mode", ["None", "IPIP", "IPIPCrossSubnet"])
def test_bird_parses_the_configuration(tmp_path: Path, mode: str) -> None:
    for name, text in bird.config_files(topology.load(ROOT / "manifests"), W2, mode).items():
        (tmp_path / name).write_text(text)
    # The lab's own PATH (spawn.which), not the test's: an ordinary user's PATH, as CI's,
    # often lacks /usr/sbin, where Debian puts bird.
    parsed = subprocess.run([spawn.which("bird"), "-p", "-c", str(tmp_path / "bird.cfg")],
                            capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr


def _kernel_has_ipip() -> bool:
    return Path("/sys/module/ipip").exists()


@pytest.mark.skipif(_kernel_has_ipip(), reason="this kernel has the ipip module: IPIP can run")
@pytest.mark.parametrize(("ipip", "stand_in"), [
    ("Always", "`ipipMode: Never` with `vxlanMode: Always`"),
    ("CrossSubnet", "CrossSubnet routes exactly as `ipipMode: Never`"),
])
def test_ipip_without_the_module_fails_saying_why_and_what_can_stand_in(
        tmp_path: Path, ipip: str, stand_in: str) -> None:
    folder = manifests(tmp_path, ipip)
    with pytest.raises(LabUnavailable) as failed:
        labkit.open_lab(manifests=folder)
    message = str(failed.value)
    needs = f"{folder}/calico.yaml: the pool's `ipipMode: {ipip}` needs the kernel's ipip module"
    assert needs in message
    assert stand_in in message and "ipipFallback: VXLAN" in message


@pytest.mark.skipif(_kernel_has_ipip(), reason="this kernel has the ipip module: IPIP can run")
def test_the_seed_lab_falls_back_to_vxlan_and_says_so() -> None:
    with labkit.open_lab() as lab:
        assert lab.encapsulation == "VXLAN"
        assert lab.info["pool"] == {"ipipMode": "Always", "vxlanMode": "Never"}
        note = ("note: the pool asks for `ipipMode: Always`, but this kernel has no ipip module "
                "(no tunl0), so the replica runs the pool as `vxlanMode: Always` "
                "(replica.yaml's ipipFallback)")
        assert note in labkit.status(lab).text.splitlines()
        assert not lab.info["bird"]


@pytest.mark.parametrize(("ipip", "vxlan", "key", "message"), [
    ("Always", "Always", "pool", "Calico does not allow IPIP and VXLAN on the same pool"),
    ("Never", "CrossSubnet", "pool", "`vxlanMode: CrossSubnet` is not built by the netns replica"),
    ("Sometimes", "Never", "pool.ipipMode",
     "should be 'Always', 'CrossSubnet' or 'Never', not 'Sometimes'"),
])
def test_a_pool_mode_mistake_names_the_file(tmp_path: Path, ipip: str, vxlan: str, key: str,
                                            message: str) -> None:
    folder = manifests(tmp_path, ipip, vxlan)
    with pytest.raises(ManifestError) as failed:
        topology.load(folder)
    assert str(failed.value).startswith(f"{folder / 'calico.yaml'}:")
    assert f"`{key}`: " in str(failed.value) and message in str(failed.value)


def test_a_missing_bird_names_the_package(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    def which(tool: str) -> str:
        raise spawn.SetupError(f"`{tool}` is not installed")

    monkeypatch.setattr(replica, "which", which)
    lab = replica.Replica(topology.load(manifests(tmp_path, "Never")), "None", "full")
    with pytest.raises(spawn.SetupError) as failed:
        lab.start_bird()
    assert str(failed.value).startswith("`bird` is not installed: a pool with ipipMode Never "
                                        "and vxlanMode Never routes with BGP")
    assert "(Debian/Ubuntu package `bird`)" in str(failed.value)


def test_a_packet_walk_across_nodes_sees_the_pods_own_packet_on_both_eth0(
        bgp: labkit.Lab) -> None:
    src = bgp.select(node=W2, app="app")[0]
    dst = bgp.select(node="calico-ipip-worker", app="app")[0]
    walked = labkit.walk(src, dst)
    assert walked.complete
    hops = [(h.where, h.interface, h.src_ip, h.dst_ip, h.ttl, h.outer) for h in walked.echo_request]
    assert hops == [
        (src.name, "eth0", "10.244.244.66", "10.244.79.1", 64, None),
        (W2, src.veth, "10.244.244.66", "10.244.79.1", 64, None),
        (W2, "eth0", "10.244.244.66", "10.244.79.1", 63, None),
        ("calico-ipip-worker", "eth0", "10.244.244.66", "10.244.79.1", 63, None),
        ("calico-ipip-worker", dst.veth, "10.244.244.66", "10.244.79.1", 62, None),
        (dst.name, "eth0", "10.244.244.66", "10.244.79.1", 62, None),
    ]


@pytest.mark.parametrize(("lab", "ipip", "vxlan"), [("calico-vxlan", "Never", "Always"),
                                                    ("calico-bgp", "Never", "Never")])
def test_the_other_modes_labs_are_the_seeds_cluster_but_for_the_pool(
        lab: str, ipip: str, vxlan: str) -> None:
    seed, other = ROOT / "manifests", ROOT / "manifests" / lab
    for name in ("kind-cluster.yaml", "app-deployment.yaml"):
        assert (other / name).read_text() == (seed / name).read_text(), name
    replica = re.sub(r"(?ms)^# The pool asks for IPIP.*?^ipipFallback: VXLAN\n", "",
                     (seed / "replica.yaml").read_text())
    assert (other / "replica.yaml").read_text() == replica
    mine, seeds = topology.load(other), topology.load(seed)
    assert (mine.ipip_mode, mine.vxlan_mode, mine.ipip_fallback) == (ipip, vxlan, "")
    assert mine.nodes == seeds.nodes and mine.cluster == seeds.cluster == "calico-ipip"
    kept = [line for line in (other / "calico.yaml").read_text().splitlines()
            if not line.lstrip().startswith("#") and "Mode:" not in line]
    assert kept == [line for line in (seed / "calico.yaml").read_text().splitlines()
                    if not line.lstrip().startswith("#") and "Mode:" not in line]


# worker2's `show protocols` after worker's BIRD was killed (a real run: trailing blanks as
# BIRD prints them), its `show route` and `ip route` of the same run without worker's block.
SAMPLES = ROOT / "tests" / "samples" / "bird"
SHOWN = (SAMPLES / "show-protocols-one-active.txt").read_text()
ROUTES = (SAMPLES / "show-route-one-missing.txt").read_text()
KERNEL = (SAMPLES / "ip-route-one-missing.txt").read_text()


def test_readiness_names_the_session_that_is_not_established() -> None:
    topo = topology.load(ROOT / "manifests" / "calico-bgp")
    missing = bird.not_converged(topo, W2, SHOWN, ROUTES, KERNEL, "None")
    assert missing == ("session Mesh_172_18_0_3 (to calico-ipip-worker) is not Established: "
                       "start Active        Socket: Connection refused")
    up = SHOWN.replace("start  19:31:40    Active        Socket: Connection refused",
                       "up     19:31:40    Established")
    assert up != SHOWN
    assert bird.not_converged(topo, W2, up, ROUTES, KERNEL, "None") == (
        "BIRD has no route for calico-ipip-worker's block 10.244.79.0/26")
    learned = ROUTES + ("10.244.79.0/26     via 172.18.0.3 on eth0 [Mesh_172_18_0_3 19:08:38]"
                        " * (100/0) [i]\n")
    assert bird.not_converged(topo, W2, up, learned, KERNEL, "None") == (
        "the kernel has no BIRD route for 10.244.79.0/26 via 172.18.0.3")
    routed = KERNEL + "10.244.79.0/26 via 172.18.0.3 dev eth0 proto bird \n"
    assert bird.not_converged(topo, W2, up, learned, routed, "None") is None
