# The cache: an unchanged chapter is not run again, and whatever can change an output
# invalidates it: the snippets' code and options, the manifests, labkit's source and version,
# the lab, fresh_lab.
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import copies
import pytest
from copies import (  # noqa: F401 - fixtures
    ROOT,
    Recorded,
    count_labs,
    forbid_labs,
    recorded_fixture,
    recorded_once_fixture,
)

from labkit.book import build as build_module
from labkit.book import cache, snippets
from labkit.book.cache import chapter_key, code_fingerprint, key_inputs
from labkit.model import topology
from labkit.model.errors import ManifestError

CHAPTER = """---
title: 测试
normalize: [mac]
---

# 测试

Some prose about {{ pod.name }}.

```python labkit timeout=20
pod = lab.pods[0]
pod.sh("ip route")
```

More prose.
"""


# The labs each chapter of the copy starts: chapter 二 compares the seed's with two more
# (calico-vxlan, calico-bgp).
LABS_01 = ["netns"]
LABS_02 = ["netns"] * 3
BOTH = LABS_01 + LABS_02

def chapter(text: str = CHAPTER) -> snippets.Chapter:
    return snippets.parse(text, "docs_src/09-test.md")


def key(text: str = CHAPTER, lab: str = "netns", manifests: str = "m" * 64,
        code: str = "c" * 64) -> str:
    return chapter_key(key_inputs(chapter(text), lab, manifests, code))


# -- the key, one input at a time -----------------------------------------------------------

def test_prose_and_line_numbers_are_not_in_the_key() -> None:
    edited = CHAPTER.replace("Some prose", "Some longer,\nreworded prose").replace(
        "More prose.", "More prose, and a table:\n\n| a | b |\n|---|---|\n")
    assert key(edited) == key()
    assert chapter(edited).snippets[0].line != chapter().snippets[0].line


def test_a_snippets_code_is_in_the_key() -> None:
    assert key(CHAPTER.replace('pod.sh("ip route")', 'pod.sh("ip -4 route")')) != key()
    assert key(CHAPTER.replace("pod = lab.pods[0]", "pod = lab.pods[1]")) != key()


def test_a_snippets_options_are_in_the_key() -> None:
    assert key(CHAPTER.replace("timeout=20", "timeout=30")) != key()
    assert key(CHAPTER.replace("timeout=20", "timeout=20 hide")) != key()
    assert key(CHAPTER.replace("timeout=20", "timeout=20 lab=real")) != key()


def test_adding_or_reordering_snippets_is_in_the_key() -> None:
    second = "```python labkit\nlab.pods[1].sh('ip addr')\n```\n"
    assert key(CHAPTER + "\n" + second) != key()


def test_the_manifests_are_in_the_key(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", manifests)
    before = topology.load(manifests).fingerprint
    assert before == topology.load(ROOT / "manifests").fingerprint
    (manifests / "replica.yaml").write_text(
        (manifests / "replica.yaml").read_text(encoding="utf-8") + "\n# a change\n",
        encoding="utf-8")
    after = topology.load(manifests).fingerprint
    assert after != before
    assert key(manifests=after) != key(manifests=before)


def test_labkits_source_is_in_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "labkit"
    shutil.copytree(ROOT / "labkit", package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "__file__", str(package / "book/cache.py"))
    before = code_fingerprint()
    assert before == code_fingerprint()
    agent = package / "backends" / "netns" / "agent.py"
    agent.write_text(agent.read_text(encoding="utf-8") + "\n# a change\n", encoding="utf-8")
    after = code_fingerprint()
    assert after != before
    assert key(code=after) != key(code=before)


def _edited_fingerprints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edited: str,
                         lab: str = "netns") -> tuple[str, str]:
    """The key's code fingerprint for ``lab`` before and after a comment is added to
    labkit's ``edited`` (a copy of labkit, so the checkout is not touched)."""
    package = tmp_path / "labkit"
    shutil.copytree(ROOT / "labkit", package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "__file__", str(package / "book/cache.py"))
    before = code_fingerprint(lab)
    source = package / edited
    source.write_text(source.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
    return before, code_fingerprint(lab)


@pytest.mark.parametrize("edited", [
    "cli.py", "backends/kind/download.py", "backends/kind/backend.py", "backends/kind/cluster.py",
    "backends/native/bringup.py", "backends/cluster/settings.py", "parts/images.py",
])
def test_code_that_cannot_change_a_netns_chapters_output_is_not_in_its_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edited: str) -> None:
    before, after = _edited_fingerprints(tmp_path, monkeypatch, edited)
    assert before == after


@pytest.mark.parametrize("edited", [
    "backends/netns/plan.py", "backends/netns/holder.py", "book/render.py", "book/execute.py",
    "api/lab.py", "model/calico.py", "model/topology.py", "figures/svg.py",
])
def test_code_that_shapes_a_netns_chapters_output_or_page_is_in_its_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edited: str) -> None:
    before, after = _edited_fingerprints(tmp_path, monkeypatch, edited)
    assert before != after


def test_the_kind_backend_is_in_a_kind_chapters_key_and_the_replica_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before, after = _edited_fingerprints(tmp_path, monkeypatch, "backends/kind/backend.py",
                                         lab="kind")
    assert before != after
    before, after = _edited_fingerprints(tmp_path / "2", monkeypatch, "backends/netns/agent.py",
                                         lab="kind")
    assert before == after


@pytest.mark.parametrize(("edited", "changes"), [
    ("backends/native/bringup.py", True), ("backends/cluster/inventory.py", True),
    ("parts/images.py", True), ("backends/netns/agent.py", False),
    ("backends/kind/backend.py", False),
])
def test_a_native_chapters_key_has_the_real_cluster_and_its_parts_not_the_other_labs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edited: str, changes: bool) -> None:
    before, after = _edited_fingerprints(tmp_path, monkeypatch, edited, lab="native")
    assert (before != after) is changes


def test_labkits_version_is_in_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = key()
    monkeypatch.setattr(cache, "__version__", "99.0.0")
    assert key() != before


def test_the_lab_is_in_the_key() -> None:
    assert key(lab="kind") != key(lab="netns")


def test_fresh_lab_is_in_the_key() -> None:
    fresh = CHAPTER.replace("normalize: [mac]", "normalize: [mac]\nfresh_lab: true")
    assert key(fresh) != key()


def test_the_key_is_made_of_what_the_transcript_lists() -> None:
    inputs = key_inputs(chapter(), "netns", "m" * 64, "c" * 64)
    assert set(inputs) == set(cache.INPUTS)
    changed = dict(inputs, manifests="x")
    assert cache.changed_inputs(inputs, changed) == ["the lab's manifests"]


# -- the cache at work ----------------------------------------------------------------------

def test_nothing_changed_starts_no_lab(recorded: Recorded,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_labs(monkeypatch)
    pages = recorded.copy.build()
    assert {p.how for p in pages.values()} == {"cached", "static"}


def test_a_prose_only_edit_starts_no_lab_and_shows_the_new_prose(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_labs(monkeypatch)
    copy = recorded.copy
    copy.edit("01-same-node.md", "先进 pod", "先（这是新写的一句）进 pod")
    copy.edit("02-setup.md", "## IPIP 模式", "加了一段新的正文。\n\n## IPIP 模式")
    pages = copy.build()
    assert pages["01-same-node.md"].how == pages["02-setup.md"].how == "cached"
    assert "先（这是新写的一句）进 pod" in pages["01-same-node.md"].markdown
    assert "加了一段新的正文。" in pages["02-setup.md"].markdown
    # The outputs are the recorded ones, and the snippet's label names its new line.
    line = copy.line_of("02-setup.md", 'w2 = lab.node("calico-ipip-worker2")') - 1
    assert f"Python 源码（docs_src/02-setup.md:{line}）" in pages["02-setup.md"].markdown


def test_a_code_edit_runs_that_chapter_live(recorded: Recorded,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    opened = count_labs(monkeypatch, recorded.copy.root)
    copy = recorded.copy
    copy.edit("01-same-node.md", 'addr = a.sh("ip addr show eth0")',
              'addr = a.sh("ip addr show dev eth0")')
    pages = copy.build()
    assert opened == ["netns"]
    assert pages["01-same-node.md"].how == "live" and pages["02-setup.md"].how == "cached"
    # The terminal's entry (labkit-console: prompt, command, output, status) is the new command.
    assert ':/#", "ip addr show dev eth0", "' in pages["01-same-node.md"].markdown
    assert any("01-same-node.md: running live: changed since the recording: the chapter's "
               "snippets" in line for line in copy.logged)
    # Recorded again, so the next build is cached.
    forbid_labs(monkeypatch)
    assert copy.build()["01-same-node.md"].how == "cached"


def test_an_options_edit_runs_that_chapter_live(recorded: Recorded,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    opened = count_labs(monkeypatch, recorded.copy.root)
    copy = recorded.copy
    copy.edit("02-setup.md", "```python labkit\nshow(", "```python labkit timeout=90\nshow(")
    pages = copy.build()
    assert opened == LABS_02
    assert pages["02-setup.md"].how == "live" and pages["01-same-node.md"].how == "cached"


def test_a_manifest_change_runs_every_chapter_live(recorded: Recorded,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    opened = count_labs(monkeypatch, recorded.copy.root)
    copy = recorded.copy
    spec = copy.root / "manifests" / "app-deployment.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "\n# reviewed\n", encoding="utf-8")
    pages = copy.build()
    assert opened == BOTH
    assert pages["01-same-node.md"].how == pages["02-setup.md"].how == "live"
    assert any("changed since the recording: the lab's manifests" in line
               for line in copy.logged)


def test_a_change_to_labkit_runs_every_chapter_live(recorded: Recorded,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    opened = count_labs(monkeypatch, recorded.copy.root)
    monkeypatch.setattr(build_module, "code_fingerprint", lambda *_: "0" * 64)
    pages = recorded.copy.build()
    assert opened == BOTH
    assert pages["01-same-node.md"].how == "live"
    assert any("labkit's source" in line for line in recorded.copy.logged)


def test_another_labkit_version_runs_every_chapter_live(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = count_labs(monkeypatch, recorded.copy.root)
    monkeypatch.setattr(cache, "__version__", "99.0.0")
    recorded.copy.build()
    assert opened == BOTH
    assert any("labkit's version" in line for line in recorded.copy.logged)


def test_a_fresh_checkout_runs_everything_live(recorded: Recorded,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # A clone has the committed transcripts (same keys) but printed none of them itself.
    opened = count_labs(monkeypatch, recorded.copy.root)
    shutil.rmtree(recorded.copy.root / ".labkit")
    pages = recorded.copy.build()
    assert opened == BOTH
    assert {p.how for p in pages.values()} == {"live", "static"}
    assert any("was not recorded by this checkout" in line for line in recorded.copy.logged)


def test_a_transcript_someone_else_recorded_is_not_a_cache(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    # A teammate's newer recording arrives with a pull: same key, other outputs.
    from labkit.book.transcript import Store

    store = Store(recorded.copy.transcripts)
    theirs = store.load("docs_src/01-same-node.md")
    assert theirs is not None
    theirs.recorded += 3600
    store.save(theirs)
    opened = count_labs(monkeypatch, recorded.copy.root)
    pages = recorded.copy.build()
    assert opened == ["netns"]
    assert pages["01-same-node.md"].how == "live"


def test_fresh_runs_everything_live(recorded: Recorded,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    opened = count_labs(monkeypatch, recorded.copy.root)
    pages = recorded.copy.build(mode="live")
    assert opened == BOTH
    assert pages["02-setup.md"].how == "live"


# -- the pages, remembered between builds ----------------------------------------------------

def _count_processes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The chapters a build starts a process for (each made with the real function)."""
    started: list[str] = []
    real = build_module.chapter_process

    def counting(chapter: snippets.Chapter, *args: Any) -> Any:
        started.append(Path(chapter.path).name)
        return real(chapter, *args)

    monkeypatch.setattr(build_module, "chapter_process", counting)
    return started


def test_a_rebuild_with_nothing_changed_takes_each_page_as_it_was(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_labs(monkeypatch)
    copy = recorded.copy
    rendered = copy.build()  # replayed from the transcripts, in a process per chapter
    started = _count_processes(monkeypatch)
    again = copy.build()
    assert started == []
    assert {name: p.markdown for name, p in again.items()} == \
        {name: p.markdown for name, p in rendered.items()}
    assert again["01-same-node.md"].how == "cached"
    assert sum("01-same-node.md: cached from" in line for line in copy.logged) == 2


def test_a_prose_edit_renders_that_page_again_and_no_other(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_labs(monkeypatch)
    copy = recorded.copy
    copy.build()
    started = _count_processes(monkeypatch)
    copy.edit("01-same-node.md", "先进 pod", "先（这是新写的一句）进 pod")
    pages = copy.build()
    assert started == ["01-same-node.md"]
    assert "先（这是新写的一句）进 pod" in pages["01-same-node.md"].markdown
    # And that new page is remembered in its turn.
    assert copy.build()["01-same-node.md"].markdown == pages["01-same-node.md"].markdown
    assert started == ["01-same-node.md"]


def test_a_remembered_page_goes_when_its_transcript_changes(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    from labkit.book.transcript import Store

    copy = recorded.copy
    forbid_labs(monkeypatch)
    copy.build()
    monkeypatch.undo()
    monkeypatch.setattr(build_module, "code_fingerprint", lambda *_: copies.SOURCE)
    store = Store(copy.transcripts)
    theirs = store.load("docs_src/01-same-node.md")
    assert theirs is not None
    theirs.recorded += 3600  # a teammate's recording, arrived with a pull
    store.save(theirs)
    opened = count_labs(monkeypatch, copy.root)
    pages = copy.build()
    assert opened == ["netns"]
    assert pages["01-same-node.md"].how == "live"


def test_a_damaged_memo_is_rendered_again(recorded: Recorded,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_labs(monkeypatch)
    copy = recorded.copy
    rendered = copy.build()
    for memo in (copy.root / ".labkit" / "pages").glob("*.json"):
        memo.write_text("{not json", encoding="utf-8")
    started = _count_processes(monkeypatch)
    pages = copy.build()
    assert sorted(started) == ["01-same-node.md", "02-setup.md"]
    assert pages["02-setup.md"].markdown == rendered["02-setup.md"].markdown


# -- the manifests' fingerprints, remembered between builds ----------------------------------

def _never(folder: Path) -> str:
    raise AssertionError(f"{folder} was read and checked again")


def _remembered(tmp_path: Path, code: str = "c" * 64) -> tuple[Path, Path, str]:
    """A copy of the manifests, the state folder of a build, and the fingerprint that build
    read (and remembered), as labkit's code ``code``."""
    folder = tmp_path / "manifests"
    if not folder.exists():
        shutil.copytree(ROOT / "manifests", folder)
    state = tmp_path / ".labkit"
    read = cache.ManifestsMemo(state, code).fingerprint(
        folder, lambda: topology.load(folder).fingerprint)
    return folder, state, read


def test_manifests_that_did_not_change_are_not_read_again(tmp_path: Path) -> None:
    folder, state, first = _remembered(tmp_path)
    assert first == topology.load(ROOT / "manifests").fingerprint
    # The next build (a new process: a new memo read from disk) takes it as it was.
    again = cache.ManifestsMemo(state, "c" * 64)
    assert again.fingerprint(folder, lambda: _never(folder)) == first


def test_an_edited_manifest_or_new_code_is_read_again(tmp_path: Path) -> None:
    folder, state, first = _remembered(tmp_path)
    replica = folder / "replica.yaml"
    replica.write_text(replica.read_text().replace("ip: 172.18.0.3", "ip: 172.18.0.9", 1))
    _, _, edited = _remembered(tmp_path)
    assert edited != first == topology.load(ROOT / "manifests").fingerprint
    assert edited == topology.load(folder).fingerprint
    # labkit's code decides what the files mean: other code reads them again.
    calls: list[str] = []
    cache.ManifestsMemo(state, "d" * 64).fingerprint(folder, lambda: calls.append("read") or "x")
    assert calls == ["read"]


def test_a_broken_manifest_fails_every_build_it_is_in(tmp_path: Path) -> None:
    folder, _, _ = _remembered(tmp_path)  # good once, and remembered
    cluster = folder / "kind-cluster.yaml"
    cluster.write_text(cluster.read_text().replace("podSubnet:", "podSubnets:", 1))
    for _ in range(2):  # a failure is never remembered as a fingerprint
        with pytest.raises(ManifestError, match=r"kind-cluster\.yaml"):
            _remembered(tmp_path)
