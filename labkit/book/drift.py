# The drift check: does a snippet still print what its transcript recorded?
"""Compare a chapter's live run with its transcript, snippet by snippet, after declared
normalisation; each finding names ``docs_src/<file>.md:<line>``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from ..model.result import Result
from .excerpt import abridge
from .normalize import normalizer
from .snippets import Chapter, Snippet
from .transcript import SnippetRecord, Transcript


@dataclass(frozen=True)
class Drift:
    """One snippet whose live run does not match its recording."""

    where: str
    """``docs_src/<file>.md:<line>``."""
    problem: str
    diff: str = ""
    """A unified diff of the normalised terminal text, recorded → live."""

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}" + (f"\n{self.diff}" if self.diff else "")


def terminal(results: Iterable[Result]) -> str:
    """The results as one terminal transcript: prompt, command, output, and exit status."""
    lines = []
    for r in results:
        lines.append(f"{r.prompt} {r.command}\n")
        lines.append(r.output if r.output.endswith("\n") or not r.output else r.output + "\n")
        if r.rc:
            lines.append(f"[exit {r.rc}]\n")
        if r.timed_out:
            lines.append("[timed out]\n")
    return "".join(lines)


def normalizers_for(chapter: Chapter, snippet: Snippet) -> tuple[str, ...]:
    return (*chapter.normalizers, *snippet.normalizers)


def diff(chapter: Chapter, snippet: Snippet, recorded: list[Result], live: list[Result],
         recorded_from: str) -> str:
    """A unified diff of the normalised outputs; empty when the snippet did not drift."""
    normalize = normalizer(normalizers_for(chapter, snippet))
    before = normalize(terminal(recorded)).splitlines(keepends=True)
    # A transcript keeps only the page's part of a long output: compare that part.
    after = normalize(terminal(abridge(r) for r in live)).splitlines(keepends=True)
    return "".join(difflib.unified_diff(
        before, after, fromfile=f"{recorded_from} (recorded)", tofile=f"{snippet.where} (live)",
    ))


def compare(chapter: Chapter, transcript: Transcript, live: list[SnippetRecord],
            recorded_from: str) -> tuple[int, list[Drift]]:
    """Compare a live run's records with the transcript's; return (snippets compared, drifts).

    ``live`` holds one record per snippet that ran (fewer if the run stopped early).
    """
    drifts: list[Drift] = []
    if len(transcript.snippets) != len(chapter.snippets):
        drifts.append(Drift(
            f"{chapter.path}:1",
            f"{recorded_from} has {len(transcript.snippets)} snippets but the chapter has "
            f"{len(chapter.snippets)}: record it again with `nox -s build` and review the diff",
        ))
        return 0, drifts
    compared = 0
    for snippet, recorded, now in zip(chapter.snippets, transcript.snippets, live, strict=False):
        if recorded.code != snippet.code:
            drifts.append(Drift(snippet.where, f"the snippet changed since {recorded_from} was "
                                               "recorded: record it again with `nox -s build`"))
            continue
        if now.error:
            drifts.append(Drift(snippet.where, f"the snippet failed on the live lab: {now.error}"))
            continue
        if recorded.error:
            drifts.append(Drift(snippet.where, "the recording holds a failure but the live run "
                                               f"passed: {recorded.error}"))
            continue
        compared += 1
        text = diff(chapter, snippet, recorded.results(), now.results(), recorded_from)
        if text:
            masked = ", ".join(normalizers_for(chapter, snippet)) or "nothing"
            drifts.append(Drift(snippet.where, "the output drifted from the transcript "
                                               f"(after normalising {masked})", text))
    return compared, drifts
