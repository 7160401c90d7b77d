# Runs one chapter in a child process: a snippet that ends its interpreter fails only itself.
"""A chapter's snippets are code by design, and code can end the process that runs it
(``os._exit(0)``, a signal, a C extension that aborts).  :class:`ChapterProcess` runs
the work of one chapter in a forked child and hands its result back to the build; if the
child dies first, the result is a :class:`~labkit.model.errors.SnippetError` at the snippet that
was running (``docs_src/<file>.md:<line>``), never a build that ends as if all went well.

Several can run at once: :meth:`ChapterProcess.start` returns at once, :meth:`fileno` is
readable when the child has news, :meth:`result` collects it.  What the child logs goes
to the parent's ``log`` in order; an exception it raises is raised again in the parent.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
import traceback
from collections.abc import Callable
from typing import Generic, TypeVar

from ..model.errors import LabError, SnippetError

T = TypeVar("T")
Report = Callable[[int], None]
"""Called by the work with the chapter line of each snippet as it starts."""

_HEADER = struct.Struct("!cI")  # kind (s: snippet started, l: log line, o: outcome), length


class ChapterDied(LabError):
    """The process running a chapter ended before the chapter was done, outside a snippet."""


class SnippetEndedProcess(SnippetError):
    """A snippet ended the process running its chapter (``os._exit``, a signal)."""


class ChapterProcess(Generic[T]):
    """``work`` for the chapter ``path``, run in a child process."""

    def __init__(self, path: str, work: Callable[[Report, Callable[[str], None]], T],
                 log: Callable[[str], None]) -> None:
        self.path = path
        self._work = work
        self._log = log
        self.pid = 0
        self._fd = -1
        self._line = 0
        """The line of the snippet the child last said it started (0: none yet)."""

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

    def result(self) -> T:
        """Wait for the child; its result, its exception, or a SnippetError if it died."""
        outcome: tuple[str, object] | None = None
        buffer = b""
        try:
            while True:
                chunk = os.read(self._fd, 1 << 16)
                if not chunk:
                    break
                buffer += chunk
                while len(buffer) >= _HEADER.size:
                    kind, size = _HEADER.unpack_from(buffer)
                    if len(buffer) < _HEADER.size + size:
                        break
                    payload = buffer[_HEADER.size:_HEADER.size + size]
                    buffer = buffer[_HEADER.size + size:]
                    if kind == b"s":
                        self._line = int(payload)
                    elif kind == b"l":
                        self._log(payload.decode("utf-8", "replace"))
                    else:
                        outcome = pickle.loads(payload)  # from our own child
            _, status = os.waitpid(self.pid, 0)
        except BaseException:
            # Ctrl-C or an error here: the chapter must not outlive the build.
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            raise
        finally:
            os.close(self._fd)
        if outcome is None:
            raise self._died(status)
        kind, value = outcome
        if kind == "result":
            return value  # type: ignore[return-value]
        if kind == "raised":
            assert isinstance(value, BaseException)
            raise value
        raise LabError(f"{self.path}: the build's chapter process failed:\n{value}")

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
