# Runs chapters in child processes, side by side: a snippet that ends its interpreter or
# hangs fails only its own chapter, at its own line.
"""A chapter's snippets are code by design, and code can end the process that runs it
(``os._exit(0)``, a signal, a C extension that aborts) or stop listening to its timeout.
:class:`ChapterProcess` runs the work of one chapter in a forked child and hands its result
back to the build; if the child dies first, the result is a
:class:`~labkit.model.errors.SnippetError` at the snippet that was running
(``docs_src/<file>.md:<line>``), never a build that ends as if all went well.

:meth:`ChapterProcess.start` returns at once, :meth:`~ChapterProcess.fileno` is readable
when the child has news, :meth:`~ChapterProcess.result` collects it.  What the child logs
goes to the parent's ``log``; an exception it raises is raised again in the parent.

:class:`SideBySide` runs several at once and hands them back in the order given (chapter
order), each one's log lines held back until every chapter before it is done, so what a
build prints reads as if the chapters had run one after another.  It also watches the
time: a snippet still running :data:`GRACE` seconds past its own timeout (one that
ignored the alarm its timeout sets) has its chapter's process killed, and the error names
that snippet.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from ..model.errors import LabError, SnippetError

T = TypeVar("T")
Report = Callable[[int], None]
"""Called by the work with the chapter line of each snippet as it starts, and 0 when it
has finished."""

GRACE = 10.0
"""How long past its own timeout a snippet may run before its chapter's process is killed:
the timeout's alarm stops a snippet in the child; this is for one that does not stop."""

_HEADER = struct.Struct("!cI")  # kind (s: snippet started, l: log line, o: outcome), length


class ChapterDied(LabError):
    """The process running a chapter ended before the chapter was done, outside a snippet."""


class SnippetEndedProcess(SnippetError):
    """A snippet ended the process running its chapter (``os._exit``, a signal)."""


class SnippetHung(SnippetError):
    """A snippet ran past its timeout and did not stop: its chapter's process was killed."""


class ChapterProcess(Generic[T]):
    """``work`` for the chapter ``path``, run in a child process.

    ``timeouts`` (chapter line -> seconds) are the snippets' own timeouts, for
    :class:`SideBySide` to tell a snippet that hangs.
    """

    def __init__(self, path: str, work: Callable[[Report, Callable[[str], None]], T],
                 log: Callable[[str], None],
                 timeouts: Mapping[int, float] | None = None) -> None:
        self.path = path
        self._work = work
        self._log = log
        self.timeouts = dict(timeouts or {})
        self.pid = 0
        self._fd = -1
        self._line = 0
        """The line of the snippet the child last said it started (0: none yet)."""
        self.running_since: float | None = None
        """When (monotonic) the snippet at :attr:`line` started, while it runs."""
        self.hold = False
        """Keep log lines back (:meth:`release` passes them on)."""
        self._held: list[str] = []
        self._buffer = b""
        self._outcome: tuple[str, object] | None = None
        self._status: int | None = None
        self._hung: SnippetHung | None = None

    @property
    def line(self) -> int:
        """The chapter line of the snippet that started last (0: none yet)."""
        return self._line

    def start(self) -> ChapterProcess[T]:
        read, write = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()  # or the child prints the parent's buffered text again
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; what it does comes back through the pipe
            os.close(read)
            self._child(write)
        os.close(write)
        self.pid, self._fd = pid, read
        return self

    @property
    def started(self) -> bool:
        return self.pid != 0

    def fileno(self) -> int:
        return self._fd

    def _child(self, fd: int) -> None:
        code = 0
        try:
            from ..backends.netns import linux

            with contextlib.suppress(OSError, AttributeError):
                linux.die_with_parent(signal.SIGKILL)  # a killed build leaves no chapter behind

            def send(kind: bytes, payload: bytes) -> None:
                data = _HEADER.pack(kind, len(payload)) + payload
                while data:
                    data = data[os.write(fd, data):]

            def report(line: int) -> None:
                send(b"s", str(line).encode())

            def log(message: str) -> None:
                send(b"l", message.encode("utf-8", "replace"))

            try:
                payload = pickle.dumps(("result", self._work(report, log)))
            except BaseException as exc:
                try:
                    payload = pickle.dumps(("raised", exc))
                except Exception:  # an exception that cannot travel: its traceback can
                    payload = pickle.dumps(("crashed", "".join(traceback.format_exception(exc))))
            send(b"o", payload)
        except BaseException:
            code = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)

    def read(self) -> bool:
        """Take in what the child sent (waiting for it if there is nothing yet); False once
        the child has ended, when it is reaped."""
        if self._status is not None:
            return False
        chunk = os.read(self._fd, 1 << 16)
        if not chunk:
            _, self._status = os.waitpid(self.pid, 0)
            os.close(self._fd)
            return False
        self._buffer += chunk
        while len(self._buffer) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self._buffer)
            if len(self._buffer) < _HEADER.size + size:
                break
            payload = self._buffer[_HEADER.size:_HEADER.size + size]
            self._buffer = self._buffer[_HEADER.size + size:]
            if kind == b"s":
                line = int(payload)
                self._line = line or self._line
                self.running_since = time.monotonic() if line else None
            elif kind == b"l":
                self._say(payload.decode("utf-8", "replace"))
            else:
                self._outcome = pickle.loads(payload)  # from our own child
        return True

    def _say(self, message: str) -> None:
        if self.hold:
            self._held.append(message)
        else:
            self._log(message)

    def release(self) -> None:
        """Pass on the log lines held back, and every later one as it comes."""
        self.hold = False
        held, self._held = self._held, []
        for message in held:
            self._log(message)

    @property
    def ended(self) -> bool:
        return self._status is not None

    def overdue(self, now: float) -> float | None:
        """When (monotonic) the running snippet is a hang, if it has a timeout."""
        if self.running_since is None or self._line not in self.timeouts:
            return None
        return self.running_since + self.timeouts[self._line] + GRACE

    def kill_hung(self) -> None:
        """End the child, whose running snippet ignored its timeout; :meth:`result` says so."""
        if self._hung is not None:
            return
        timeout = self.timeouts[self._line]
        self._hung = SnippetHung(
            self.path, self._line,
            f"the snippet did not finish within {timeout:g}s and did not stop when its time "
            f"was up, so the process running its chapter was killed {GRACE:g}s later; the "
            "chapter's pages and transcript were not made")
        self.kill()

    def kill(self) -> None:
        """SIGKILL the child if it still runs (its lab dies with it); it is reaped by
        :meth:`read` or :meth:`result`."""
        if self.started and self._status is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)

    def result(self) -> T:
        """Wait for the child; its result, its exception, or a SnippetError if it died."""
        try:
            while self.read():
                pass
        except BaseException:
            # Ctrl-C or an error here: the chapter must not outlive the build.
            self.reap()
            raise
        if self._hung is not None:
            raise self._hung
        if self._outcome is None:
            assert self._status is not None
            raise self._died(self._status)
        kind, value = self._outcome
        if kind == "result":
            return value  # type: ignore[return-value]
        if kind == "raised":
            assert isinstance(value, BaseException)
            raise value
        raise LabError(f"{self.path}: the build's chapter process failed:\n{value}")

    def reap(self) -> None:
        """Kill the child if it still runs and wait for it to be gone."""
        if not self.started or self._status is not None:
            return
        self.kill()
        with contextlib.suppress(OSError):
            _, self._status = os.waitpid(self.pid, 0)
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _died(self, status: int) -> LabError:
        code = os.waitstatus_to_exitcode(status)
        how = (f"it was killed by {signal.Signals(-code).name}" if code < 0
               else f"it exited with status {code}")
        if not self._line:
            return ChapterDied(f"{self.path}: the process running this chapter ended before "
                               f"its first snippet ({how})")
        return SnippetEndedProcess(
            self.path, self._line,
            f"the snippet ended the process running its chapter ({how}, e.g. os._exit() or "
            "a signal); the chapter's pages and transcript were not made")


def run_chapter(path: str, work: Callable[[Report, Callable[[str], None]], T],
                log: Callable[[str], None]) -> T:
    """``work(report, log)`` in a child process; its result, as if it had run here."""
    return ChapterProcess(path, work, log).start().result()


class SideBySide(Generic[T]):
    """Chapter processes run at once (at most ``jobs``; 0: all), handed back in order.

    Use it as a context manager and iterate: each process comes back once it has ended
    and every one before it has come back, its log lines passed on in order; call
    :meth:`ChapterProcess.result` on it.  Leaving the ``with`` block (a failure the
    caller raises, Ctrl-C) kills those still running and waits for them.
    """

    def __init__(self, processes: Sequence[ChapterProcess[T]], jobs: int = 0) -> None:
        self.processes = list(processes)
        self.jobs = jobs if jobs > 0 else max(len(self.processes), 1)
        for process in self.processes[1:]:
            process.hold = True

    def __enter__(self) -> SideBySide[T]:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.reap()

    def running(self) -> list[str]:
        """``docs_src/<file>.md:<line>`` of each snippet running now (for an interrupted
        build to say where it was)."""
        return [f"{p.path}:{p.line}" for p in self.processes
                if p.started and not p.ended and p.running_since is not None]

    def start(self) -> SideBySide[T]:
        """Start as many as may run at once (iterating starts the rest as others end)."""
        self._running()
        return self

    def _running(self) -> list[ChapterProcess[T]]:
        """Those running, after starting the next ones in order while there is room."""
        running = [p for p in self.processes if p.started and not p.ended]
        for process in self.processes:
            if len(running) >= self.jobs:
                break
            if not process.started:
                running.append(process.start())
        return running

    def __iter__(self) -> Iterator[ChapterProcess[T]]:
        for head in self.processes:
            head.release()
            while not head.ended:
                self._wait(self._running())
            yield head

    @staticmethod
    def _wait(running: list[ChapterProcess[T]]) -> None:
        """Read from whichever child has news; kill those whose snippet hangs."""
        now = time.monotonic()
        deadlines = [(d, p) for p in running if (d := p.overdue(now)) is not None]
        for deadline, process in deadlines:
            if deadline <= now:
                process.kill_hung()
        soonest = min((d for d, _ in deadlines if d > now), default=None)
        timeout = None if soonest is None else soonest - now + 0.01
        ready, _, _ = select.select(running, [], [], timeout)
        for process in ready:
            process.read()
