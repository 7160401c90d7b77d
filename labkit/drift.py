# The drift check: does a snippet still print what its transcript recorded?
"""Compare a snippet's live results with its recorded ones, after declared normalisation."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .normalize import normalizer
from .result import Result
from .snippets import Chapter, Snippet


def terminal(results: Iterable[Result]) -> str:
    """The results as one terminal transcript: prompt, command, output, and exit status."""
    lines = []
    for r in results:
        lines.append(f"{r.prompt} {r.command}\n")
        lines.append(r.output if r.output.endswith("\n") or not r.output else r.output + "\n")
        if r.rc:
            lines.append(f"[exit {r.rc}]\n")
    return "".join(lines)


def normalizers_for(chapter: Chapter, snippet: Snippet) -> tuple[str, ...]:
    return (*chapter.normalizers, *snippet.normalizers)


def diff(chapter: Chapter, snippet: Snippet, recorded: list[Result], live: list[Result],
         recorded_from: str) -> str:
    """A unified diff of the normalised outputs; empty when the snippet did not drift."""
    normalize = normalizer(normalizers_for(chapter, snippet))
    before = normalize(terminal(recorded)).splitlines(keepends=True)
    after = normalize(terminal(live)).splitlines(keepends=True)
    return "".join(difflib.unified_diff(
        before, after, fromfile=f"{recorded_from} (recorded)", tofile=f"{snippet.where} (live)",
    ))
