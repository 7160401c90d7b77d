# The book printed by the real cluster: what the replica borrows from its recording, what it is
# held to (labkit fidelity), the declared differences, and replica.yaml following the recording.
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from copies import ROOT, make_copy

from labkit.book import snippets
from labkit.book.borrow import RealRecording
from labkit.book.differences import load
from labkit.book.fidelity import compare
from labkit.book.transcript import Store
from labkit.model import labs, topology
from labkit.model.errors import ManifestError

NATIVE = ROOT / "docs_src" / "transcripts" / "native"
CHAPTERS = sorted(p.stem for p in (ROOT / "docs_src").glob("0*.md"))


def _fidelity(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit.cli", "fidelity", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_every_chapter_is_recorded_on_the_real_cluster() -> None:
    for chapter in CHAPTERS:
        transcript = Store(NATIVE).load(f"docs_src/{chapter}.md")
        assert transcript is not None, f"no {NATIVE / chapter}.yaml"
        info = transcript.inventory["info"]
        # What printed it: kubeadm's Kubernetes, containerd and runc, and no failure.
        assert info["backend"] == "native" and info["kubernetes"] == "v1.23.4"
        assert info["containerd"] and info["runc"]
        assert not [s.line for s in transcript.snippets if s.error], chapter


def test_the_committed_replica_matches_the_real_cluster_but_for_what_is_declared() -> None:
    done = _fidelity("--real", "recorded", "--replica", "recorded")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " 0 differ undeclared" in summary and "outputs identical" in summary


def test_fidelity_catches_a_replica_whose_cali_devices_answer_with_another_mac(
        tmp_path: Path) -> None:
    chapter = snippets.load(ROOT / "docs_src" / "03-datapath.md", ROOT)
    replica = Store(ROOT / "docs_src" / "transcripts").load(chapter.path)
    real = Store(NATIVE).load(chapter.path)
    assert replica is not None and real is not None
    changed = 0
    for record in replica.snippets:
        for call in record.calls:
            result = call.get("result", {})
            if "ee:ee:ee:ee:ee:ee" in result.get("output", ""):
                for stream in ("stdout", "output"):
                    result[stream] = result[stream].replace("ee:ee:ee:ee:ee:ee",
                                                            "ee:ee:ee:ee:ee:ef")
                changed += 1
    assert changed
    found = compare(chapter, replica, real, load(ROOT / "docs_src"))
    # Every output that printed Calico's MAC now differs, undeclared: the real cluster's side
    # of each diff has ee:ee:ee:ee:ee:ee (the replica's, a MAC like any other, is numbered).
    assert len(found.undeclared) == changed
    for output in found.undeclared:
        assert any(line.startswith("-") and "ee:ee:ee:ee:ee:ee" in line
                   for line in output.diff.splitlines()), output.diff


def test_a_replica_build_shows_the_real_clusters_kubectl_and_calicoctl_marked_as_such(
        tmp_path: Path) -> None:
    copy = make_copy(tmp_path / "project", ("02-setup.md", "03-datapath.md"))
    pages = copy.build(lab="netns", mode="live")
    setup, datapath = pages["02-setup.md"].markdown, pages["03-datapath.md"].markdown
    assert not pages["02-setup.md"].errors and not pages["03-datapath.md"].errors
    # kubectl's and calicoctl's own column headers, as their real output starts.
    assert "kubectl get nodes -o wide" in setup and "root@calico-ipip-control-plane:/#" in setup
    assert "NAME                        STATUS   ROLES" in setup
    assert "NAME                  CIDR            NAT    IPIPMODE   VXLANMODE" in setup
    assert "calicoctl patch ippool default-ipv4-ippool" in setup
    assert "kubectl get pods -o wide" in datapath and "READY   STATUS    RESTARTS" in datapath
    for page in (setup, datapath):
        assert "录制于真实集群 2026-" in page and "回放自真实集群的录制" in page
        assert "回放自 native 真实集群（Calico v3.23.2、Kubernetes v1.23.4、containerd" in page
        assert "本次构建没有运行它" not in page  # no notice instead of an output


def test_a_real_only_snippet_with_no_recording_says_which_file_and_how_to_record(
        tmp_path: Path) -> None:
    copy = make_copy(tmp_path / "project", ("03-datapath.md",))
    (copy.transcripts / "native" / "03-datapath.yaml").unlink()
    pages = copy.build(lab="netns", mode="live", keep_going=True)
    errors = [str(e) for e in pages["03-datapath.md"].errors]
    line = copy.line_of("03-datapath.md", "```python labkit lab=real")
    assert errors and errors[0].startswith(f"docs_src/03-datapath.md:{line}: ")
    assert "docs_src/transcripts/native/03-datapath.yaml" in errors[0]
    assert "nox -s build -- --lab native" in errors[0]


@pytest.mark.parametrize("chapter", ["03-datapath", "05-flannel"])
def test_the_replica_following_a_recording_gives_every_pod_the_real_clusters_address(
        tmp_path: Path, chapter: str) -> None:
    """What the real cluster picked (placement, names, start order) in, and the replica's own
    IPAM (Calico's blocks, host-local's /24s) gives every pod the address the real one got."""
    path = ROOT / "docs_src" / f"{chapter}.md"
    real = RealRecording(snippets.load(path, ROOT), ROOT / "docs_src" / "transcripts")
    inventories = real.inventories()
    assert inventories, f"no recording of {chapter} on the real cluster"
    manifests = real.manifests(ROOT / "manifests", tmp_path)
    for name, inventory in inventories.items():
        spec = topology.load(labs.manifests(name, manifests))
        assert {(p.name, p.namespace, p.node, p.ip) for p in spec.pods} == {
            (p["name"], p["namespace"], p["node"], p["ip"]) for p in inventory["pods"]}, name
        assert [(n.name, n.ip, n.block) for n in spec.nodes] == [
            (n["name"], n["ip"], n["block"]) for n in inventory["nodes"]], name


def test_each_declared_difference_covers_only_outputs_that_exist() -> None:
    declared = load(ROOT / "docs_src")
    commands = []
    for chapter in CHAPTERS:
        transcript = Store(NATIVE).load(f"docs_src/{chapter}.md")
        assert transcript is not None
        commands += [(chapter, r.command) for s in transcript.snippets for r in s.results()]
    for difference in declared:
        for selector in difference.outputs:
            assert any(selector.matches(c, command) for c, command in commands), (
                f"differences.yaml:{difference.line} {difference.id}: no output matches")


@pytest.mark.parametrize(("entry", "problem"), [
    ("- id: a\n  text: x\n- id: a\n  text: y\n", "'a' is declared twice"),
    ("- id: a\n  text: x\n  outputs:\n    - {command: '(ip'}\n", "not a regular expression"),
    ("- id: a\n  txt: x\n", "unknown key"),
    ("- id: a\n  text: x\n  when: {kernel: 6}\n", "a mapping of cni"),
])
def test_a_bad_differences_file_is_named_with_its_line(tmp_path: Path, entry: str,
                                                       problem: str) -> None:
    (tmp_path / "differences.yaml").write_text(entry, encoding="utf-8")
    with pytest.raises(ManifestError) as raised:
        load(tmp_path)
    assert str(tmp_path / "differences.yaml") in str(raised.value)
    assert problem in str(raised.value)
