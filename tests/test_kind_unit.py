# The kind lab's parts that need no cluster: manifests, downloads, preflight, exec streams,
# readiness and the inventory.
from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import yaml

import labkit
from labkit.backends.cluster import commands, inventory, settings
from labkit.backends.cluster.commands import Exec, ExecError
from labkit.backends.kind import (
    backend,
    cluster,
    download,
    manage,
    provision,
    readiness,
)
from labkit.model import calico
from labkit.model.errors import (
    CommandTimeout,
    LabError,
    LabUnavailable,
    ManifestError,
    ToolMissing,
    UnknownTarget,
)
from labkit.model.output import Output
from labkit.model.tools import CTRL_C
from labkit.model.topology import MANIFESTS

SAMPLES = Path(__file__).parent / "samples" / "kind"
CLUSTER = json.loads((SAMPLES / "cluster.json").read_text())
EXEC_SAMPLES = sorted(SAMPLES.glob("exec-*.json"))


def frames_from_json(rows: list[dict[str, Any]]) -> list[tuple[int, bytes]]:
    """The messages of a recording (tests/samples/kind), as a websocket's recv() returns them."""
    frames = []
    for row in rows:
        payload = (row["text"].encode("utf-8") if "text" in row
                   else base64.b64decode(row.get("base64", "")))
        data = bytes([row["channel"]]) + payload if "channel" in row else payload
        frames.append((int(row["opcode"]), data))
    return frames


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    """A copy of manifests/ that a test may edit."""
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    return copy


def edit(path: Path, change: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc))


# -- manifests ------------------------------------------------------------------------------


def test_the_seeds_cluster_and_deployment_are_what_the_kind_lab_applies() -> None:
    lab = settings.load()
    assert lab.cluster == "calico-ipip"
    assert lab.node_names == ("calico-ipip-control-plane", "calico-ipip-worker",
                              "calico-ipip-worker2")
    assert set(lab.node_images) == {"kindest/node:v1.23.4"}
    assert lab.kind_config["networking"]["disableDefaultCNI"] is True
    assert lab.calico_version == "v3.23.5"
    assert lab.manifest.url == \
        "https://projectcalico.docs.tigera.io/archive/v3.23/manifests/calico.yaml"
    assert (lab.ipip_mode, lab.vxlan_mode, lab.encapsulation) == ("Always", "Never", "IPIP")
    assert (lab.app, lab.namespace, lab.replicas) == ("app", "default", 4)
    assert lab.app_labels == {"app": "app"}
    assert lab.container == "nettoolbox"
    assert lab.deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "burlyluo/nettool"


def test_kind_gets_the_config_file_from_manifests() -> None:
    lab = settings.load()
    argv = cluster.create_argv(lab.cluster, lab.kind_config_path)
    assert argv[:3] == ["kind", "create", "cluster"]
    assert argv[argv.index("--name") + 1] == "calico-ipip"
    assert Path(argv[argv.index("--config") + 1]) == MANIFESTS / "kind-cluster.yaml"
    # Without a CNI the control-plane is never Ready before Calico: kind must not wait for it.
    assert not any(a.startswith("--wait") for a in argv)
    kubeconfig = Path(argv[argv.index("--kubeconfig") + 1])
    assert kubeconfig != Path.home() / ".kube" / "config"


@pytest.mark.parametrize(("file", "change", "says"), [
    ("kind-cluster.yaml", lambda d: d["networking"].update(disableDefaultCNI=False),
     "disableDefaultCNI"),
    ("kind-cluster.yaml", lambda d: d["nodes"][1].pop("image"), "image"),
    ("kind-cluster.yaml", lambda d: d["nodes"].append({"role": "control-plane",
                                                      "image": "x"}), "control-plane"),
    ("calico.yaml", lambda d: d["manifest"].update(sha256="abc"), "manifest.sha256"),
    ("calico.yaml", lambda d: d["manifest"].pop("sha256"), "manifest.sha256"),
    ("calico.yaml", lambda d: d["pool"].update(vxlanMode="Always"), "IPIP and VXLAN"),
    ("calico.yaml", lambda d: d["pool"].update(ipipMode="Sometimes"), "pool.ipipMode"),
    ("calico.yaml", lambda d: d["calicoctl"]["sha256"].update(amd64=42),
     "calicoctl.sha256.amd64"),
    ("app-deployment.yaml", lambda d: d["spec"]["selector"].update(matchLabels={"app": "x"}),
     "matchLabels"),
    ("app-deployment.yaml", lambda d: d["spec"].update(replicas=0), "replicas"),
    ("app-deployment.yaml", lambda d: d.update(kind="DaemonSet"), "Deployment"),
])
def test_a_bad_manifest_is_named_with_its_file_and_key(manifests: Path, file: str,
                                                       change: Any, says: str) -> None:
    edit(manifests / file, change)
    with pytest.raises(ManifestError) as caught:
        settings.load(manifests)
    message = str(caught.value)
    assert message.startswith(f"{manifests / file}:")
    assert says in message
    assert "\n" not in message


def calico_manifest(version: str = "v3.23.5", ipip: str = "Always") -> str:
    """The parts of Calico's manifest the lab relies on, in its shape."""
    node = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "calico-node", "namespace": "kube-system"},
        "spec": {"template": {"spec": {
            "initContainers": [{"name": "install-cni", "image": f"docker.io/calico/cni:{version}"}],
            "containers": [{"name": "calico-node", "image": f"docker.io/calico/node:{version}",
                            "env": [{"name": "CALICO_IPV4POOL_IPIP", "value": ipip},
                                    {"name": "CALICO_IPV4POOL_VXLAN", "value": "Never"}]}]}}},
    }
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "ippools.crd.projectcalico.org"}}
    return "---\n# Source: calico/templates/kdd-crds.yaml\n" + yaml.safe_dump(crd) + "---\n" + \
        yaml.safe_dump(node) + "---\n"


def env(objects: list[dict[str, Any]]) -> dict[str, str]:
    node = next(o for o in objects if o["kind"] == "DaemonSet")
    container = node["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def test_calico_is_installed_with_the_pool_of_calico_yaml(manifests: Path) -> None:
    objects = settings.calico_objects(calico_manifest(), settings.load())
    assert [o["kind"] for o in objects] == ["CustomResourceDefinition", "DaemonSet"]
    assert env(objects)["CALICO_IPV4POOL_IPIP"] == "Always"
    assert env(objects)["CALICO_IPV4POOL_VXLAN"] == "Never"
    assert env(objects)["CALICO_IPV4POOL_BLOCK_SIZE"] == "26"
    edit(manifests / "calico.yaml", lambda d: d["pool"].update(ipipMode="Never",
                                                               vxlanMode="Always"))
    vxlan = settings.load(manifests)
    assert vxlan.encapsulation == "VXLAN"
    assert env(settings.calico_objects(calico_manifest(), vxlan))["CALICO_IPV4POOL_VXLAN"] == \
        "Always"


def test_a_manifest_of_another_calico_version_is_refused() -> None:
    with pytest.raises(settings.SettingsError, match=r"calico/node:v3\.25\.0.*says v3\.23\.5"):
        settings.calico_objects(calico_manifest(version="v3.25.0"), settings.load())
    with pytest.raises(settings.SettingsError, match="no calico-node DaemonSet"):
        settings.calico_objects("kind: ConfigMap\nmetadata: {name: x}\n", settings.load())


def test_every_kind_message_names_the_calico_yaml_that_was_read(
        manifests: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # LABKIT_MANIFESTS points at a copy outside the checkout: no message may send the reader
    # to the checkout's manifests/calico.yaml, which the lab did not read.
    read = str(manifests / "calico.yaml")
    monkeypatch.setenv("LABKIT_MANIFESTS", str(manifests))
    lab = settings.load()
    with pytest.raises(LabUnavailable) as unpinned:
        download.get(lab.manifest, fetch=FakeWeb(b"x"), directory=tmp_path)
    assert f"`manifest.sha256` in {read} is null" in str(unpinned.value)
    assert f"writes it into {read})" in unpinned.value.hint
    with pytest.raises(settings.SettingsError) as other_version:
        settings.calico_objects(calico_manifest(version="v3.25.0"), lab)
    assert str(other_version.value).endswith(f"but {read} says v3.23.5")
    with pytest.raises(LabError) as pool:
        backend.start(encapsulation="VXLAN", progress=lambda message: None)
    assert str(pool.value).startswith(f"the kind lab runs the pool of {read} (IPIP), not VXLAN")
    with pytest.raises(LabError) as arch:
        manage.pin("calicoctl", arch="riscv64", fetch=FakeWeb(b"x"))
    assert str(arch.value) == f"{read} lists calicoctl for amd64, arm64, not riscv64"
    edit(manifests / "calico.yaml", lambda d: d.pop("calicoctl"))
    with pytest.raises(LabError) as none:
        manage.pin("calicoctl", fetch=FakeWeb(b"x"))
    assert str(none.value) == f"{read} has no `calicoctl` entry to pin"


def test_pin_writes_into_the_calico_yaml_that_was_read(manifests: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = (MANIFESTS / "calico.yaml").read_bytes()
    monkeypatch.setenv("LABKIT_MANIFESTS", str(manifests))
    monkeypatch.setenv("XDG_CACHE_HOME", str(manifests.parent / "cache"))
    digest = manage.pin("calicoctl", arch="arm64", fetch=FakeWeb(b"binary"))
    assert digest == download.sha256(b"binary")
    assert settings.load(manifests).calicoctl["arm64"].sha256 == digest
    assert (MANIFESTS / "calico.yaml").read_bytes() == checkout


def test_a_lab_in_a_folder_of_its_own_is_named_by_that_folder() -> None:
    lab = settings.load(MANIFESTS / "calico-vxlan")
    assert lab.manifest.file == "manifests/calico-vxlan/calico.yaml"
    assert {arch: d.file for arch, d in lab.calicoctl.items()} == {
        "amd64": "manifests/calico-vxlan/calico.yaml",
        "arm64": "manifests/calico-vxlan/calico.yaml"}
    with pytest.raises(LabUnavailable) as unpinned:
        download.get(lab.manifest, fetch=FakeWeb(b"x"))
    assert "`manifest.sha256` in manifests/calico-vxlan/calico.yaml is null" in \
        str(unpinned.value)
    assert lab.pin_path == MANIFESTS / "calico-vxlan" / "calico.yaml"


# -- downloads: pinned, verified, cached ----------------------------------------------------


class FakeWeb:
    def __init__(self, body: bytes | Exception) -> None:
        self.body = body
        self.calls: list[str] = []

    def __call__(self, url: str, timeout: float) -> bytes:
        self.calls.append(url)
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


def pinned(body: bytes) -> settings.Download:
    return settings.Download("the Calico manifest", "https://example.invalid/calico.yaml",
                             download.sha256(body), "manifest.sha256", "manifests/calico.yaml")


def test_the_kind_lab_refuses_an_unpinned_manifest_and_says_how_to_pin_it(
        tmp_path: Path) -> None:
    web = FakeWeb(b"x")
    with pytest.raises(LabUnavailable) as caught:
        download.get(settings.load().manifest, fetch=web, directory=tmp_path)
    first_line = str(caught.value).splitlines()[0]
    assert "not pinned" in first_line and "manifest.sha256" in first_line
    assert "labkit pin" in caught.value.hint
    assert web.calls == []


def test_a_pinned_file_is_downloaded_once_then_read_from_the_cache(tmp_path: Path) -> None:
    body = calico_manifest().encode()
    web = FakeWeb(body)
    assert download.get(pinned(body), fetch=web, directory=tmp_path) == body
    assert download.get(pinned(body), fetch=web, directory=tmp_path) == body
    assert len(web.calls) == 1
    assert download.cached_path(pinned(body), tmp_path).read_bytes() == body


def test_a_changed_file_is_refused_naming_both_hashes(tmp_path: Path) -> None:
    good, bad = b"the pinned file", b"what the server sends today"
    with pytest.raises(download.ChecksumMismatch) as caught:
        download.get(pinned(good), fetch=FakeWeb(bad), directory=tmp_path)
    first_line = str(caught.value).splitlines()[0]
    assert download.sha256(good) in first_line and download.sha256(bad) in first_line
    assert not download.cached_path(pinned(good), tmp_path).exists()


def test_a_corrupted_cache_is_fetched_again(tmp_path: Path) -> None:
    body = b"the pinned file"
    path = download.cached_path(pinned(body), tmp_path)
    path.write_bytes(b"the pinned fi")  # a download cut short
    web = FakeWeb(body)
    assert download.get(pinned(body), fetch=web, directory=tmp_path) == body
    assert len(web.calls) == 1


def test_no_network_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    web = FakeWeb(urllib.error.URLError("[Errno -3] Temporary failure in name resolution"))
    with pytest.raises(LabUnavailable) as caught:
        download.get(pinned(b"x"), fetch=web, directory=tmp_path)
    message, hint = str(caught.value).split("\n  hint: ")
    assert "cannot download the Calico manifest" in message
    assert "Temporary failure in name resolution" in message
    assert "internet" in hint


def test_pin_records_the_hash_and_keeps_the_comments(manifests: Path, tmp_path: Path) -> None:
    body = b"calico manifest bytes"
    before = (manifests / "calico.yaml").read_text()
    lab = settings.load(manifests)
    digest = download.pin(lab.manifest, manifests / "calico.yaml", fetch=FakeWeb(body),
                          directory=tmp_path)
    after = (manifests / "calico.yaml").read_text()
    assert digest == download.sha256(body)
    assert f"  sha256: {digest}\n" in after
    assert [line for line in before.splitlines() if line.lstrip().startswith("#")] == \
        [line for line in after.splitlines() if line.lstrip().startswith("#")]
    assert settings.load(manifests).manifest.sha256 == digest
    assert download.get(settings.load(manifests).manifest, fetch=FakeWeb(b""),
                        directory=tmp_path) == body
    arm = download.pin(lab.calicoctl["arm64"], manifests / "calico.yaml",
                       fetch=FakeWeb(b"binary"), directory=tmp_path)
    again = settings.load(manifests)
    assert again.calicoctl["arm64"].sha256 == arm
    assert again.calicoctl["amd64"].sha256 is None
    assert again.manifest.sha256 == digest


# -- what is missing on this machine --------------------------------------------------------


def fake_tool(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(script))
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PATH, to fill with fake docker and kind."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return path


DOCKER_UP = """
import sys
if sys.argv[1:3] == ["version", "--format"]:
    print("28.2.2")
"""
DOCKER_DOWN = """
import sys
print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker "
      "daemon running?", file=sys.stderr)
sys.exit(1)
"""


def test_no_docker(bin_dir: Path) -> None:
    assert cluster.unavailable() == "`docker` not found on PATH"
    with pytest.raises(ToolMissing) as caught:
        cluster.preflight()
    assert caught.value.tool == "docker"
    assert "docs.docker.com" in caught.value.hint


def test_no_docker_daemon(bin_dir: Path) -> None:
    fake_tool(bin_dir, "docker", DOCKER_DOWN)
    reason = cluster.unavailable()
    assert reason == ("no Docker daemon (Cannot connect to the Docker daemon at "
                      "unix:///var/run/docker.sock. Is the docker daemon running?)")
    with pytest.raises(LabUnavailable) as caught:
        cluster.preflight()
    assert str(caught.value).startswith("no Docker daemon answers: Cannot connect")
    assert "systemctl start docker" in caught.value.hint


def test_docker_daemon_not_allowed(bin_dir: Path) -> None:
    fake_tool(bin_dir, "docker", """
        import sys
        print("permission denied while trying to connect to the Docker daemon socket at "
              "unix:///var/run/docker.sock", file=sys.stderr)
        sys.exit(1)
    """)
    with pytest.raises(LabUnavailable) as caught:
        cluster.preflight()
    assert "`docker` group" in caught.value.hint


def test_no_kind(bin_dir: Path) -> None:
    fake_tool(bin_dir, "docker", DOCKER_UP)
    assert cluster.unavailable() == "`kind` not found on PATH"
    with pytest.raises(ToolMissing) as caught:
        cluster.preflight()
    assert caught.value.tool == "kind"
    assert "kind.sigs.k8s.io" in caught.value.hint


def kind_logging_calls(bin_dir: Path, clusters: str = "", create_fails: bool = False) -> Path:
    log = bin_dir.parent / "kind.log"
    fake_tool(bin_dir, "kind", f"""
        import sys
        with open({str(log)!r}, "a") as log:
            log.write(" ".join(sys.argv[1:]) + "\\n")
        if sys.argv[1:3] == ["get", "clusters"]:
            print({clusters!r}, end="")
        elif sys.argv[1:3] == ["create", "cluster"] and {create_fails!r}:
            print("Creating cluster \\"calico-ipip\\" ...")
            print(" ✗ Preparing nodes 📦")
            print("ERROR: failed to create cluster: could not pull kindest/node:v1.23.4")
            sys.exit(1)
    """)
    return log


def test_everything_that_can_fail_first_fails_before_a_cluster_exists(bin_dir: Path) -> None:
    fake_tool(bin_dir, "docker", DOCKER_UP)
    log = kind_logging_calls(bin_dir)
    assert cluster.unavailable() is None
    with pytest.raises(LabUnavailable, match="not pinned"):
        backend.start(progress=lambda message: None)
    assert "create" not in log.read_text()


def test_a_failed_kind_create_is_cleaned_up_and_explained(bin_dir: Path) -> None:
    fake_tool(bin_dir, "docker", DOCKER_UP)
    log = kind_logging_calls(bin_dir, clusters="calico-ipip\n", create_fails=True)
    shown: list[str] = []
    with pytest.raises(LabUnavailable) as caught:
        cluster.create("calico-ipip", MANIFESTS / "kind-cluster.yaml", shown.append)
    assert "could not pull kindest/node:v1.23.4" in str(caught.value).splitlines()[0]
    assert "kind: ✗ Preparing nodes 📦" in shown
    assert "delete cluster --name calico-ipip" in log.read_text()


def test_a_failure_after_kind_create_says_the_cluster_is_left_up(
        bin_dir: Path, manifests: Path) -> None:
    pytest.importorskip("kubernetes")
    fake_tool(bin_dir, "docker", DOCKER_UP)
    state = bin_dir.parent / "created"
    fake_tool(bin_dir, "kind", f"""
        import os, sys
        if sys.argv[1:3] == ["get", "clusters"] and os.path.exists({str(state)!r}):
            print("calico-ipip")
        elif sys.argv[1:3] == ["create", "cluster"]:
            open({str(state)!r}, "w").close()
            print(" ✓ Preparing nodes 📦 ")
        elif sys.argv[1:3] == ["get", "kubeconfig"]:
            print("apiVersion: v1")
            print("kind: Config")
            print("clusters: []")
    """)
    download.pin(settings.load(manifests).manifest, manifests / "calico.yaml",
                 fetch=FakeWeb(calico_manifest().encode()))
    shown: list[str] = []
    with pytest.raises(LabUnavailable) as caught:
        backend.start(manifests, progress=shown.append)
    assert "kind: ✓ Preparing nodes 📦" in shown, caught.value
    assert "kubeconfig" in caught.value.message and "\n" not in caught.value.message
    assert "kind cluster 'calico-ipip' is left up" in caught.value.hint
    assert "labkit down --lab kind" in caught.value.hint


def test_delete_and_status_when_there_is_no_cluster(bin_dir: Path) -> None:
    fake_tool(bin_dir, "docker", DOCKER_UP)
    log = kind_logging_calls(bin_dir, clusters="other\n")
    assert manage.delete(progress=lambda message: None) is False
    state = manage.status()
    assert not state.up
    assert str(state) == "kind cluster calico-ipip: not up (`labkit up --lab kind` creates it)"
    with pytest.raises(LabUnavailable, match="no kind cluster 'calico-ipip' is up"):
        backend.start(reuse_only=True, progress=lambda message: None)
    assert "delete" not in log.read_text() and "create" not in log.read_text()


def test_node_tools_script_installs_only_what_is_missing(tmp_path: Path) -> None:
    script = cluster.tools_script({"sh": "dash", "no-such-tool-here": "the-package"})
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for tool, body in (("apt-get", 'echo "apt-get $*" >> "$LOG"'), ("sed", "exit 0")):
        (fake_bin / tool).write_text(f"#!/bin/sh\n{body}\n")
        (fake_bin / tool).chmod(0o755)
    log = tmp_path / "apt.log"
    done = subprocess.run(["/bin/sh", "-c", script],
                          env={"PATH": f"{fake_bin}:/usr/bin:/bin", "LOG": str(log)})
    assert done.returncode == 0
    calls = log.read_text().splitlines()
    assert calls[0] == "apt-get -qq update"
    assert calls[1].split()[-1] == "the-package" and "dash" not in calls[1]


# -- exec streams ---------------------------------------------------------------------------


class Frames:
    """A recorded exec websocket played back, as :class:`commands.FrameSource`."""

    def __init__(self, rows: list[dict[str, Any]], protocol: str = "v4.channel.k8s.io",
                 hold: threading.Event | None = None) -> None:
        self.frames = frames_from_json(rows)
        self.protocol = protocol
        self.hold = hold
        self.aborted = threading.Event()

    def recv(self) -> tuple[int, bytes]:
        if self.hold is not None and len(self.frames) <= 2:
            # a command still running: its last messages come once it has been signalled
            while not self.hold.wait(0.01):
                if self.aborted.is_set():
                    raise ConnectionError("aborted")
        if not self.frames:
            raise ConnectionResetError("connection reset by peer")
        return self.frames.pop(0)

    def abort(self) -> None:
        self.aborted.set()


def job(command: str = "true") -> Exec:
    return Exec(id="1", target="app-1", prompt="root@app-1:/#", command=command,
               pidfile="/tmp/labkit-test-1.pid")


@pytest.mark.parametrize("sample", EXEC_SAMPLES, ids=[p.stem for p in EXEC_SAMPLES])
def test_exec_stream_recordings(sample: Path) -> None:
    recording = json.loads(sample.read_text())
    running = job(recording["command"])
    commands.pump_frames(running, Frames(recording["frames"], recording["protocol"]))
    expect = recording["expect"]
    if "error" in expect:
        assert running.rc is None
        assert isinstance(running.error, ExecError)
        assert expect["error"] in str(running.error)
        assert running.result().extra["exit_status"].startswith("unknown")
        return
    assert running.error is None
    result = running.result()
    for key in ("stdout", "stderr", "output", "rc", "invalid_bytes"):
        assert getattr(result, key) == expect[key], key
    assert result.command == recording["command"]
    assert result.prompt == "root@app-1:/#"


def test_the_kind_lab_keeps_at_most_keep_bytes_of_each_stream_and_counts_the_rest() -> None:
    # The same reader as `docker exec`'s two pipes; a local shell stands in for docker.
    running = Exec(id="1", target="app-1", prompt="root@app-1:/#", command="yes-ish",
                   pidfile="", output=Output(keep=1000))
    commands.start_process(running, ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' y; "
                                     "echo READY; echo oops >&2"])
    # What it prints past the limit still counts for the ready text; it is just not kept.
    assert running.wait_for("READY", 30)
    assert running.wait(30)
    result = running.result()
    assert result.stdout == "y" * 1000
    assert result.stderr == "oops\n"
    assert result.output == "y" * 1000 + "oops\n"
    assert result.dropped == {"stdout": {"kept": 1000, "dropped": 299_006}}


def test_recording_writes_what_the_tests_read(tmp_path: Path) -> None:
    recording = json.loads((SAMPLES / "exec-invalid-utf8.json").read_text())
    running = job(recording["command"])
    commands.pump_frames(running, Frames(recording["frames"]), record=tmp_path / "r.json")
    written = json.loads((tmp_path / "r.json").read_text())
    assert frames_from_json(written["frames"]) == \
        frames_from_json(recording["frames"])


@pytest.mark.parametrize(("status", "rc"), [
    (b'{"metadata":{},"status":"Success"}', 0),
    (b'{"metadata":{},"status":"Success"}\n', 0),
    (b'{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":'
     b'[{"reason":"ExitCode","message":"137"}]}}', 137),
])
def test_exit_code_from_the_status(status: bytes, rc: int) -> None:
    assert commands.exit_code(status) == rc


@pytest.mark.parametrize("status", [
    b"", b"not json", b"[]",
    b'{"status":"Failure","reason":"InternalError","message":"OCI runtime exec failed",'
    b'"details":{"causes":[{"message":"OCI runtime exec failed"}]}}',
    b'{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[]}}',
])
def test_a_status_without_an_exit_code_is_an_error_not_a_number(status: bytes) -> None:
    with pytest.raises(ExecError):
        commands.exit_code(status)


def test_signal_names() -> None:
    assert commands.signal_name("INT") == "INT"
    assert commands.signal_name("sigterm") == "TERM"
    with pytest.raises(LabError, match="unknown signal"):
        commands.signal_name("NOPE")


def test_the_wrapper_runs_the_command_as_sh_c_with_its_own_pid(tmp_path: Path) -> None:
    pidfile = tmp_path / "cmd.pid"
    done = subprocess.run(commands.command_argv(str(pidfile), 'echo "$0 $$"; exit 7'),
                          capture_output=True, text=True, start_new_session=True)
    assert done.returncode == 7
    shell, pid = done.stdout.split()
    assert shell == "/bin/sh"
    assert pidfile.read_text().strip() == pid


def test_the_kill_helper_signals_the_commands_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "cmd.pid"
    # start_new_session: what runc does for every exec'd process
    process = subprocess.Popen(commands.command_argv(str(pidfile), "sleep 30 | cat"),
                               start_new_session=True)
    deadline = time.monotonic() + 5
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    group = os.getpgid(int(pidfile.read_text()))
    assert subprocess.run(commands.kill_argv(str(pidfile), "INT")).returncode == 0
    # The pipeline died of the signal: the shell reports it as a terminal does, 128 + 2.
    assert process.wait(timeout=5) == 128 + signal.SIGINT
    time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)  # sleep and cat went too
    pidfile.unlink()
    assert subprocess.run(commands.kill_argv(str(pidfile), "INT")).returncode == 3


# -- the backend, with fake docker (nodes) and recorded exec streams (pods) ----------------


def sample_inventory() -> dict[str, Any]:
    return inventory.build(
        settings.load(), nodes=CLUSTER["nodes"], pods=CLUSTER["app_pods"],
        affinities=CLUSTER["blockaffinities"], pool=CLUSTER["ippool"],
        links=inventory.link_netns((SAMPLES / "ip-link-worker2.txt").read_text()), info={})


# A fake `docker exec`: runs the command here, in a new session as runc would.
FAKE_DOCKER = """
import os, sys
args = sys.argv[1:]
assert args[0] == "exec", args
args = args[1:]
while args[0].startswith("--"):
    args = args[2:]
os.setsid()
os.execvp(args[1], args[1:])
"""


@pytest.fixture
def kind_lab(bin_dir: Path) -> Any:
    fake_tool(bin_dir, "docker", FAKE_DOCKER)
    os.environ["PATH"] += os.pathsep + "/usr/bin:/bin"
    lab = backend.KindBackend(settings.load(), sample_inventory())
    yield lab
    lab.close()


NODE = "calico-ipip-worker2"


def test_a_node_command_through_docker_exec(kind_lab: backend.KindBackend) -> None:
    started = time.time()
    result = kind_lab.run(NODE, "echo out; sleep 0.05; echo err >&2; exit 3", 10)
    assert (result.stdout, result.stderr, result.output, result.rc) == \
        ("out\n", "err\n", "out\nerr\n", 3)
    assert result.command == "echo out; sleep 0.05; echo err >&2; exit 3"
    assert result.target == NODE and result.prompt == f"root@{NODE}:/#"
    assert started <= result.started <= time.time() and result.duration > 0
    assert not result.timed_out


def test_a_node_command_past_its_timeout_is_killed(kind_lab: backend.KindBackend) -> None:
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        kind_lab.run(NODE, "echo started; sleep 30", 0.5)
    assert time.monotonic() - t0 < 5
    result = caught.value.result
    assert result.timed_out and result.output == "started\n"
    assert result.rc == 128 + signal.SIGKILL


def test_background_node_commands(kind_lab: backend.KindBackend) -> None:
    handle = kind_lab.start(NODE, "echo listening on eth0; sleep 30", "listening on", 5)
    result = kind_lab.stop(handle, "INT", 5)
    assert result.output == "listening on eth0\n"
    assert result.rc == 128 + signal.SIGINT
    handle = kind_lab.start(NODE, "sleep 0.2; echo done", None, 5)
    assert kind_lab.stop(handle, "", 5).stdout == "done\n"
    # Waited for but still running: killed, and that is a timeout (Background.wait raises).
    handle = kind_lab.start(NODE, "sleep 30", None, 5)
    assert kind_lab.stop(handle, "", 0.3).timed_out
    # Asked to stop but ignoring the signal: killed after the grace, and that is no timeout.
    handle = kind_lab.start(NODE, "trap '' INT; echo immune; sleep 30", "immune", 5)
    result = kind_lab.stop(handle, "INT", 0.3)
    assert (result.rc, result.timed_out) == (128 + signal.SIGKILL, False)
    with pytest.raises(LabError, match="no background command"):
        kind_lab.stop(handle, "INT", 5)


def test_a_background_command_that_never_gets_ready(kind_lab: backend.KindBackend) -> None:
    with pytest.raises(CommandTimeout):
        kind_lab.start(NODE, "sleep 30", "listening on", 0.3)
    with pytest.raises(LabError, match="exited with 1 before printing 'listening on'"):
        kind_lab.start(NODE, "echo no such device >&2; exit 1", "listening on", 5)


def test_unknown_targets_name_the_known_ones(kind_lab: backend.KindBackend) -> None:
    with pytest.raises(UnknownTarget) as caught:
        kind_lab.run("calico-ipip-worker3", "true", 5)
    assert "calico-ipip-worker2" in caught.value.known
    assert "app-6d8d9d5c77-w7cqt" in caught.value.known


def test_close_removes_the_pid_files(bin_dir: Path) -> None:
    fake_tool(bin_dir, "docker", FAKE_DOCKER)
    os.environ["PATH"] += os.pathsep + "/usr/bin:/bin"
    lab = backend.KindBackend(settings.load(), sample_inventory())
    lab.run(NODE, "true", 5)
    pidfiles = list(Path("/tmp").glob(f"labkit-{lab._session}-*.pid"))
    assert pidfiles
    lab.close()
    assert not any(p.exists() for p in pidfiles)


class FakeApiServer:
    """Hands out exec streams: the command's (held until a kill arrives), then the kill's."""

    def __init__(self) -> None:
        self.execs: list[tuple[str, str, str, list[str]]] = []
        self.killed = threading.Event()

    def __call__(self, namespace: str, pod: str, container: str,
                 argv: list[str]) -> commands.FrameSource:
        self.execs.append((namespace, pod, container, argv))
        status = '{"metadata":{},"status":"Success"}'
        if argv[2] == commands.KILL:
            self.killed.set()
            return Frames([{"opcode": 2, "channel": 3, "text": status}, {"opcode": 8}])
        interrupted = json.loads((SAMPLES / "exec-interrupted.json").read_text())["frames"]
        return Frames([{"opcode": 2, "channel": 2, "text": "listening on eth0\n"}, *interrupted],
                      hold=self.killed)


def test_a_pod_command_is_stopped_through_a_second_exec() -> None:
    server = FakeApiServer()
    lab = backend.KindBackend(settings.load(), sample_inventory(), pod_exec=server)
    pod = "app-6d8d9d5c77-w7cqt"
    handle = lab.start(pod, "tcpdump -n -i eth0", "listening on", 5)
    result = lab.stop(handle, "INT", 5)
    assert (result.stderr, result.rc) == ("listening on eth0\n", 130)
    assert result.extra["container"] == "nettoolbox"
    (namespace, name, container, argv), kill = server.execs[0], server.execs[1]
    assert (namespace, name, container) == ("default", pod, "nettoolbox")
    assert argv[:2] == ["/bin/sh", "-c"] and argv[-1] == CTRL_C + "tcpdump -n -i eth0"
    assert kill[3] == commands.kill_argv(argv[-2], "INT")


# -- readiness ------------------------------------------------------------------------------


def test_what_is_not_ready_is_named() -> None:
    found = readiness.problems(CLUSTER["problem_pods"], readiness.pod_problem)
    assert found == [
        "pod default/app-6d8d9d5c77-crash (nettoolbox: CrashLoopBackOff)",
        "pod kube-system/calico-kube-controllers-56cdb7c587-2hfvg "
        "(calico-kube-controllers: ContainerCreating)",
        "pod kube-system/calico-node-7xk2p (calico-node: running, not ready)",
        "pod kube-system/coredns-64897985d-9fz8s (Unschedulable)",
    ]
    assert readiness.pod_problem(CLUSTER["app_pods"][-1]) == \
        "pod default/app-6d8d9d5c77-zzzzz is terminating"
    assert readiness.node_problem(CLUSTER["nodes"][0]) is None
    assert readiness.node_problem(CLUSTER["node_not_ready"]) == \
        "node calico-ipip-worker2 not Ready (KubeletNotReady)"
    assert readiness.deployment_problem(CLUSTER["deployment_rolling"]) == \
        "deployment default/app (3/4 ready)"
    assert readiness.deployment_problem(CLUSTER["deployment_ready"]) is None
    assert readiness.daemonset_problem(CLUSTER["daemonset_starting"]) == \
        "daemonset kube-system/calico-node (1/3 ready)"
    assert readiness.missing(CLUSTER["nodes"][:2], settings.load().node_names, "node") == \
        ["node calico-ipip-worker2 not there yet"]


class FakeWatch:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.stopped = False

    def stream(self, lister: Any, **kwargs: Any) -> Any:
        assert kwargs["resource_version"] == "41" and kwargs["timeout_seconds"] >= 1
        yield from self.events
        self.events = []

    def stop(self) -> None:
        self.stopped = True


def test_waiting_follows_the_watch_until_nothing_is_left() -> None:
    pytest.importorskip("kubernetes")
    pod = json.loads(json.dumps(CLUSTER["problem_pods"][0]))
    listing = {"metadata": {"resourceVersion": "41"}, "items": [pod]}
    fixed = json.loads(json.dumps(pod))
    fixed["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    watch = FakeWatch([{"type": "MODIFIED", "raw_object": fixed}])
    shown: list[str] = []
    objects = readiness.wait(lambda **_: listing, readiness.pod_problem, what="pods",
                             timeout=10, to_dict=lambda x: x, watch=lambda: watch,
                             progress=shown.append)
    assert objects == [fixed] and watch.stopped
    assert shown == ["waiting for pods: pod kube-system/calico-node-7xk2p "
                     "(calico-node: running, not ready)"]


def test_waiting_times_out_naming_what_is_not_ready() -> None:
    pytest.importorskip("kubernetes")
    listing = {"metadata": {"resourceVersion": "41"}, "items": CLUSTER["problem_pods"]}
    with pytest.raises(LabUnavailable) as caught:
        readiness.wait(lambda **_: listing, readiness.pod_problem, what="every pod",
                       timeout=0.01, to_dict=lambda x: x, watch=lambda: FakeWatch([]),
                       progress=lambda message: None)
    first_line = str(caught.value).splitlines()[0]
    assert first_line.startswith("timed out after 0.01s waiting for every pod; not ready: ")
    assert "coredns-64897985d-9fz8s (Unschedulable)" in first_line


# -- the inventory --------------------------------------------------------------------------


def test_the_inventory_has_what_lab_nodes_and_pods_take() -> None:
    found = sample_inventory()
    assert found["info"]["backend"] == "kind" and found["info"]["encapsulation"] == "IPIP"
    assert found["info"]["kubernetes"] == "v1.23.4"
    nodes = {n["name"]: n for n in found["nodes"]}
    assert nodes["calico-ipip-worker2"] == {
        "name": "calico-ipip-worker2", "role": "worker", "ip": "172.18.0.4",
        "block": "10.244.244.64/26", "hostname": "calico-ipip-worker2",
        "tunnel_device": "tunl0", "tunnel_ip": "10.244.244.64",
        "prompt": "root@calico-ipip-worker2:/#",
    }
    assert nodes["calico-ipip-control-plane"]["role"] == "control-plane"
    # the borrowed block does not hold the tunnel address, so it is not the node's block
    assert nodes["calico-ipip-worker"]["block"] == "10.244.79.0/26"
    pods = found["pods"]
    assert [p["name"] for p in pods] == ["app-6d8d9d5c77-jv5rd", "app-6d8d9d5c77-w7cqt",
                                         "app-6d8d9d5c77-8xkzn", "app-6d8d9d5c77-q4l2m"]
    first = pods[1]
    assert first["veth"] == calico.veth_name("default", "app-6d8d9d5c77-w7cqt")
    assert first["netns"].startswith("cni-") and pods[0]["netns"] == ""
    assert first["prompt"] == "root@app-6d8d9d5c77-w7cqt:/#" and first["hostname"] == first["name"]

    class Inventory:
        name = "kind"

        def inventory(self) -> dict[str, Any]:
            return found

    lab = labkit.Lab(Inventory())  # type: ignore[arg-type]
    assert lab.select(node="calico-ipip-worker2", app="app")[0].ip == "10.244.244.67"
    assert lab.node("calico-ipip-worker2").tunnel_device == "tunl0"


def test_a_node_block_without_calicos_affinities() -> None:
    assert inventory.node_block("n", "10.244.244.64", [], 26) == "10.244.244.64/26"
    assert inventory.node_block("n", "", [], 26) == ""


def test_the_client_is_only_imported_by_the_kind_lab() -> None:
    code = ("import sys, labkit, labkit.cli, labkit.backends.kind.backend; "
            "print(any(m == 'kubernetes' or m.startswith('kubernetes.') for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent)
    assert done.stdout.strip() == "False", done.stderr


def test_the_inventory_lists_the_clusters_own_pods_but_not_host_network_ones() -> None:
    app = copy.deepcopy(CLUSTER["app_pods"][1])
    dns = copy.deepcopy(app)
    dns["metadata"].update(name="coredns-64897985d-9fz8s", namespace="kube-system",
                           labels={"k8s-app": "kube-dns"})
    dns["status"]["podIP"] = "10.244.244.65"
    node_agent = copy.deepcopy(app)
    node_agent["metadata"].update(name="calico-node-x7x2m", namespace="kube-system",
                                  labels={"k8s-app": "calico-node"})
    node_agent["spec"]["hostNetwork"] = True
    node_agent["status"]["podIP"] = "172.18.0.4"
    found = inventory.build(
        settings.load(), nodes=CLUSTER["nodes"], pods=[app, dns, node_agent],
        affinities=CLUSTER["blockaffinities"], pool=CLUSTER["ippool"], links={}, info={})
    assert {(p["namespace"], p["name"]) for p in found["pods"]} == {
        ("default", app["metadata"]["name"]), ("kube-system", "coredns-64897985d-9fz8s")}
    dns_row = next(p for p in found["pods"] if p["namespace"] == "kube-system")
    assert dns_row["veth"] == calico.veth_name("kube-system", "coredns-64897985d-9fz8s")
    assert dns_row["labels"] == {"k8s-app": "kube-dns"}


# -- the Flannel lab (manifests/flannel/: kind + kube-flannel.yml + bridge) ------------------

FLANNEL = MANIFESTS / "flannel"
FLANNEL_CLUSTER = json.loads((SAMPLES / "flannel-cluster.json").read_text())


def kube_flannel_yml(version: str = "v0.22.0", namespace: str = "kube-flannel",
                     network: str = "10.244.0.0/16") -> str:
    """The parts of kube-flannel.yml the lab relies on, in its shape (v0.22.0)."""
    net_conf = json.dumps({"Network": network, "Backend": {"Type": "vxlan"}})
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "kube-flannel-cfg", "namespace": namespace},
              "data": {"net-conf.json": net_conf}}
    daemonset = copy.deepcopy(FLANNEL_CLUSTER["daemonset_ready"])
    daemonset.update(apiVersion="apps/v1", kind="DaemonSet")
    daemonset["metadata"]["namespace"] = namespace
    daemonset.pop("status")
    for container in (*daemonset["spec"]["template"]["spec"]["initContainers"],
                      *daemonset["spec"]["template"]["spec"]["containers"]):
        container["image"] = container["image"].replace("flannel:v0.22.0", f"flannel:{version}")
    namespace_doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    return yaml.safe_dump_all([namespace_doc, config, daemonset])


def test_the_flannel_lab_refuses_an_unpinned_kube_flannel_yml_and_says_how_to_pin_it(
        tmp_path: Path) -> None:
    web = FakeWeb(b"x")
    lab = settings.load(FLANNEL)
    assert lab.cni == "flannel" and lab.cluster == "flannel"
    with pytest.raises(LabUnavailable) as caught:
        download.get(lab.manifest, fetch=web, directory=tmp_path)
    first_line = str(caught.value).splitlines()[0]
    assert first_line == ("kube-flannel.yml is not pinned: `manifest.sha256` in "
                          "manifests/flannel/flannel.yaml is null, and the kind lab only "
                          "applies files whose sha256 it knows")
    assert caught.value.hint.startswith(
        "on a machine with network access run `labkit pin flannel` (it downloads the file, "
        "shows its sha256 and writes it into manifests/flannel/flannel.yaml)")
    assert web.calls == []


def test_an_unpinned_flannel_lab_fails_before_a_cluster_exists(bin_dir: Path) -> None:
    fake_tool(bin_dir, "docker", DOCKER_UP)
    log = kind_logging_calls(bin_dir)
    with pytest.raises(LabUnavailable, match=r"kube-flannel\.yml is not pinned"):
        backend.start(FLANNEL, progress=lambda message: None)
    assert "create" not in log.read_text()


def test_pin_flannel_writes_kube_flannel_ymls_hash_into_flannel_yaml(
        manifests: Path, bin_dir: Path) -> None:
    body = kube_flannel_yml().encode()
    web = FakeWeb(body)
    calico_before = (manifests / "calico.yaml").read_text()
    digest = manage.pin("flannel", manifests, fetch=web)
    assert web.calls == [
        "https://github.com/flannel-io/flannel/releases/download/v0.22.0/kube-flannel.yml"]
    assert digest == download.sha256(body)
    assert f"  sha256: {digest}\n" in (manifests / "flannel" / "flannel.yaml").read_text()
    assert (manifests / "calico.yaml").read_text() == calico_before
    pinned_lab = settings.load(manifests / "flannel")
    assert pinned_lab.manifest.sha256 == digest
    assert download.get(pinned_lab.manifest, fetch=FakeWeb(b"")) == body


def test_kube_flannel_yml_is_checked_before_it_is_applied() -> None:
    lab = settings.load(FLANNEL)
    kinds = [o["kind"] for o in settings.flannel_objects(kube_flannel_yml(), lab)]
    assert kinds == ["Namespace", "ConfigMap", "DaemonSet"]
    with pytest.raises(settings.SettingsError) as caught:
        settings.flannel_objects(kube_flannel_yml(version="v0.21.5"), lab)
    assert str(caught.value) == ("kube-flannel.yml runs docker.io/flannel/flannel:v0.21.5, but "
                                 "manifests/flannel/flannel.yaml says v0.22.0")
    with pytest.raises(settings.SettingsError, match="no kube-flannel-ds DaemonSet in "
                                                     "namespace kube-flannel"):
        settings.flannel_objects(kube_flannel_yml(namespace="kube-system"), lab)
    with pytest.raises(settings.SettingsError, match=r"Network 10\.96\.0\.0/16"):
        settings.flannel_objects(kube_flannel_yml(network="10.96.0.0/16"), lab)


def test_the_bridge_plugin_is_docker_cp_d_onto_every_node(bin_dir: Path) -> None:
    log = bin_dir.parent / "docker.log"
    fake_tool(bin_dir, "docker", f"""
        import sys
        with open({str(log)!r}, "a") as log:
            log.write(" ".join(sys.argv[1:]) + "\\n")
    """)
    shown: list[str] = []
    provision.install_bridge(settings.load(FLANNEL), shown.append)
    assert log.read_text().splitlines() == [
        "cp /usr/lib/cni/bridge flannel-control-plane:/opt/cni/bin/bridge",
        "cp /usr/lib/cni/bridge flannel-worker:/opt/cni/bin/bridge",
        "cp /usr/lib/cni/bridge flannel-worker2:/opt/cni/bin/bridge",
    ]
    assert shown == ["copied /usr/lib/cni/bridge to /opt/cni/bin/bridge on "
                     "flannel-control-plane, flannel-worker, flannel-worker2"]


def test_a_missing_bridge_plugin_names_the_debian_package_before_kind_runs(
        manifests: Path, bin_dir: Path) -> None:
    fake_tool(bin_dir, "docker", DOCKER_UP)
    log = kind_logging_calls(bin_dir)
    flannel_yaml = manifests / "flannel" / "flannel.yaml"
    flannel_yaml.write_text(flannel_yaml.read_text().replace(
        "bridge: /usr/lib/cni/bridge", f"bridge: {bin_dir.parent}/no-such-bridge"))
    with pytest.raises(LabUnavailable) as caught:
        backend.start(manifests / "flannel", progress=lambda message: None)
    assert f"{bin_dir.parent}/no-such-bridge" in caught.value.message
    assert "containernetworking-plugins" in caught.value.hint
    assert not log.exists() or "create" not in log.read_text()


def test_readiness_of_the_kube_flannel_daemonset() -> None:
    assert readiness.daemonset_problem(FLANNEL_CLUSTER["daemonset_ready"]) is None
    assert readiness.daemonset_problem(FLANNEL_CLUSTER["daemonset_starting"]) == \
        "daemonset kube-flannel/kube-flannel-ds (2/3 ready)"
    assert provision._flannel_daemonset([]) == [
        "DaemonSet kube-flannel/kube-flannel-ds not created yet"]
    assert provision._flannel_daemonset([FLANNEL_CLUSTER["daemonset_starting"]]) == []
    # what a pod shows while `bridge` is missing on its node: the sandbox is never made
    assert readiness.pod_problem(FLANNEL_CLUSTER["pod_without_bridge"]) == \
        "pod kube-system/coredns-64897985d-4xq7n (coredns: ContainerCreating)"


class FakeApi:
    """What set_up asks of the API: applies and waits, recorded in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        names = ("list_namespaced_daemon_set", "list_daemon_set_for_all_namespaces",
                 "list_deployment_for_all_namespaces", "list_namespaced_deployment")
        self.apps = type("Apps", (), {n: staticmethod(lambda n=n: n) for n in names})()
        names = ("list_node", "list_pod_for_all_namespaces", "list_namespaced_pod")
        self.core = type("Core", (), {n: staticmethod(lambda n=n: n) for n in names})()

    def apply(self, objects: list[dict[str, Any]], progress: Any) -> None:
        self.calls.append(("apply", *(o["kind"] for o in objects)))

    def wait(self, lister: Any, check: Any, *, what: str, **kwargs: Any) -> list[Any]:
        where = kwargs.get("namespace", "")
        self.calls.append(("wait", lister(), check.__name__, what, where))
        return []


def test_set_up_waits_for_kube_flannel_then_the_seeds_deployment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    monkeypatch.setattr(provision, "remove_control_plane_taint",
                        lambda api, p: order.append("taint"))
    monkeypatch.setattr(provision, "install_bridge", lambda s, p: order.append("bridge"))
    monkeypatch.setattr(provision, "prepare_nodes", lambda s, p: order.append("tools") or {})
    api = FakeApi()
    provision.set_up(api, settings.load(FLANNEL), kube_flannel_yml().encode(),  # type: ignore
                   lambda message: None, 1.0)
    assert order == ["taint", "bridge", "tools"]
    assert api.calls == [
        ("apply", "Namespace", "ConfigMap", "DaemonSet"),
        ("wait", "list_namespaced_daemon_set", "daemonset_problem",
         "the DaemonSet kube-flannel/kube-flannel-ds", "kube-flannel"),
        ("wait", "list_namespaced_pod", "pod_problem", "the kube-flannel pods", "kube-flannel"),
        ("wait", "list_node", "node_problem", "the nodes to be Ready", ""),
        ("wait", "list_daemon_set_for_all_namespaces", "daemonset_problem",
         "the DaemonSets (kube-flannel-ds)", ""),
        ("wait", "list_deployment_for_all_namespaces", "deployment_problem",
         "the Deployments (coredns)", ""),
        ("wait", "list_pod_for_all_namespaces", "pod_problem", "every pod to be Ready", ""),
        ("apply", "Deployment"),
        ("wait", "list_namespaced_deployment", "deployment_problem", "deployment app",
         "default"),
        ("wait", "list_namespaced_pod", "pod_problem", "the pods of app", "default"),
    ]


def flannel_inventory() -> dict[str, Any]:
    links = inventory.flannel_links((SAMPLES / "flannel-links-worker.txt").read_text())
    return inventory.build_flannel(settings.load(FLANNEL), nodes=FLANNEL_CLUSTER["nodes"],
                                   pods=FLANNEL_CLUSTER["pods"], links=links, info={})


def test_the_flannel_inventory_takes_blocks_from_podcidr_and_veths_from_the_node() -> None:
    found = flannel_inventory()
    assert found["info"]["cni"] == "flannel" and found["info"]["flannel"] == "v0.22.0"
    assert found["info"]["encapsulation"] == "VXLAN" and found["info"]["backend"] == "kind"
    assert [n["name"] for n in found["nodes"]] == [
        "flannel-control-plane", "flannel-worker", "flannel-worker2"]
    assert found["nodes"][1] == {
        "name": "flannel-worker", "role": "worker", "ip": "172.18.0.3",
        "block": "10.244.1.0/24", "hostname": "flannel-worker",
        "tunnel_device": "flannel.1", "tunnel_ip": "10.244.1.0",
        "prompt": "root@flannel-worker:/#",
    }
    assert found["nodes"][0]["block"] == "10.244.0.0/24"
    assert found["nodes"][0]["role"] == "control-plane"
    pods = {p["name"]: p for p in found["pods"]}
    # kube-flannel-ds runs in the host's network: not a pod of the lab
    assert list(pods) == ["coredns-64897985d-4xq7n", "app-7c9d8b6f5d-2mfjq",
                          "app-7c9d8b6f5d-h8w4z", "app-7c9d8b6f5d-r5tnv"]
    assert (pods["app-7c9d8b6f5d-2mfjq"]["veth"], pods["app-7c9d8b6f5d-2mfjq"]["netns"]) == \
        ("veth3c9a1f2e", "cni-8d1e4b2a-6c3f-4e07-9a51-2f0b7c9d1e63")
    assert (pods["app-7c9d8b6f5d-h8w4z"]["veth"], pods["app-7c9d8b6f5d-h8w4z"]["netns"]) == \
        ("veth72b0d4e9", "cni-f42a9c07-1b3d-4c85-8e6f-90d2a4b7c318")
    assert pods["app-7c9d8b6f5d-r5tnv"]["veth"] == ""  # worker2's links are not in the sample
    # The order the veths were made in (the replica follows it): `7: veth3c9a1f2e@if3: ...`.
    assert found["veth_ifindex"] == {"app-7c9d8b6f5d-2mfjq": 7, "app-7c9d8b6f5d-h8w4z": 8}

    class Inventory:
        name = "kind"

        def inventory(self) -> dict[str, Any]:
            return found

    lab = labkit.Lab(Inventory())  # type: ignore[arg-type]
    assert lab.cni == "flannel"
    assert [p.ip for p in lab.select(node="flannel-worker", app="app")] == [
        "10.244.1.2", "10.244.1.3"]


def test_flannel_status_and_delete_when_there_is_no_cluster(bin_dir: Path) -> None:
    fake_tool(bin_dir, "docker", DOCKER_UP)
    log = kind_logging_calls(bin_dir, clusters="calico-ipip\n")
    assert manage.delete(manifests=FLANNEL, progress=lambda message: None) is False
    assert str(manage.status(FLANNEL)) == \
        "kind cluster flannel: not up (`labkit up --lab kind` creates it)"
    assert "delete" not in log.read_text()
