# More than one lab per book: named labs, a chapter's `lab:`/`labs:`, and what records them.
"""A chapter names the lab it runs on (and the others it compares with); the build starts
those labs, records every call with the lab it went to, and replays them without any."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from copies import ROOT, forbid_labs, make_copy, require_lab

from labkit.book import snippets
from labkit.book.cache import changed_inputs, key_inputs
from labkit.book.transcript import Store
from labkit.model import labs
from labkit.model.errors import LabError, SnippetError

TWO_LABS = """\
---
title: 对照
lab: flannel
labs: [calico]
---

# 对照

```python labkit
flannel_pod = lab.select(node="flannel-worker", app="app")[0]
calico_pod = labs["calico"].select(node="calico-ipip-worker2", app="app")[0]
flannel_route = flannel_pod.sh("ip route")
calico_route = calico_pod.sh("ip route")
assert flannel_route.stdout.startswith("default via 10.244.1.1 dev eth0")
assert calico_route.stdout.startswith("default via 169.254.1.1 dev eth0")
assert lab.name == "flannel" and lab.cni == "flannel"
assert labs["calico"].cni == "calico" and labs["flannel"] is lab
```

Flannel 的 pod 经 `{{ flannel_route.stdout.split()[2] }}` 出去。
"""


def test_the_book_has_the_seeds_calico_lab_and_a_flannel_lab() -> None:
    names = labs.names(ROOT / "manifests")
    # The default first, then every folder of manifests/ holding a kind-cluster.yaml.
    assert names[0] == "calico" and "flannel" in names
    folders = (ROOT / "manifests").glob("*/kind-cluster.yaml")
    assert names[1:] == sorted(p.parent.name for p in folders)
    assert labs.manifests("calico", ROOT / "manifests") == ROOT / "manifests"
    assert labs.manifests("flannel", ROOT / "manifests") == ROOT / "manifests" / "flannel"
    assert labs.cni(ROOT / "manifests") == "calico"
    assert labs.cni(ROOT / "manifests" / "flannel") == "flannel"


@pytest.mark.parametrize("name", ["weave", "Flannel", "../manifests", ""])
def test_a_lab_no_manifests_folder_defines_is_named_with_the_known_ones(name: str) -> None:
    with pytest.raises(labs.UnknownLab) as caught:
        labs.manifests(name, ROOT / "manifests")
    assert f"no lab named {name!r}" in str(caught.value)
    assert f"known: {', '.join(labs.names(ROOT / 'manifests'))}" in str(caught.value)
    assert "known: calico, " in str(caught.value) and "flannel" in str(caught.value)


def test_a_folder_with_both_cnis_or_neither_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kind-cluster.yaml").write_text("kind: Cluster\n")
    with pytest.raises(LabError, match=r"exactly one of calico\.yaml or flannel\.yaml"):
        labs.cni(tmp_path)
    (tmp_path / "calico.yaml").write_text("{}\n")
    (tmp_path / "flannel.yaml").write_text("{}\n")
    with pytest.raises(LabError, match=r"\(found 2\)"):
        labs.cni(tmp_path)


def chapter(front: str) -> snippets.Chapter:
    return snippets.parse(f"---\ntitle: x\n{front}---\n\n# x\n", "docs_src/09-x.md")


def test_a_chapter_runs_on_the_calico_lab_unless_it_names_another() -> None:
    assert chapter("").labs == ("calico",)
    assert chapter("lab: flannel\n").labs == ("flannel",)
    assert chapter("lab: flannel\nlabs: [calico]\n").labs == ("flannel", "calico")


@pytest.mark.parametrize("front, complaint", [
    ("lab: 3\n", "front matter `lab` must be a lab's name"),
    ("lab: [flannel]\n", "front matter `lab` must be a lab's name"),
    ("labs: calico\n", "front matter `labs` must be a list"),
    ("lab: flannel\nlabs: [flannel]\n", "names a lab twice"),
])
def test_a_bad_lab_in_front_matter_is_named_with_its_file_and_line(front: str,
                                                                   complaint: str) -> None:
    with pytest.raises(SnippetError) as caught:
        chapter(front)
    assert (caught.value.path, caught.value.line) == ("docs_src/09-x.md", 2)
    assert complaint in str(caught.value)


def test_the_labs_a_chapter_runs_on_are_in_its_key() -> None:
    one = key_inputs(chapter("lab: flannel\n"), "netns", "m", "c")
    two = key_inputs(chapter("lab: flannel\nlabs: [calico]\n"), "netns", "m", "c")
    assert changed_inputs(one, two) == ["the labs the chapter runs on (front matter lab/labs)"]


def test_a_chapter_on_an_unknown_lab_fails_the_build_at_its_front_matter(tmp_path: Path) -> None:
    copy = make_copy(tmp_path / "p", chapters=())
    (copy.source / "09-x.md").write_text(textwrap.dedent("""\
        ---
        title: x
        lab: weave
        ---

        # x

        ```python labkit
        lab.nodes
        ```
        """), encoding="utf-8")
    with pytest.raises(SnippetError) as caught:
        copy.build()
    assert (caught.value.path, caught.value.line) == ("docs_src/09-x.md", 2)
    assert "no lab named 'weave'" in str(caught.value)


def test_a_chapter_on_two_labs_is_recorded_with_both_and_replays_without_either(
        tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    require_lab(request)
    copy = make_copy(tmp_path / "p", chapters=())
    (copy.source / "09-x.md").write_text(TWO_LABS, encoding="utf-8")
    live = copy.build()["09-x.md"]
    assert live.how == "live", copy.logged
    # Both labs' prompts on the page, in the order the commands ran.
    flannel_at = re.search(r"root@app-5c7b8d4f6d-822vg:/#\W+ip route", live.markdown)
    calico_at = re.search(r"root@app-5c7b8d4f6d-x2k9p:/#\W+ip route", live.markdown)
    assert flannel_at and calico_at and flannel_at.start() < calico_at.start()
    assert "Flannel 的 pod 经 `10.244.1.1` 出去。" in live.markdown
    assert "netns 复刻实验室 · flannel 实验室 · 按 Flannel v0.22.0 的规则复刻 · VXLAN 模式" \
        in live.markdown
    assert "对照：calico 实验室（按 Calico v3.23.5 的规则复刻" in live.markdown

    transcript = Store(copy.transcripts).load("docs_src/09-x.md")
    assert transcript is not None
    assert transcript.inventory["info"]["lab"] == "flannel"
    assert transcript.inventory["info"]["cni"] == "flannel"
    assert list(transcript.labs) == ["calico"]
    assert transcript.labs["calico"]["info"]["cni"] == "calico"
    calls = transcript.snippets[0].calls
    assert [(c["target"], c.get("lab")) for c in calls] == [
        ("app-5c7b8d4f6d-822vg", None), ("app-5c7b8d4f6d-x2k9p", "calico")]
    assert transcript.inputs["labs"] == ["flannel", "calico"]

    forbid_labs(monkeypatch)
    replayed = copy.build(mode="replay")["09-x.md"]
    assert replayed.how == "replay"
    assert re.search(r"root@app-5c7b8d4f6d-x2k9p:/#\W+ip route", replayed.markdown)
    assert "Flannel 的 pod 经 `10.244.1.1` 出去。" in replayed.markdown
