# The native lab: the seed's real cluster in Linux namespaces, checked as the seed's pages show it.
"""The native lab, brought up once for this module (about a minute and a half here), and the
seed's claims checked on it; then that nothing is left after ``labkit down``, including after
the lab's owner is killed halfway through ``labkit up``.

Runs as root with the parts built (``labkit parts build``); skips, saying which is missing,
elsewhere (``--require-parts`` turns a missing part into a failure).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import labkit
from labkit.api.lab import Lab
from labkit.model.errors import LabUnavailable

NOT_BUILT = "labkit parts build has not run here"
CONTROL_PLANE = "calico-ipip-control-plane"
KILLED = "labkit-native-killtest"


def _unavailable() -> str | None:
    from labkit.backends.native import backend

    return backend.unavailable()


@pytest.fixture(scope="module")
def why_not() -> None:
    reason = _unavailable()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def lab(why_not: None) -> Iterator[Lab]:
    opened = labkit.open_lab("native", name="pytest")  # not a lab `labkit up` left running
    with opened:
        yield opened


def _leftovers(folder: str, owner: int) -> list[str]:
    """What a native lab whose folder is ``folder`` left on this machine."""
    from labkit.backends.native import nodes

    name = Path(folder).name
    left = []
    if Path(folder).exists():
        left.append(f"folder {folder}")
    mounts = Path("/proc/self/mountinfo").read_text()
    left += [f"mount {line.split()[4]}" for line in mounts.splitlines() if name in line]
    left += [f"cgroup {h / name}" for h in nodes.hierarchies() if (h / name).exists()]
    if Path(f"/proc/{owner}").exists():
        left.append(f"owner {owner}")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"/{name}" in (entry / "cgroup").read_text():
                    left.append(f"process {entry.name}")
            except OSError:
                pass
    return left


def _labkit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


# First in the file: it runs before the module's lab is up (two labs at once on two CPUs
# would slow both).
def test_sigkill_of_the_owner_halfway_then_down_leaves_nothing(why_not: None) -> None:
    state = Path(os.environ.get("TMPDIR") or "/tmp") / f"{KILLED}.json"
    up = subprocess.Popen([sys.executable, "-m", "labkit.cli", "up", "--lab", "native",
                           "--name", "killtest"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        # halfway: the nodes run and kubeadm init has started
        deadline = time.monotonic() + 120
        folder, owner = "", 0
        while time.monotonic() < deadline and up.poll() is None:
            try:
                data = json.loads(state.read_text())
            except (OSError, ValueError):  # not there yet, or being written
                data = {}
            folder, owner = str(data.get("folder", "")), int(data.get("owner", 0))
            if folder and list(Path(folder).glob("nodes/*/var/log/labkit/kubeadm-init.log")):
                break
            time.sleep(0.2)
        if not (folder and owner):
            up.kill()
            pytest.fail(f"labkit up never got halfway: {up.communicate()[1]}")
        time.sleep(3)
        os.kill(owner, signal.SIGKILL)
        up.wait(timeout=120)  # the commands in the nodes fail: labkit up ends with an error
        assert up.returncode != 0
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    assert _leftovers(folder, owner) != [], "the killed owner's mounts and cgroups should remain"
    done = _labkit("down", "--lab", "native", "--name", "killtest")
    assert done.returncode == 0, done.stderr
    assert _leftovers(folder, owner) == []
    assert not state.exists()


def test_a_killed_build_takes_the_lab_it_made_for_itself_with_it(why_not: None) -> None:
    """A build or test opens a lab of its own (not `labkit up`'s): SIGKILL it halfway through
    the bring-up and every process of the lab ends with it; the next sweep (`labkit down`)
    removes its folder, mounts and cgroups."""
    tmp = Path(os.environ.get("TMPDIR") or "/tmp")
    before = set(tmp.glob("labkit-lab-*"))
    child = subprocess.Popen(
        [sys.executable, "-c", "import labkit, time; labkit.open_lab('native'); time.sleep(600)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    folder = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and folder is None and child.poll() is None:
            for new in set(tmp.glob("labkit-lab-*")) - before:
                if list(new.glob("nodes/*/var/log/labkit/kubeadm-init.log")):
                    folder = new
            time.sleep(0.2)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert folder is not None, "the lab never got halfway"
    owner = int(folder.name.split("-")[2])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{owner}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{owner}").exists(), "the lab's owner outlived its build"
    assert _labkit("down", "--lab", "native").returncode == 0
    assert _leftovers(str(folder), owner) == []


def test_sigkill_of_labkit_up_halfway_then_down_leaves_nothing(why_not: None) -> None:
    # The owner outlives a killed `labkit up` (it holds a half-made lab): `labkit down` ends it.
    state = Path(os.environ.get("TMPDIR") or "/tmp") / "labkit-native-clikill.json"
    up = subprocess.Popen([sys.executable, "-m", "labkit.cli", "up", "--lab", "native",
                           "--name", "clikill"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
    folder, owner = "", 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and up.poll() is None:
            try:
                data = json.loads(state.read_text())
            except (OSError, ValueError):
                data = {}
            folder, owner = str(data.get("folder", "")), int(data.get("owner", 0))
            if folder and list(Path(folder).glob("nodes/*/var/log/labkit/kubeadm-init.log")):
                break
            time.sleep(0.2)
    finally:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
    assert folder and owner, "labkit up never got halfway"
    assert Path(f"/proc/{owner}").exists()
    done = _labkit("status", "--lab", "native", "--name", "clikill")
    assert done.returncode == 1 and "still coming up" in done.stderr, done.stderr
    done = _labkit("down", "--lab", "native", "--name", "clikill")
    assert done.returncode == 0, done.stderr
    assert _leftovers(folder, owner) == []
    assert not state.exists()


def _sh(lab: Lab, target: str, command: str) -> str:
    return lab.sh(target, command, timeout=120).stdout


def test_three_ready_nodes_at_v1_23_4_on_containerd(lab: Lab) -> None:
    out = _sh(lab, CONTROL_PLANE, "kubectl get nodes -o wide")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert sorted(r[0] for r in rows) == [CONTROL_PLANE, "calico-ipip-worker",
                                           "calico-ipip-worker2"], out
    for row in rows:
        assert row[1] == "Ready" and row[4] == "v1.23.4", out
        assert row[-1].startswith("containerd://"), out


def test_the_system_pods_and_the_app_pods_run(lab: Lab) -> None:
    out = _sh(lab, CONTROL_PLANE, "kubectl get pods -A -o wide")
    rows = [line.split() for line in out.splitlines()[1:]]
    running = [r for r in rows if r[3] == "Running" and r[2] == "1/1"]
    assert len(running) == len(rows), out

    def count(prefix: str) -> int:
        return sum(1 for r in running if r[1].startswith(prefix))

    assert count("calico-node-") == 3, out
    assert len({r[7] for r in running if r[1].startswith("calico-node-")}) == 3, out
    assert count("calico-kube-controllers-") == 1, out
    assert count("coredns-") == 2, out
    assert count("app-") == 4, out
    assert count("local-path-provisioner") == 0  # left out: see labkit.backends.native.bringup


def _app_pods(lab: Lab) -> list[labkit.api.lab.Pod]:
    return [p for p in lab.pods if p.name.startswith("app-")]


def test_the_pod_address_is_a_32(lab: Lab) -> None:
    for pod in _app_pods(lab):
        out = pod.sh("ip -4 -o addr show dev eth0").stdout
        assert f"inet {pod.ip}/32 " in out, out


def test_the_pod_routes_everything_via_169_254_1_1(lab: Lab) -> None:
    out = _app_pods(lab)[0].sh("ip route").stdout
    assert out.splitlines()[0].startswith("default via 169.254.1.1 dev eth0"), out


def test_arping_is_answered_by_ee_ee_ee_ee_ee_ee(lab: Lab) -> None:
    out = _app_pods(lab)[0].sh("arping -c 1 -I eth0 169.254.1.1").stdout
    assert "[EE:EE:EE:EE:EE:EE]" in out, out


def test_ping_169_254_1_1_is_not_answered(lab: Lab) -> None:
    result = _app_pods(lab)[0].sh("ping -c 1 -W 1 169.254.1.1", check=False)
    assert result.rc != 0 and "0 received" in result.stdout, result.output


def test_the_cali_device_is_the_hash_of_namespace_and_pod_with_proxy_arp(lab: Lab) -> None:
    for pod in _app_pods(lab):
        veth = "cali" + hashlib.sha1(f"default.{pod.name}".encode()).hexdigest()[:11]
        out = lab.node(pod.node).sh(f"ip -o link show {veth}; "
                                    f"cat /proc/sys/net/ipv4/conf/{veth}/proxy_arp").stdout
        assert f"{veth}@" in out and out.strip().endswith("1"), out


def test_the_node_routes_each_local_pod_to_its_cali_device(lab: Lab) -> None:
    for node in lab.nodes:
        routes = node.sh("ip route").stdout
        for pod in (p for p in lab.pods if p.node == node.name):
            assert re.search(rf"^{re.escape(pod.ip)} dev cali[0-9a-f]{{11}} scope link",
                             routes, re.M), (pod.name, routes)


def test_calicoctl_shows_the_pool(lab: Lab) -> None:
    out = _sh(lab, CONTROL_PLANE, "DATASTORE_TYPE=kubernetes KUBECONFIG=/etc/kubernetes/"
                                  "admin.conf calicoctl get ippool -o wide")
    header, row = out.splitlines()[0].split(), out.splitlines()[1].split()
    assert dict(zip(header, row, strict=False))["CIDR"] == "10.244.0.0/16", out
    assert "VXLANMODE" in header and row[header.index("VXLANMODE")] == "Always", out


def test_the_inventory_is_the_kind_labs_shape(lab: Lab) -> None:
    info = lab.info
    assert info["backend"] == "native" and info["encapsulation"] == "VXLAN"
    assert info["kubernetes"] == "v1.23.4" and info["calico"] == "v3.23.2"
    assert any("ipip" in note for note in info["notes"])
    assert [n.name for n in lab.nodes] == [CONTROL_PLANE, "calico-ipip-worker",
                                           "calico-ipip-worker2"]
    assert len(_app_pods(lab)) == 4


def _host_kubeconfig(lab: Lab, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """The module's lab's kubeconfig (what ``labkit kubeconfig`` prints for a lab ``labkit up``
    left running), parsed and written to a file."""
    from labkit.backends.native.backend import NativeBackend

    assert isinstance(lab.backend, NativeBackend)
    text = lab.backend.kubeconfig()
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    return yaml.safe_load(text), path


def test_labkit_kubeconfig_is_kinds_with_the_api_server_on_127_0_0_1_only(
        lab: Lab, tmp_path: Path) -> None:
    config, _ = _host_kubeconfig(lab, tmp_path)
    # kind names the cluster, the user and the context kind-<cluster>, and makes it current
    key = "kind-calico-ipip"
    assert config["kind"] == "Config" and config["current-context"] == key
    assert config["contexts"] == [{"name": key, "context": {"cluster": key, "user": key}}]
    assert [u["name"] for u in config["users"]] == [key]
    assert [c["name"] for c in config["clusters"]] == [key]
    cluster = config["clusters"][0]["cluster"]
    match = re.fullmatch(r"https://127\.0\.0\.1:(\d+)", cluster["server"])
    assert match, cluster["server"]
    assert "certificate-authority-data" in cluster and "insecure-skip-tls-verify" not in cluster
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{match.group(1)}"],
                               capture_output=True, text=True, check=True).stdout
    assert [line.split()[3] for line in listening.splitlines()] == \
        [f"127.0.0.1:{match.group(1)}"], listening


def test_labkit_kubeconfig_prints_it_for_a_lab_labkit_up_left_running(lab: Lab) -> None:
    from labkit.backends.native.backend import NativeBackend
    from labkit.model import labs

    # The module's lab is this process's own; registered under a name as `labkit up`
    # registers its lab, `labkit kubeconfig --name` finds it (a second cluster would cost
    # another minute and a half).
    name = f"pytest-kubeconfig-{os.getpid()}"
    state = Path(os.environ.get("TMPDIR") or "/tmp") / f"labkit-native-{name}.json"
    port = int(str(lab.info["apiserver"]).rsplit(":", 1)[1])
    state.write_text(json.dumps({
        "folder": lab.info["folder"], "owner": lab.info["owner"], "ready": True,
        "instance": name, "manifests": str(labs.manifests("calico")), "apiserver_port": port}))
    try:
        done = _labkit("kubeconfig", "--lab", "native", "--name", name, timeout=60)
    finally:
        state.unlink()
    assert done.returncode == 0, done.stderr
    assert isinstance(lab.backend, NativeBackend)
    assert done.stdout == lab.backend.kubeconfig()
    missing = _labkit("kubeconfig", "--lab", "native", "--name", name, timeout=60)
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"labkit: no native lab '{name}' is up"), missing.stderr


def test_kubectl_on_the_host_lists_the_three_nodes_ready(lab: Lab, tmp_path: Path) -> None:
    from labkit import parts

    _, path = _host_kubeconfig(lab, tmp_path)
    kubectl = parts.binary("kubernetes", "kubectl")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    done = subprocess.run([str(kubectl), "--kubeconfig", str(path), "get", "nodes", "-o",
                           "json"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr  # TLS verified: 127.0.0.1 is in the cert's SANs
    items = json.loads(done.stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in items) == [
        CONTROL_PLANE, "calico-ipip-worker", "calico-ipip-worker2"]
    for node in items:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", node["metadata"]["name"]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.23.4"


def test_the_python_client_reads_the_cluster_with_it(lab: Lab, tmp_path: Path) -> None:
    pytest.importorskip("kubernetes", reason="the Python client comes with labkit[kind]")
    from kubernetes import client, config

    kubeconfig, _ = _host_kubeconfig(lab, tmp_path)
    api = client.CoreV1Api(config.new_client_from_config_dict(kubeconfig))
    try:
        names = sorted(n.metadata.name for n in api.list_node().items)
        pods = api.list_namespaced_pod("default", label_selector="app=app").items
    finally:
        api.api_client.close()
    assert names == [CONTROL_PLANE, "calico-ipip-worker", "calico-ipip-worker2"]
    assert len(pods) == 4 and all(p.status.phase == "Running" for p in pods)


def test_labkit_down_leaves_alone_a_lab_a_running_build_made_for_itself(lab: Lab) -> None:
    """`labkit down` removes what `labkit up` started and what dead labs left; this module's
    lab belongs to this running pytest, and keeps running."""
    assert _labkit("down", "--lab", "native").returncode == 0
    node = lab.nodes[0]
    assert node.sh("echo still here").stdout == "still here\n"


def test_zz_down_leaves_nothing(lab: Lab) -> None:
    folder, owner = lab.info["folder"], int(lab.info["owner"])
    port = int(str(lab.info["apiserver"]).rsplit(":", 1)[1])
    assert _leftovers(folder, owner) != []
    lab.close()
    assert _leftovers(folder, owner) == []
    with pytest.raises(ConnectionRefusedError):  # the published API server went with the lab
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


# -- without a lab: what the backend decides on its own ----------------------------------------


# kubeadm's admin.conf, in the shape kubeadm writes it (its own names), and what `kind get
# kubeconfig --name calico-ipip` prints for it: every name kind-<cluster>, the server replaced
# by the published one, keys sorted, list items at their key's indent (sigs.k8s.io/yaml).
ADMIN_CONF = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Y2EgY2VydA==
    server: https://calico-ipip-control-plane:6443
  name: calico-ipip
contexts:
- context:
    cluster: calico-ipip
    user: kubernetes-admin
  name: kubernetes-admin@calico-ipip
current-context: kubernetes-admin@calico-ipip
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: YWRtaW4gY2VydA==
    client-key-data: YWRtaW4ga2V5
"""
KIND_GET_KUBECONFIG = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Y2EgY2VydA==
    server: https://127.0.0.1:38117
  name: kind-calico-ipip
contexts:
- context:
    cluster: kind-calico-ipip
    user: kind-calico-ipip
  name: kind-calico-ipip
current-context: kind-calico-ipip
kind: Config
preferences: {}
users:
- name: kind-calico-ipip
  user:
    client-certificate-data: YWRtaW4gY2VydA==
    client-key-data: YWRtaW4ga2V5
"""


def test_the_kubeconfig_is_what_kind_get_kubeconfig_prints() -> None:
    from labkit.backends.cluster.kubeconfig import kind_kubeconfig

    assert kind_kubeconfig(ADMIN_CONF, "calico-ipip", "https://127.0.0.1:38117") == \
        KIND_GET_KUBECONFIG
    # inside the cluster (no server given) kind keeps kubeadm's endpoint
    assert "server: https://calico-ipip-control-plane:6443\n" in kind_kubeconfig(
        ADMIN_CONF, "calico-ipip")


def test_a_kubeconfig_kubeadm_would_not_write_is_refused() -> None:
    from labkit.backends.cluster.kubeconfig import KubeconfigError, kind_kubeconfig

    with pytest.raises(KubeconfigError, match="one cluster"):
        kind_kubeconfig(ADMIN_CONF.replace(
            "contexts:\n", "- cluster: {server: https://elsewhere:6443}\n  name: b\ncontexts:\n"),
            "calico-ipip")
    with pytest.raises(KubeconfigError):
        kind_kubeconfig("\t", "calico-ipip")


def test_kubeadm_conf_is_kinds_for_the_control_plane_and_the_workers() -> None:
    from labkit.backends.cluster import kubeadm

    text = kubeadm.render("calico-ipip", kubeadm.Node(CONTROL_PLANE, "172.18.0.2", True),
                          "10.244.0.0/16")
    docs = {d["kind"]: d for d in yaml.safe_load_all(text)}
    cluster = docs["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == f"{CONTROL_PLANE}:6443"
    assert cluster["networking"] == {"podSubnet": "10.244.0.0/16",
                                     "serviceSubnet": "10.96.0.0/16"}
    assert docs["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"]["provider-id"] == \
        f"kind://docker/calico-ipip/{CONTROL_PLANE}"
    assert docs["JoinConfiguration"]["controlPlane"]["localAPIEndpoint"]["advertiseAddress"] == \
        "172.18.0.2"
    assert docs["KubeletConfiguration"]["cgroupDriver"] == "cgroupfs"
    assert docs["KubeProxyConfiguration"]["conntrack"]["maxPerCore"] == 0
    worker = kubeadm.render("calico-ipip", kubeadm.Node("calico-ipip-worker", "172.18.0.3",
                                                        False), "10.244.0.0/16")
    join = next(d for d in yaml.safe_load_all(worker) if d["kind"] == "JoinConfiguration")
    assert "controlPlane" not in join
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == f"{CONTROL_PLANE}:6443"


@pytest.mark.parametrize(("node", "ip", "control_plane", "sample"), [
    (CONTROL_PLANE, "172.18.0.2", True, "kubeadm-control-plane.conf"),
    ("calico-ipip-worker", "172.18.0.3", False, "kubeadm-worker.conf"),
])
def test_kubeadm_conf_is_what_kind_v0_12_0_writes(node: str, ip: str, control_plane: bool,
                                                  sample: str) -> None:
    from labkit.backends.cluster import kubeadm

    # The samples are kind v0.12.0's own rendering (its template and YAML patcher, run from
    # its module) for the seed's cluster.
    expected = (Path(__file__).parent / "samples" / "kind" / sample).read_text()
    text = kubeadm.render("calico-ipip", kubeadm.Node(node, ip, control_plane),
                          "10.244.0.0/16")
    assert list(yaml.safe_load_all(text)) == list(yaml.safe_load_all(expected))


def test_the_deployments_pods_come_first_and_crash_loops_are_seen() -> None:
    from labkit.backends.cluster.settings import load
    from labkit.backends.native import bringup

    settings = load()
    app = {"namespace": "default", "labels": {"app": "app", "pod-template-hash": "x"}}
    assert bringup.is_app(settings, app)
    assert not bringup.is_app(settings, {"namespace": "kube-system",
                                         "labels": {"k8s-app": "kube-dns"}})
    looping = {"status": {"containerStatuses": [
        {"name": "calico-node", "restartCount": 3,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert bringup._crash_looping(looping)
    assert not bringup._crash_looping({"status": {"containerStatuses": [
        {"name": "calico-node", "restartCount": 1,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}})


def test_an_ordinary_user_gets_one_line_saying_it_needs_root(tmp_path: Path) -> None:
    # As root, become nobody once what the command imports is loaded (nobody may not read
    # this Python's standard library).
    drop = "os.setgid(65534); os.setuid(65534); " if os.geteuid() == 0 else ""
    code = ("import os, sys, labkit.cli, labkit.figures.status, labkit.model.labs, "
            "labkit.backends.native.backend; " + drop +
            "sys.exit(labkit.cli.main(['up', '--lab', 'native']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent,
                          env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "needs root" in done.stderr, done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the native lab says this after its root check")
def test_a_bgp_pool_is_refused_saying_it_needs_calicos_bird() -> None:
    with pytest.raises(LabUnavailable, match=r"^manifests/calico-bgp/calico.yaml asks for a pool "
                                             r"without encapsulation \(BGP\): that needs "
                                             r"Calico's BIRD"):
        labkit.open_lab("native", lab="calico-bgp")

