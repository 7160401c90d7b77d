# Finds labkit snippets in a chapter's Markdown: the one parser both the renderer and sybil use.
"""Chapters and their snippets.

A snippet is a fenced code block whose info string is ``python labkit``,
optionally followed by options::

    ```python labkit timeout=60 normalize=mac,time
    pod = lab.select(node="calico-ipip-worker2", app="app")[0]
    pod.sh("ip route")
    ```

Options (all optional):

``hide``
    run it, but show neither its source nor its output (setup code).
``timeout=SECONDS``
    stop the snippet if it runs longer (default 120).
``lab=real``
    needs what only a real cluster has (kubectl, calicoctl, an API server):
    it runs on the ``native`` and ``kind`` labs; a build on the replica shows
    what it printed on the real cluster, replayed from the chapter's
    ``native`` transcript and marked as such (see :mod:`labkit.book.borrow`).
``normalize=NAME,NAME``
    normalisers applied before comparing its output with the transcript,
    added to the chapter's (see :mod:`labkit.book.normalize`).

A chapter may start with YAML front matter; labkit reads ``title``,
``normalize`` (a list), ``fresh_lab``, ``lab`` (the lab the chapter runs on, bound
as ``lab``: default ``calico``), ``labs`` (other labs it uses too, bound with it
in ``labs``, by name) and ``replica`` (those of ``labs`` that run on the replica
even in a real cluster's build, as a pool routed by BGP must here) from it and passes the rest on.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..figures.markdown import lines
from ..model.errors import SnippetError

MARKER = "labkit"
LANGUAGE = "python"
DEFAULT_TIMEOUT = 120.0
OPTIONS = ("hide", "lab", "normalize", "timeout")
LABS = ("real", "netns")
"""What a snippet may need (``lab=real``): not the named labs of :mod:`labkit.model.labs`."""
REAL = ("native", "kind")
"""The backends that run a real cluster: where a ``lab=real`` snippet runs."""
DEFAULT_LAB = "calico"

# A fence opens with 3+ backticks or tildes, indented at most 3 spaces (CommonMark 4.5).
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Snippet:
    """One executable code block of a chapter."""

    path: str
    """The chapter's path as shown in messages, e.g. ``docs_src/03-datapath.md``."""
    line: int
    """1-based line of the opening fence."""
    code: str
    options: dict[str, Any] = field(hash=False)
    start: int = 0
    """Offset of the opening fence in the chapter's text."""
    end: int = 0
    """Offset just past the closing fence (and its newline)."""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def hidden(self) -> bool:
        return bool(self.options.get("hide"))

    @property
    def timeout(self) -> float:
        return float(self.options.get("timeout", DEFAULT_TIMEOUT))

    @property
    def only_on(self) -> str | None:
        """The lab this snippet needs, if it cannot run on every lab."""
        lab = self.options.get("lab")
        return str(lab) if lab else None

    @property
    def real_only(self) -> bool:
        """Only a real cluster can run it (``lab=real``)."""
        return self.only_on == "real"

    @property
    def normalizers(self) -> tuple[str, ...]:
        return tuple(self.options.get("normalize", ()))

    def compiled_source(self) -> str:
        """The code, shifted so that tracebacks and SyntaxErrors carry the chapter's lines."""
        return "\n" * self.line + self.code


@dataclass(frozen=True)
class Chapter:
    """A chapter of ``docs_src/``: its text, front matter and snippets."""

    path: str
    text: str
    meta: dict[str, Any]
    body_start: int
    """Offset where the Markdown body starts (after the front matter)."""
    snippets: tuple[Snippet, ...]
    literal: tuple[tuple[int, int], ...] = ()
    """Spans (start, end) of the other fenced code blocks: shown as written, never templated."""

    @property
    def title(self) -> str:
        return str(self.meta.get("title", Path(self.path).stem))

    @property
    def normalizers(self) -> tuple[str, ...]:
        return tuple(self.meta.get("normalize", ()))

    @property
    def lab(self) -> str:
        """The lab the chapter runs on (front matter ``lab``)."""
        return str(self.meta.get("lab", DEFAULT_LAB))

    @property
    def labs(self) -> tuple[str, ...]:
        """Every lab the chapter uses: its own first, then the front matter's ``labs``."""
        return (self.lab, *self.meta.get("labs", ()))

    @property
    def on_replica(self) -> tuple[str, ...]:
        """Labs of :attr:`labs` that run on the replica even when the build runs a real
        cluster (front matter ``replica``): what the real software cannot run here."""
        return tuple(self.meta.get("replica", ()))


def parse_options(info: str, where: str) -> dict[str, Any]:
    """Parse ``hide timeout=60 lab=real normalize=mac,time`` into a dict, strictly."""
    try:
        words = shlex.split(info)
    except ValueError as exc:
        raise SnippetError(
            *_split(where), f"cannot read the snippet options {info!r}: {exc}"
        ) from exc
    options: dict[str, Any] = {}
    for word in words:
        key, has_value, value = word.partition("=")
        if key not in OPTIONS:
            raise SnippetError(
                *_split(where),
                f"unknown snippet option {key!r} (known: {', '.join(OPTIONS)})",
            )
        if key in options:
            raise SnippetError(*_split(where), f"snippet option {key!r} given twice")
        if key == "hide":
            if has_value:
                raise SnippetError(*_split(where), "`hide` takes no value")
            options["hide"] = True
        elif not has_value or not value:
            raise SnippetError(*_split(where), f"snippet option {key!r} needs a value ({key}=...)")
        elif key == "timeout":
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not seconds > 0:
                raise SnippetError(
                    *_split(where), f"timeout={value} is not a positive number of seconds"
                )
            options["timeout"] = seconds
        elif key == "lab":
            if value not in LABS:
                raise SnippetError(*_split(where), f"lab={value}: choose one of {', '.join(LABS)}")
            options["lab"] = value
        elif key == "normalize":
            from .normalize import NORMALIZERS

            names = tuple(n for n in value.split(",") if n)
            unknown = [n for n in names if n not in NORMALIZERS]
            if unknown:
                raise SnippetError(
                    *_split(where),
                    f"unknown normaliser {unknown[0]!r} (known: {', '.join(NORMALIZERS)})",
                )
            options["normalize"] = names
    return options


def _split(where: str) -> tuple[str, int]:
    path, _, line = where.rpartition(":")
    return path, int(line)


def _front_matter(text: str, path: str) -> tuple[dict[str, Any], int]:
    if not text.startswith("---\n"):
        return {}, 0
    close = re.search(r"^---[ \t]*$\n?", text[4:], re.M)
    if close is None:
        raise SnippetError(path, 1, "front matter opened with `---` is never closed")
    try:
        meta = yaml.safe_load(text[4 : 4 + close.start()]) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = 2 + mark.line if mark else 1
        raise SnippetError(path, line, f"front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise SnippetError(path, 2, "front matter must be a YAML mapping (key: value)")
    _check_labs(meta, path)
    normalizers = meta.get("normalize", [])
    if not isinstance(normalizers, list):
        raise SnippetError(path, 2, "front matter `normalize` must be a list of names")
    from .normalize import NORMALIZERS

    for name in normalizers:
        if name not in NORMALIZERS:
            raise SnippetError(
                path, 2, f"unknown normaliser {name!r} (known: {', '.join(NORMALIZERS)})"
            )
    return meta, 4 + close.end()


def _check_labs(meta: dict[str, Any], path: str) -> None:
    from ..model.labs import NAME

    lab = meta.get("lab", DEFAULT_LAB)
    if not isinstance(lab, str) or not NAME.match(lab):
        raise SnippetError(path, 2, f"front matter `lab` must be a lab's name (a folder of "
                                    f"manifests/, or {DEFAULT_LAB!r}), not {lab!r}")
    others = meta.get("labs", [])
    if not isinstance(others, list) or not all(isinstance(o, str) and NAME.match(o)
                                               for o in others):
        raise SnippetError(path, 2, "front matter `labs` must be a list of labs' names "
                                    f"(the labs the chapter uses besides `lab`), not {others!r}")
    if len(set(others)) != len(others) or lab in others:
        raise SnippetError(path, 2, "front matter `labs` names a lab twice (or `lab` again)")
    replica = meta.get("replica", [])
    if not isinstance(replica, list) or not all(r in others for r in replica):
        raise SnippetError(path, 2, "front matter `replica` must list labs of `labs` that run "
                                    f"on the replica in every build, not {replica!r}")


def parse(text: str, path: str) -> Chapter:
    """Parse a chapter; raise :class:`SnippetError` (with file and line) on a malformed one."""
    meta, body_start = _front_matter(text, path)
    body_lines = lines(text[body_start:])
    first_line = text[:body_start].count("\n") + 1
    offset = body_start
    snippets: list[Snippet] = []
    literal: list[tuple[int, int]] = []
    i = 0
    while i < len(body_lines):
        opening = FENCE.match(body_lines[i].rstrip("\r\n"))
        if opening is None:
            offset += len(body_lines[i])
            i += 1
            continue
        fence = opening["fence"]
        info = opening["info"].strip()
        if fence[0] == "`" and "`" in info:  # not a fence: an inline code span (CommonMark)
            offset += len(body_lines[i])
            i += 1
            continue
        line_no = first_line + i
        start = offset
        body: list[str] = []
        j = i + 1
        closed = False
        while j < len(body_lines):
            candidate = body_lines[j].rstrip("\r\n")
            stripped = candidate.lstrip(" ")
            mark = stripped.rstrip(" \t")  # only spaces and tabs may follow a closing fence
            if (len(candidate) - len(stripped) <= 3 and mark.startswith(fence)
                    and mark == fence[0] * len(mark)):
                closed = True
                break
            body.append(body_lines[j])
            j += 1
        words = info.split(None, 2)
        is_snippet = len(words) >= 2 and words[0] == LANGUAGE and words[1] == MARKER
        if is_snippet and not closed:
            raise SnippetError(path, line_no, f"the snippet's {fence} fence is never closed")
        end_index = j + 1 if closed else j
        end = start + sum(len(x) for x in body_lines[i:end_index])
        if is_snippet:
            indent = len(opening["indent"])
            code = "".join(x[indent:] if x[:indent].strip() == "" else x.lstrip() for x in body)
            options = parse_options(words[2] if len(words) > 2 else "", f"{path}:{line_no}")
            snippets.append(Snippet(path, line_no, code, options, start, end))
        elif words and words[0] == LANGUAGE and any(w.startswith(MARKER) for w in words[1:2]):
            raise SnippetError(
                path, line_no,
                f"`{info}`: did you mean `{LANGUAGE} {MARKER}`? (this block would not run)",
            )
        else:
            literal.append((start, end))
        offset = end
        i = end_index
    return Chapter(path, text, meta, body_start, tuple(snippets), tuple(literal))


def load(path: Path, root: Path | None = None) -> Chapter:
    """Read and parse a chapter file; messages name it relative to ``root``."""
    shown = str(path.relative_to(root)) if root else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise SnippetError(shown, line, f"not valid UTF-8 ({exc.reason})") from exc
    return parse(text, shown)
