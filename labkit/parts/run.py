# Running one build's commands: their output goes to the part's log, the last lines are kept.
"""A :class:`Log` is one part's build log (``logs/<name>.log`` in the cache). Each command
it runs is written there with its output; a command that fails raises the error that fits
its output: the module proxy, a full disk, or :class:`~.errors.BuildFailed` with the
command's last lines and the log's path."""

from __future__ import annotations

import contextlib
import errno
import re
import shlex
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from .errors import BuildFailed, DiskFull, ProxyUnreachable

LAST_LINES = 20

# What go prints when it cannot reach the module proxy (DNS, refused or dropped
# connections, TLS, an HTTP proxy in the way), and when the proxy answers but will not
# serve a version (the proxy here is a curated mirror).
_UNREACHABLE = re.compile(
    r"dial tcp|no such host|connection refused|i/o timeout|network is unreachable|"
    r"TLS handshake timeout|proxyconnect|connection reset by peer|Client\.Timeout")
_REFUSED = re.compile(r"(reading|fetching) https?://\S+: (403|404|410) ")
_NO_SPACE = "no space left on device"


class Log:
    """One part's build log, open for the length of its build."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = path.open("w", encoding="utf-8")

    def write(self, text: str) -> None:
        self._file.write(text if text.endswith("\n") else text + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def run(self, command: Sequence[str | Path], cwd: Path,
            env: Mapping[str, str] | None = None, into: Path | None = None) -> str:
        """Run ``command`` in ``cwd``; return its output (stdout and stderr, in order).
        With ``into``, its stdout goes to that file instead, and only stderr is logged
        and returned (what helm renders must not be mixed with its warnings).

        Raises :class:`ProxyUnreachable`, :class:`DiskFull` or :class:`BuildFailed`.
        """
        argv = [str(word) for word in command]
        self.write(f"$ cd {shlex.quote(str(cwd))} && {shlex.join(argv)}"
                   + (f" > {shlex.quote(str(into))}" if into else ""))
        started = time.monotonic()
        last: deque[str] = deque(maxlen=LAST_LINES)
        output: list[str] = []
        with contextlib.ExitStack() as stack:
            if into is None:
                streams: dict[str, object] = {"stdout": subprocess.PIPE,
                                              "stderr": subprocess.STDOUT}
            else:
                streams = {"stdout": stack.enter_context(into.open("wb")),
                           "stderr": subprocess.PIPE}
            process = stack.enter_context(subprocess.Popen(
                argv, cwd=cwd, env=dict(env) if env is not None else None, text=True,
                errors="replace", **streams))  # type: ignore[call-overload]
            read = process.stdout if into is None else process.stderr
            assert read is not None
            try:
                for line in read:
                    self._file.write(line)
                    output.append(line)
                    last.append(line.rstrip("\n"))
                rc = process.wait()
            except BaseException:
                # Ctrl-C or a full disk while writing the log: the build stops with us.
                process.kill()
                raise
        self.write(f"# exit {rc} after {time.monotonic() - started:.1f} s")
        if rc != 0:
            raise self.failure(argv, rc, list(last), "".join(output))
        return "".join(output)

    def failure(self, argv: Sequence[str], rc: int, last: Sequence[str],
                output: str) -> Exception:
        """The error a failed command's output calls for."""
        for line in output.splitlines():
            if _NO_SPACE in line:
                return DiskFull(self.name, line.strip(), self.path)
        for line in output.splitlines():
            if _REFUSED.search(line):
                return ProxyUnreachable(self.name, line, self.path, refused=True)
            if _UNREACHABLE.search(line) and ("http" in line or "proxy" in line
                                              or "dial" in line or "lookup" in line):
                return ProxyUnreachable(self.name, line, self.path)
        return BuildFailed(self.name, argv, rc, last, self.path)


def disk_full(error: BaseException) -> bool:
    """Whether ``error`` is the kernel saying the disk is full (also inside the list of
    errors ``shutil.copytree`` gathers, as copying the Kubernetes module does)."""
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list):
        return any(_NO_SPACE in str(entry[-1]).lower() for entry in error.args[0])
    return isinstance(error, OSError) and error.errno == errno.ENOSPC
