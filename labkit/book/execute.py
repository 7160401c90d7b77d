# Runs a chapter's snippets in order, in one namespace, and keeps what each one showed.
"""Execution of snippets: the part the renderer and sybil share.

Each snippet's code runs with ``lab`` and ``show`` bound, in a namespace the
whole chapter shares.  Every command it runs through the lab is captured as a
:class:`Block`, in order, so the page can show the commands exactly as they
ran.  Failures become :class:`~labkit.model.errors.SnippetError` naming
``docs_src/<file>.md:<line>``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import labkit  # what a chapter's snippets see as `labkit`

from ..api.lab import Background, Lab
from ..figures.markdown import lines
from ..model.errors import CommandFailed, LabError, SnippetError
from ..model.result import Result
from .snippets import REAL, Snippet


@dataclass
class Block:
    """One thing a snippet put on the page."""

    kind: str
    """``console`` (a command and its output), ``figure`` (from show()), or ``group``."""
    result: Result | None = None
    background: Background | None = None
    markdown: str = ""
    summary: str = ""
    children: list[Block] = field(default_factory=list)
    lab: str | None = None
    """The chapter's other lab the command ran in (front matter ``labs``); None: its own."""

    def results(self) -> Iterator[Result]:
        if self.result is not None:
            yield self.result
        elif self.background is not None and self.background.result is not None:
            yield self.background.result
        for child in self.children:
            yield from child.results()


@dataclass
class SnippetRun:
    snippet: Snippet
    blocks: list[Block] = field(default_factory=list)
    error: SnippetError | None = None
    skipped: str | None = None
    """Why the snippet did not run (it needs another lab)."""
    started: float | None = None
    recorded_on: dict[str, Any] | None = None
    """For a ``lab=real`` snippet on the replica: the facts of the real cluster whose
    recorded answers it was run against (see :mod:`labkit.book.borrow`)."""

    def results(self, leave_out: Iterable[str] = ()) -> list[Result]:
        """What it printed, in order; ``leave_out``: but not in these other labs."""
        skip = set(leave_out)
        return [r for b in self.blocks if b.lab not in skip for r in b.results()]


def skip_reason(snippet: Snippet, lab: str) -> str | None:
    """Why a snippet cannot run on this lab (it needs kubectl, say), or None if it can."""
    if snippet.only_on is None or snippet.only_on == lab:
        return None
    if snippet.real_only:
        return None if lab in REAL else f"needs a real cluster; this build runs on {lab}"
    return f"needs the {snippet.only_on} lab; this build runs on {lab}"


@dataclass
class StandIn:
    """The recorded real cluster a ``lab=real`` snippet runs against on the replica."""

    lab: Lab
    labs: dict[str, Lab]
    info: dict[str, Any]
    """The real cluster's facts (its inventory's ``info``)."""
    started: float
    """When the real cluster printed the outputs."""
    done: Callable[[], None] = lambda: None
    """Called after the snippet ran: refuses a snippet that made fewer calls than recorded."""


class SnippetTimeout(BaseException):
    """Raised inside a snippet that ran past its timeout (BaseException: not swallowable)."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    # SIGALRM interrupts pure-Python loops and blocking socket reads alike; it only works
    # in the main thread, where builds and pytest run snippets.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(*_: object) -> None:
        raise SnippetTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _where_in_snippet(exc: BaseException, snippet: Snippet) -> int:
    """The chapter line the exception came from, if it came from the snippet's own code."""
    line = snippet.line
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == snippet.path:
            line = lineno
    return line


def _source_line(line: int, snippets: Iterable[Snippet]) -> str:
    """The chapter's line ``line`` if one of ``snippets`` holds it (else empty)."""
    for snippet in snippets:
        source = lines(snippet.compiled_source())  # where Python, too, ends lines
        if snippet.line < line <= len(source):
            return source[line - 1].strip()
    return ""


def snippet_error(exc: BaseException, snippet: Snippet,
                  earlier: Iterable[Snippet] = ()) -> SnippetError:
    """Turn whatever a snippet raised into one message naming the chapter's file and line.

    ``earlier`` are the chapter's snippets that ran before: the line that raised may be in
    a function one of them defined.
    """
    if isinstance(exc, SnippetError):
        return exc
    if isinstance(exc, SyntaxError):
        line = exc.lineno or snippet.line
        return SnippetError(snippet.path, line, f"SyntaxError: {exc.msg}")
    line = _where_in_snippet(exc, snippet)
    if isinstance(exc, SnippetTimeout):
        return SnippetError(snippet.path, snippet.line,
                            f"the snippet did not finish within {snippet.timeout:g}s")
    if isinstance(exc, CommandFailed):
        return SnippetError(snippet.path, line, str(exc))
    if isinstance(exc, LabError):
        return SnippetError(snippet.path, line, str(exc))
    code = _source_line(line, [snippet, *earlier])
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return SnippetError(snippet.path, line, f"{detail}\n  in: {code}" if code else detail)


class ChapterRun:
    """The shared namespace of one chapter, and the snippets run in it so far."""

    def __init__(self, lab: Lab, extra: dict[str, Any] | None = None,
                 others: dict[str, Lab] | None = None,
                 on_start: Callable[[int], None] | None = None) -> None:
        """``others``: the other labs the chapter uses (front matter ``labs``), by name.

        The snippets get them, with ``lab`` under its own name, as ``labs``; commands run
        in any of them show on the page in the order they ran.  ``on_start`` is told each
        snippet's chapter line as it starts, and 0 once it has finished (the build's chapter
        process watches for snippets that hang).
        """
        self.lab = lab
        self.on_start = on_start
        """Told each snippet's chapter line as it starts, and 0 once it has finished."""
        self.runs: list[SnippetRun] = []
        self._current: SnippetRun | None = None
        self._stack: list[list[Block]] = []
        self.labs: dict[str, Lab] = {lab.name: lab, **(others or {})}
        self.namespace: dict[str, Any] = {
            "__name__": "__chapter__",
            "lab": lab,
            "labs": dict(self.labs),
            "show": self.show,
            "labkit": labkit,
            **(extra or {}),
        }
        for name, each in self.labs.items():
            each.observe(self._observer(None if each is lab else name))

    def show(self, figure: Any) -> None:
        """Put a figure (anything with a ``markdown()`` method) on the page here."""
        markdown = getattr(figure, "markdown", None)
        if not callable(markdown):
            raise TypeError(f"show() needs an object with a markdown() method, not {figure!r}")
        self._blocks().append(Block("figure", markdown=str(markdown())))

    def _blocks(self) -> list[Block]:
        if self._current is None:
            raise LabError("show() and lab commands only work inside a snippet")
        return self._stack[-1] if self._stack else self._current.blocks

    def _observer(self, lab: str | None) -> Callable[[str, Any], None]:
        """What hears one lab's commands: its blocks say which lab, for an other lab."""
        def observe(event: str, payload: Any) -> None:
            self._on_event(event, payload, lab)

        return observe

    def _on_event(self, event: str, payload: Any, lab: str | None = None) -> None:
        if self._current is None:
            return
        if event == "run":
            self._blocks().append(Block("console", result=payload, lab=lab))
        elif event == "start":
            self._blocks().append(Block("console", background=payload, lab=lab))
        elif event == "collapse":
            group = Block("group", summary=str(payload))
            self._blocks().append(group)
            self._stack.append(group.children)
        elif event == "expand" and self._stack:
            self._stack.pop()

    def run(self, snippet: Snippet, *, skip: str | None = None,
            stand_in: Callable[[], StandIn] | None = None) -> SnippetRun:
        """Run one snippet; its error, if any, is kept on the returned run, not raised.

        ``stand_in``: the snippet needs a real cluster and this lab is the replica; it runs
        against the real cluster's recorded answers instead (as a replay does), and the run
        says so (:attr:`SnippetRun.recorded_on`).
        """
        run = SnippetRun(snippet, started=time.time())
        self.runs.append(run)
        if skip and stand_in is None:
            run.skipped = skip
            return run
        self._current, self._stack = run, []
        if self.on_start is not None:
            self.on_start(snippet.line)
        own = {"lab": self.namespace["lab"], "labs": self.namespace["labs"]}
        unobserve: list[Callable[[], None]] = []
        try:
            if stand_in is not None:
                real = stand_in()
                run.started, run.recorded_on = real.started, real.info
                unobserve = [each.observe(self._on_event) for each in real.labs.values()]
                self.namespace.update(lab=real.lab, labs=dict(real.labs))
            code = compile(snippet.compiled_source(), snippet.path, "exec")
            with _deadline(snippet.timeout):
                exec(code, self.namespace)
            if stand_in is not None:
                real.done()
        except KeyboardInterrupt:
            raise  # Ctrl-C stops the whole build, not just this snippet
        except BaseException as exc:  # exit() too: it must not end a build as if all went well
            run.error = snippet_error(exc, snippet, [r.snippet for r in self.runs])
        finally:
            for stop in unobserve:
                stop()
            self.namespace.update(own)
            self._stop_leftovers(run)
            self._current, self._stack = None, []
            if self.on_start is not None:
                self.on_start(0)  # done: what the chapter does next is not this snippet
        return run

    def _stop_leftovers(self, run: SnippetRun) -> None:
        """Background commands a snippet forgot to stop are stopped (Ctrl-C) at its end."""
        def walk(blocks: list[Block]) -> Iterator[Background]:
            for block in blocks:
                if block.background is not None and block.background.result is None:
                    yield block.background
                yield from walk(block.children)

        for background in walk(run.blocks):
            try:
                background.stop()
            except (LabError, SnippetTimeout) as exc:
                if run.error is None:
                    run.error = snippet_error(exc, run.snippet)
