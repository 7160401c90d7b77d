# Sybil adapter: every labkit snippet of every chapter is a pytest test, run against a lab.
"""The only module that knows sybil and pytest.

Snippets are found by :func:`labkit.book.snippets.parse`, the parser the renderer
uses, so what is tested is exactly what is rendered.  (Sybil's own Markdown
parser compares the whole info string with the language, so it would silently
skip ```` ```python labkit ```` fences.)  Each snippet is one test,
``docs_src/<file>.md::line:N``; the snippets of a chapter share one namespace
and run in order, as in a build.  After a snippet passes, its output is
compared with the committed transcript through the declared normalisers, so a
change in what the lab prints fails here, at the snippet's own line.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from sybil import Document, Example, Region, Sybil

from ..api.lab import Lab
from ..backends import open_lab
from ..book import snippets
from ..book.borrow import HOW_TO_RECORD, RealRecording, recordings
from ..book.differences import load as load_differences
from ..book.drift import diff
from ..book.execute import ChapterRun, SnippetRun, skip_reason
from ..book.fidelity import compare_snippet, replica_labs, results_without
from ..book.transcript import Store
from ..model import labs
from ..model.errors import LabUnavailable, TranscriptError

NO_LAB = "no lab available"
"""How every test that cannot run for want of a lab says so (--require-lab fails them)."""
UNCOMPARED = "output not compared"
"""How a snippet whose output has nothing recorded to be compared with says so."""


class LabkitSybil(Sybil):
    """Names each test ``line:N``, the snippet's fence line."""

    def identify(self, example: Example) -> str:
        return f"line:{example.line}"


def _chapter(document: Document) -> snippets.Chapter:
    chapter: snippets.Chapter = document.namespace["__labkit_chapter__"]
    return chapter


def parse_document(document: Document) -> Iterable[Region]:
    """Sybil parser: one region per labkit snippet, from the renderer's own parser."""
    root = Path(document.path).resolve().parent.parent
    shown = str(Path(document.path).resolve().relative_to(root))
    chapter = snippets.parse(document.text, shown)
    document.namespace["__labkit_chapter__"] = chapter
    document.namespace["__labkit_root__"] = root
    for snippet in chapter.snippets:
        yield Region(snippet.start, snippet.end, snippet, evaluate)


def _lab_for(namespace: dict[str, Any], chapter: snippets.Chapter) -> Lab:
    """The session's lab, or a fresh one for a chapter that asks (``fresh_lab: true``) or
    that runs on another lab (front matter ``lab``); the chapter's other labs (``labs``)
    the same way, in ``__labkit_others__``."""
    if "__labkit_lab__" in namespace:
        lab: Lab = namespace["__labkit_lab__"]
        return lab
    shared = namespace["lab"]
    assert isinstance(shared, Lab)
    owned: list[Lab] = namespace.setdefault("__labkit_owned__", [])
    chosen: dict[str, Lab] = {}
    followed = None
    if shared.kind == "netns":
        # As a build runs it: labs following what the real cluster that recorded it picked.
        real = namespace["__labkit_real__"] = RealRecording(
            chapter, namespace["__labkit_root__"] / "docs_src" / "transcripts")
        if real.inventories():
            scratch = namespace["__labkit_scratch__"] = tempfile.TemporaryDirectory(
                prefix="labkit-followed-")
            followed = real.manifests(labs.manifests(root=None), Path(scratch.name))
    for name in chapter.labs:
        if name == shared.name and not chapter.meta.get("fresh_lab") and followed is None:
            chosen[name] = shared
            continue
        try:
            kind = "netns" if name in chapter.on_replica else shared.kind
            chosen[name] = (open_lab(kind, lab=name) if followed is None else
                            open_lab(kind, manifests=labs.manifests(name, followed)))
        except LabUnavailable as exc:
            pytest.skip(f"{NO_LAB}: {exc.one_line()}")
        owned.append(chosen[name])
    lab = chosen.pop(chapter.lab)
    namespace["__labkit_lab__"] = lab
    namespace["__labkit_others__"] = chosen
    return lab


def evaluate(example: Example) -> None:
    """Run one snippet in its chapter's shared namespace; fail with file:line and the reason."""
    namespace = example.namespace
    chapter = _chapter(example.document)
    snippet: snippets.Snippet = example.parsed
    lab = _lab_for(namespace, chapter)
    chapter_run: ChapterRun | None = namespace.get("__labkit_run__")
    if chapter_run is None:
        chapter_run = ChapterRun(lab, others=namespace["__labkit_others__"])
        namespace["__labkit_run__"] = chapter_run
    index = chapter.snippets.index(snippet)
    if len(chapter_run.runs) != index:
        pytest.skip(f"an earlier snippet of {chapter.path} did not run, so this one cannot")
    skip = skip_reason(snippet, lab.kind)
    # On the replica, a `lab=real` snippet runs against the real cluster's recording, as the
    # build shows it.
    real = namespace.get("__labkit_real__")
    snippet_run = chapter_run.run(snippet, skip=skip,
                                  stand_in=real.stand_in_for(snippet, skip) if real else None)
    if snippet_run.skipped:
        pytest.skip(f"{snippet.where} needs the {snippet.only_on} lab")
    if snippet_run.error is not None:
        pytest.fail(str(snippet_run.error), pytrace=False)
    # On the replica its output must match the committed recordings: its own, and the real
    # cluster's through the declared differences. A real cluster brought up for this run
    # picks its own placement and names, so it is held only to the snippet's assertions;
    # comparing a real run is `labkit fidelity`'s (the replica follows that run).
    if snippet_run.recorded_on is None and lab.kind == "netns":
        _check_drift(namespace, chapter, snippet, index, snippet_run.results())
        _check_fidelity(namespace, chapter, snippet, index, snippet_run)


def _check_drift(namespace: dict[str, Any], chapter: snippets.Chapter, snippet: snippets.Snippet,
                 index: int, live: list[Any]) -> None:
    root: Path = namespace["__labkit_root__"]
    store = Store(recordings(root / "docs_src" / "transcripts",
                             namespace["__labkit_lab__"].kind))
    try:
        transcript = store.load(chapter.path)
    except TranscriptError as exc:
        pytest.fail(str(exc), pytrace=False)
    if transcript is None:
        pytest.skip(f"{UNCOMPARED}: {snippet.where} ran and its assertions held, but there is "
                    f"no transcript ({store.path_for(chapter.path)}) to compare its output with")
    recorded = transcript.inventory["info"]
    live_info = namespace["__labkit_lab__"].info
    differ = [f"{k} {recorded.get(k, 'calico' if k == 'lab' else None)} there, "
              f"{live_info.get(k, 'calico' if k == 'lab' else None)} here"
              for k in ("backend", "encapsulation", "lab")
              if recorded.get(k, "calico" if k == "lab" else None)
              != live_info.get(k, "calico" if k == "lab" else None)]
    if differ:
        # Nothing recorded on a lab like this one to compare with (a kernel with the ipip
        # module builds the IPIP replica, whose devices differ from the VXLAN one).
        pytest.skip(f"{UNCOMPARED}: {snippet.where} ran and its assertions held, but "
                    f"{transcript.path} was recorded on another lab ({'; '.join(differ)})")
    records = transcript.snippets
    if index >= len(records) or records[index].code != snippet.code:
        pytest.fail(f"{snippet.where}: the snippet changed since {transcript.path} was "
                    "recorded; rebuild (nox -s build) and commit the transcript", pytrace=False)
    text = diff(chapter, snippet, records[index].results(), live,
                str(Path(str(transcript.path)).relative_to(root)))
    if text:
        pytest.fail(f"{snippet.where}: the output drifted from the transcript "
                    f"(after normalising {', '.join(chapter.normalizers + snippet.normalizers)}):"
                    f"\n{text}", pytrace=False)


def _check_fidelity(namespace: dict[str, Any], chapter: snippets.Chapter,
                    snippet: snippets.Snippet, index: int, run: SnippetRun) -> None:
    """The replica's output against the real cluster's recording, through the declared
    normalisers and differences: the replica may not drift from the real cluster either."""
    source: Path = namespace["__labkit_root__"] / "docs_src"
    try:
        real = namespace["__labkit_real__"].transcript()  # read once for the chapter
    except TranscriptError as exc:
        pytest.fail(str(exc), pytrace=False)
    if real is None:
        return  # a chapter never recorded on a real cluster (a test's own chapter)
    lab = namespace["__labkit_lab__"]
    there, here = real.inventory["info"].get("encapsulation"), lab.info.get("encapsulation")
    if there != here:
        pytest.skip(f"{UNCOMPARED} with the real cluster: {real.path} was recorded on a "
                    f"{there} cluster, this replica runs {here}")
    records = real.snippets
    if index >= len(records) or records[index].code != snippet.code:
        pytest.fail(f"{snippet.where}: the snippet changed since {real.path} was recorded on "
                    f"the real cluster: {HOW_TO_RECORD}", pytrace=False)
    others = replica_labs(real)
    ours = run.results(leave_out=others)
    theirs = results_without(records[index], others)
    if "__labkit_declared__" not in namespace:
        namespace["__labkit_declared__"] = [d for d in load_differences(source)
                                            if d.applies(lab.info)]
    declared = namespace["__labkit_declared__"]
    differ = [c for c in compare_snippet(chapter, snippet, ours, theirs, declared)
              if c.diff and c.declared is None]
    if differ:
        pytest.fail(f"{snippet.where}: the replica printed what the real cluster did not "
                    f"({real.path}), and docs_src/differences.yaml does not declare it:\n"
                    + "\n".join(c.diff for c in differ), pytrace=False)


def teardown(namespace: dict[str, Any]) -> None:
    for owned in namespace.pop("__labkit_owned__", []):
        owned.close()
    scratch = namespace.pop("__labkit_scratch__", None)
    if scratch is not None:
        scratch.cleanup()


def collector(chapters: Path) -> Any:
    """The ``pytest_collect_file`` hook for a conftest.py: every chapter in ``chapters``."""
    return LabkitSybil(
        parsers=[parse_document],
        path=str(chapters.resolve()),
        patterns=["*.md"],
        excludes=["transcripts/*"],
        fixtures=["lab"],
        teardown=teardown,
    ).pytest()
