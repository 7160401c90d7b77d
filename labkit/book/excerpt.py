# What of a command's output a page shows, and what a transcript keeps of a long one.
"""A page shows the first :data:`MAX_LINES` lines of an output, each up to
:data:`MAX_LINE_CHARS` characters (:func:`excerpt`).  A transcript keeps an output whole
when the page shows all of it; of a longer one it keeps only that part, with the size and
sha256 of the whole text and what the page says of the rest (:func:`abridge`), so a
replay renders the page identically and a megabyte output is not a megabyte in git.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from ..figures.markdown import first_lines
from ..model.result import Result

MAX_LINES = 200
"""A command's output longer than this is cut on the page."""
MAX_LINE_CHARS = 10_000
"""A line of output longer than this is cut on the page too."""
TEXTS = ("output", "stdout", "stderr")


@dataclass(frozen=True)
class Excerpt:
    """The part of a text a page shows, and what it says of the rest."""

    lines: list[str]
    """The first lines, each with its line ending; a long one cut at MAX_LINE_CHARS."""
    count: int
    """How many lines the whole text has."""
    wide: list[int]
    """Which of ``lines`` were cut (they were longer than MAX_LINE_CHARS)."""
    left_out: int
    """Characters cut off those lines, in all."""

    @property
    def whole(self) -> bool:
        return self.count <= MAX_LINES and not self.wide


def excerpt(text: str, facts: dict[str, Any] | None = None) -> Excerpt:
    """What a page shows of ``text``; ``facts`` are :func:`abridge`'s, when ``text`` is
    what a transcript kept of a longer one."""
    shown, count = first_lines(text, MAX_LINES)
    if facts is not None:
        return Excerpt(shown, int(facts["lines"]), [int(i) for i in facts["wide"]],
                       int(facts["left_out"]))
    wide, left_out = [], 0
    for i, line in enumerate(shown):
        body = line.rstrip("\r\n")
        if len(body) > MAX_LINE_CHARS:
            wide.append(i)
            left_out += len(body) - MAX_LINE_CHARS
            shown[i] = body[:MAX_LINE_CHARS] + line[len(body):]
    return Excerpt(shown, count, wide, left_out)


def abridge(result: Result) -> Result:
    """``result`` as a transcript keeps it: each text the page would cut replaced by the
    part the page shows, and in ``abridged`` the whole text's ``bytes`` (UTF-8),
    ``sha256``, and what :func:`excerpt` says of the rest."""
    if result.abridged:
        return result  # already abridged (read back from a transcript)
    changes: dict[str, Any] = {}
    facts: dict[str, dict[str, Any]] = {}
    for name in TEXTS:
        text = getattr(result, name)
        part = excerpt(text)
        if part.whole:
            continue
        data = text.encode("utf-8", "surrogatepass")
        changes[name] = "".join(part.lines)
        facts[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                       "lines": part.count, "wide": part.wide, "left_out": part.left_out}
    if not facts:
        return result
    return dataclasses.replace(result, **changes, abridged=facts)
