# Broken manifests as a user writes them: one line naming the file, the line, the key, the fault.
"""Each case edits a copy of ``manifests/`` the way a hand would (the lines stay where they
were) and runs the ``labkit`` command on it through ``LABKIT_MANIFESTS``: what comes back is
exit 1 and exactly one line, ``labkit: <the file read>:<line>: `<key path>`: <what is wrong>``,
never a traceback, and nothing started."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from labproject import ROOT, Project

from labkit.backends.cluster import settings
from labkit.model import manifests as schema
from labkit.model import topology, yamlfile
from labkit.model.errors import ManifestError

Edit = Callable[[Path], None]


def replace(file: str, old: str, new: str, count: int = 1) -> Edit:
    def edit(folder: Path) -> None:
        path = folder / file
        text = path.read_text()
        assert text.count(old) >= count, (file, old)
        path.write_text(text.replace(old, new, count))
    return edit


def both(*edits: Edit) -> Edit:
    def edit(folder: Path) -> None:
        for each in edits:
            each(folder)
    return edit


def many_pods_on_worker2(folder: Path) -> None:
    """62 more pods of the Deployment on worker2: 66 there, more than its /26 holds."""
    replace("app-deployment.yaml", "replicas: 4", "replicas: 66")(folder)
    extra = "".join(f"  - {{name: app-extra-{i}, node: calico-ipip-worker2}}\n" for i in range(62))
    with open(folder / "replica.yaml", "a") as handle:
        handle.write(extra)


# case: (edit, file, key path, words the problem has, text on the line it names)
CASES: dict[str, tuple[Edit, str, str, str, str]] = {
    "a /31 block": (
        replace("replica.yaml", "block: 10.244.79.0/26", "block: 10.244.79.0/31"),
        "replica.yaml", "nodes.calico-ipip-worker.block", "is a /31", "10.244.79.0/31"),
    "a node role kind does not have": (
        replace("kind-cluster.yaml", "role: worker", "role: master"),
        "kind-cluster.yaml", "nodes[1].role", "'control-plane' or 'worker'", "role: master"),
    "an empty Deployment": (
        lambda folder: (folder / "app-deployment.yaml").write_text(""),
        "app-deployment.yaml", "apiVersion", "missing (the file is empty)", ""),
    "a Deployment without containers": (
        both(replace("app-deployment.yaml", "      containers:\n", "      containers: []\n"),
             replace("app-deployment.yaml", "      - image: burlyluo/nettool\n        name: "
                     "nettoolbox\n", "")),
        "app-deployment.yaml", "spec.template.spec.containers", "at least 1", "containers: []"),
    "an IPv6 block": (
        replace("replica.yaml", "block: 10.244.79.0/26", "block: fd00:10:244::/122"),
        "replica.yaml", "nodes.calico-ipip-worker.block", "IPv6", "fd00:10:244::/122"),
    "overlapping blocks": (
        replace("replica.yaml", "block: 10.244.79.0/26", "block: 10.244.51.192/26"),
        "replica.yaml", "nodes.calico-ipip-worker.block",
        "overlaps calico-ipip-control-plane's block 10.244.51.192/26",
        "calico-ipip-worker: {ip: 172.18.0.3"),
    "a pod named like a node": (
        replace("replica.yaml", "name: app-5c7b8d4f6d-hm7vc", "name: calico-ipip-worker"),
        "replica.yaml", "pods[6].name", "is a node's name", "name: calico-ipip-worker,"),
    "a 70-character pod name": (
        replace("replica.yaml", "name: app-5c7b8d4f6d-hm7vc", "name: " + "a" * 70),
        "replica.yaml", "pods[6].name", "is 70 characters long", "a" * 70),
    "two nodes with one IP": (
        replace("replica.yaml", "ip: 172.18.0.3", "ip: 172.18.0.2"),
        "replica.yaml", "nodes.calico-ipip-worker.ip",
        "172.18.0.2 is also calico-ipip-control-plane's address",
        "calico-ipip-worker: {ip: 172.18.0.2"),
    "a node on the gateway's address": (
        replace("replica.yaml", "ip: 172.18.0.3", "ip: 172.18.0.1"),
        "replica.yaml", "nodes.calico-ipip-worker.ip", "172.18.0.1 is the network's gateway",
        "ip: 172.18.0.1"),
    "a node on the network's address": (
        replace("replica.yaml", "ip: 172.18.0.3", "ip: 172.18.0.0"),
        "replica.yaml", "nodes.calico-ipip-worker.ip", "the network's own address",
        "ip: 172.18.0.0"),
    "a node on the broadcast address": (
        replace("replica.yaml", "ip: 172.18.0.3", "ip: 172.18.255.255"),
        "replica.yaml", "nodes.calico-ipip-worker.ip", "the network's broadcast address",
        "ip: 172.18.255.255"),
    "a duplicate key in replica.yaml": (
        replace("replica.yaml", "  calico-ipip-worker2: {",
                "  calico-ipip-worker: {ip: 172.18.0.9, block: 10.244.1.0/26}\n"
                "  calico-ipip-worker2: {"),
        "replica.yaml", "nodes.calico-ipip-worker", "duplicate key (first written on line ",
        "ip: 172.18.0.9"),
    "ipipMode: Sometimes": (
        replace("calico.yaml", "ipipMode: Always", "ipipMode: Sometimes"),
        "calico.yaml", "pool.ipipMode", "should be 'Always', 'CrossSubnet' or 'Never', not "
        "'Sometimes'", "ipipMode: Sometimes"),
    "a pod name that is not a DNS-1123 label": (
        replace("replica.yaml", "name: app-5c7b8d4f6d-hm7vc", 'name: "bad name; $(id)"'),
        "replica.yaml", "pods[6].name", "'bad name; $(id)' is not a DNS-1123 label",
        "bad name; $(id)"),
    "zero nodes": (
        both(replace("kind-cluster.yaml", "nodes:\n", "nodes: []\n"),
             replace("kind-cluster.yaml", "  - role: control-plane\n", ""),
             replace("kind-cluster.yaml", "  - role: worker\n", "", 2),
             replace("kind-cluster.yaml", "    image: kindest/node:v1.23.4\n", "", 3)),
        "kind-cluster.yaml", "nodes", "at least 1 item", "nodes: []"),
}


def broken(tmp_path: Path, case: str) -> Path:
    copy = tmp_path / "elsewhere" / "manifests"
    shutil.copytree(topology.MANIFESTS, copy)
    CASES[case][0](copy)
    return copy


def expected_line(path: Path, text: str) -> int:
    if not text:
        return 1
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def labkit(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def manifest_env(folder: Path, tmp_path: Path) -> dict[str, str]:
    runtime = tmp_path / "run"
    runtime.mkdir(exist_ok=True)
    return dict(os.environ, PYTHONPATH=str(ROOT), LABKIT_MANIFESTS=str(folder),
                XDG_RUNTIME_DIR=str(runtime))


def assert_one_line(done: subprocess.CompletedProcess[str], folder: Path, case: str) -> None:
    _, file, key, words, on_line = CASES[case]
    path = folder / file
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr == (f"labkit: {path}:{expected_line(path, on_line)}: `{key}`: "
                           + done.stderr.split(f"`{key}`: ", 1)[-1])
    assert words in done.stderr, done.stderr


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_broken_manifest_is_one_line_naming_its_file_line_and_key(
        tmp_path: Path, case: str) -> None:
    folder = broken(tmp_path, case)
    env = manifest_env(folder, tmp_path)
    name = uuid.uuid4().hex[:12]
    try:
        done = labkit("up", "--name", name, env=env)
    finally:  # were the case ever accepted, the lab it started must not outlive the test
        labkit("down", "--name", name, env=env)
    assert_one_line(done, folder, case)
    assert done.stdout == ""
    # Both labs read the one schema: the kind lab refuses the same folder with the same line.
    kind = labkit("down", "--lab", "kind", env=env)
    assert kind.stderr == done.stderr


@pytest.mark.parametrize("case", ["overlapping blocks", "ipipMode: Sometimes"])
def test_labkit_build_reads_labkit_manifests_too(tmp_path: Path, case: str) -> None:
    """Even a replay, which starts no lab, reads the manifests that `labkit up` would."""
    folder = broken(tmp_path, case)
    project = Project.create(tmp_path / "project", {"01-a.md": "# A\n\nprose\n"})
    done = labkit("build", "--replay", env=manifest_env(folder, tmp_path), cwd=project.root)
    _, file, key, words, on_line = CASES[case]
    path = folder / file
    messages = [line for line in done.stderr.splitlines() if str(path) in line]
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert len(messages) == 1, done.stderr
    assert f"{path}:{expected_line(path, on_line)}: `{key}`: " in messages[0]
    assert words in messages[0]
    assert not (project.root / "site").exists()


def test_a_full_block_is_no_mistake_the_node_claims_another(tmp_path: Path) -> None:
    # A /26 once made the loader end in StopIteration; Calico's IPAM claims the next free
    # block for the node instead (labkit.model.calico.Ipam), and so does the replica.
    copy = tmp_path / "manifests"
    shutil.copytree(topology.MANIFESTS, copy)
    many_pods_on_worker2(copy)
    spec = topology.load(copy)
    worker2 = spec.node("calico-ipip-worker2")
    assert len(worker2.blocks) == 2 and worker2.blocks[0] == "10.244.244.64/26"
    mine = [p.ip for p in spec.pods if p.node == worker2.name]
    assert len(mine) == len(set(mine)) == 66
    assert sum(ip.startswith("10.244.244.") and 64 < int(ip.rsplit(".", 1)[1]) < 128
               for ip in mine) == 63  # the first block, after the tunnel's .64


def test_the_seed_manifests_pass_the_schema() -> None:
    spec = schema.load(topology.MANIFESTS)
    assert spec.kind_cluster.node_names() == [
        "calico-ipip-control-plane", "calico-ipip-worker", "calico-ipip-worker2"]
    assert spec.replica.nodes["calico-ipip-worker2"].block == "10.244.244.64/26"
    assert (spec.calico.pool.ipipMode, spec.calico.pool.blockSize) == ("Always", 26)
    assert spec.deployment.spec.replicas == 4
    assert sum(p.namespace is None for p in spec.replica.pods) == 4  # the others: the cluster's


def test_a_duplicate_key_anywhere_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a:\n  b: 1\n  c: [1, {d: 2, d: 3}]\n")
    with pytest.raises(ManifestError) as caught:
        yamlfile.read(path)
    assert str(caught.value) == (f"{path}:3: `a.c[1].d`: duplicate key (first written on "
                                 "line 3); YAML keeps only one of them, so say it once")


def test_invalid_yaml_and_a_missing_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: 1\nb: [\n")
    with pytest.raises(ManifestError, match=rf"^{path}:3: not valid YAML"):
        yamlfile.read(path)
    with pytest.raises(ManifestError, match=rf"^{tmp_path / 'none.yaml'}: no such file$"):
        yamlfile.read(tmp_path / "none.yaml")


def test_the_kind_lab_and_the_replica_read_the_same_values() -> None:
    topo, kind = topology.load(topology.MANIFESTS), settings.load(topology.MANIFESTS)
    assert topo.cluster == kind.cluster == "calico-ipip"
    assert tuple(n.name for n in topo.nodes) == kind.node_names
    assert topo.pod_subnet == kind.pod_subnet == "10.244.0.0/16"
    assert (topo.ipip_mode, topo.vxlan_mode) == (kind.ipip_mode, kind.vxlan_mode)
