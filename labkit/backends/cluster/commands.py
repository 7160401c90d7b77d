# One command running in a node (docker exec, nsenter) or pod (the API server's exec stream).
"""Run a reader's command in a kind node or pod, and end it on purpose.

Both ways in lose the process once it starts: closing a ``docker exec`` or an
exec websocket does not stop what runs in the container.  So every command
starts as ``/bin/sh -c 'echo $$ > PIDFILE; exec /bin/sh -c "$2"'``: the first
shell writes its pid and *becomes* the reader's ``/bin/sh -c <command>`` (same
pid, so the command's exit status is the one reported).  runc makes every
exec'd process a session and process-group leader (``setsid()`` in
``nsexec.c``), so a second, short exec can signal the whole group,
``kill -INT -<pid>``, as Ctrl-C on a terminal would: that is how background
commands are stopped and how a command past its timeout is killed.

Pod output arrives over the Kubernetes channel protocol (``v4.channel.k8s.io``;
``v5`` adds only a close-channel message): each websocket message is one
channel byte and a payload, channel 1 stdout, 2 stderr, and 3 a ``Status``
JSON that carries the exit code (``details.causes[reason=ExitCode]``).  The
status is parsed only after the websocket has closed, because stdout and
stderr may still be arriving when it is written.  :class:`ExecFrames` is that
parser, free of any client library so it can be tested on recorded frames.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...model.errors import LabError, LabUnavailable
from ...model.output import Output, interleave
from ...model.result import Result, decode
from ...model.tools import CTRL_C, STDBUF

STDOUT, STDERR, ERROR = 1, 2, 3
# websocket opcodes (RFC 6455)
OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE = 0x1, 0x2, 0x8
# The stdbuf preload line-buffers stdout into a pipe, as the netns lab runs commands.
WRAPPER = (
    'echo $$ > "$1" 2>/dev/null\n'
    f'if [ -e {STDBUF} ]; then export LD_PRELOAD={STDBUF} _STDBUF_O=L; fi\n'
    'exec /bin/sh -c "$2"\n'
)
# Signal the command's process group (it leads one: see above); fall back to the pid alone.
# Exit 3 means there is no pid file (yet): the command has not started, or never will.
KILL = 'p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] || exit 3\nkill -$2 -$p 2>/dev/null || kill -$2 $p'
# After a kill, how long to wait for the exit status before giving up on the stream.
KILL_GRACE = 5.0


class ExecError(LabError):
    """The exec stream failed, or ended without telling how the command ended."""


def command_argv(pidfile: str, command: str) -> list[str]:
    """The argv that runs ``command`` through ``/bin/sh -c``, recording its pid in ``pidfile``."""
    return ["/bin/sh", "-c", WRAPPER, "labkit", pidfile, CTRL_C + command]


def kill_argv(pidfile: str, signal_name: str) -> list[str]:
    return ["/bin/sh", "-c", KILL, "labkit", pidfile, signal_name]


def signal_name(name: str) -> str:
    """``INT`` for ``INT``/``SIGINT``/``int``; :class:`LabError` for what is not a signal."""
    bare = name.upper().removeprefix("SIG")
    if bare not in signal.Signals.__members__ and f"SIG{bare}" not in signal.Signals.__members__:
        raise LabError(f"unknown signal {name!r}: use a name like INT, TERM or KILL")
    return bare


def exit_code(status: bytes) -> int:
    """The exit code in the Status the kubelet writes on the error channel.

    ``{"status": "Success"}`` is 0; a ``NonZeroExitCode`` failure carries the
    code as the message of the cause whose reason is ``ExitCode``.  Any other
    failure (the container is not running, ``/bin/sh`` is missing) is not a
    command's exit and raises :class:`ExecError` with the kubelet's message.
    """
    if not status.strip():
        raise ExecError("the exec stream closed without the command's exit status "
                        "(the API server or kubelet dropped the connection)")
    try:
        doc = json.loads(status)
    except ValueError as exc:
        raise ExecError(f"the exec stream's status is not JSON: {status[:200]!r}") from exc
    if not isinstance(doc, dict):
        raise ExecError(f"the exec stream's status is not a Status object: {status[:200]!r}")
    if doc.get("status") == "Success":
        return 0
    causes = (doc.get("details") or {}).get("causes") or []
    if doc.get("reason") == "NonZeroExitCode":
        for cause in causes:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", ""))
                except ValueError:
                    break
    raise ExecError(f"the kubelet could not run the command: "
                    f"{doc.get('message') or doc.get('reason') or 'no message'}")


@dataclass
class ExecFrames:
    """Demultiplexes an exec websocket's messages into output and, at the end, an exit code."""

    status: bytearray = field(default_factory=bytearray)
    closed: bool = False

    def feed(self, opcode: int, data: bytes) -> tuple[int, bytes] | None:
        """Take one websocket message; return ``(stream, bytes)`` if it carried output."""
        if opcode == OPCODE_CLOSE:
            self.closed = True
            return None
        if opcode not in (OPCODE_TEXT, OPCODE_BINARY) or not data:
            return None  # ping/pong; or an empty message
        channel, payload = data[0], data[1:]
        if channel == ERROR:
            self.status += payload
        elif channel in (STDOUT, STDERR) and payload:
            return channel, payload
        # Empty first messages announce a channel; v5's close-channel (255) says a stream ended.
        return None

    def exit_code(self) -> int:
        """Only meaningful once :attr:`closed`: by then stdout and stderr are fully drained."""
        return exit_code(bytes(self.status))


class FrameSource(Protocol):
    """An open exec websocket: blocking receive of whole messages, and a way to end it."""

    protocol: str

    def recv(self) -> tuple[int, bytes]:
        """The next message's opcode and data; raises once the connection is gone."""

    def abort(self) -> None:
        """Close it now, waking a thread blocked in :meth:`recv`."""


@dataclass
class Exec:
    """One command started in a node or pod (a ``docker exec`` or an exec stream): its output
    as it arrives, and how it ended."""

    id: str
    target: str
    prompt: str
    command: str
    pidfile: str
    started: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.monotonic)
    output: Output = field(default_factory=Output)
    """What it printed, up to its ``keep`` bytes of each stream (one source: in order)."""
    printed: int = 0
    """Bytes it printed, kept or not: any at all says the stream carried something."""
    waiting_for: bytes = b""
    tail: bytes = b""
    found: bool = False
    """Whether ``waiting_for`` has been printed (looked for as the output comes)."""
    rc: int | None = None
    error: LabError | None = None
    ended: float | None = None
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    abort: Callable[[], None] = lambda: None
    """Drops the connection (docker exec process or websocket) without waiting for the end."""
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def add(self, stream: int, data: bytes) -> None:
        with self._cond:
            # One source delivers both streams in the order they were written.
            self.output.add(stream, data, self.printed)
            self.printed += len(data)
            if len(self.output.pending) >= 4096:
                self.output.settle()  # tiny writes merge: a few pieces, not millions
            if self.waiting_for and not self.found:
                seen = self.tail + data
                self.found = self.waiting_for in seen
                self.tail = seen[-len(self.waiting_for):]
            self._cond.notify_all()

    def finish(self, rc: int | None = None, error: LabError | None = None) -> None:
        with self._cond:
            if self.ended is None:
                self.rc, self.error, self.ended = rc, error, time.monotonic()
            self._cond.notify_all()

    @property
    def done(self) -> bool:
        return self.ended is not None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the end; return whether it came."""
        with self._cond:
            return self._cond.wait_for(lambda: self.ended is not None, timeout)

    def wait_for(self, text: str, timeout: float) -> bool:
        """Wait until the output contains ``text``; ``False`` if it ended or time ran out first."""
        needle = text.encode()
        with self._cond:
            if not self.waiting_for:  # what came before it was asked for counts too
                self.waiting_for = needle
                seen = self.seen()
                self.found = needle in seen
                self.tail = seen[-len(needle):]
            self._cond.wait_for(lambda: self.found or self.ended is not None, timeout)
            return self.found

    def seen(self) -> bytes:
        """What it printed so far, as kept (both streams, in order)."""
        with self._cond:
            self.output.settle()
            return interleave(self.output.stream(STDOUT), self.output.stream(STDERR),
                              self.output.order())

    def stderr(self) -> bytes:
        with self._cond:
            self.output.settle()
            return self.output.stream(STDERR)

    def result(self) -> Result:
        with self._cond:
            self.output.settle()
            stdout, stderr = self.output.stream(STDOUT), self.output.stream(STDERR)
            both_bytes = interleave(stdout, stderr, self.output.order())
            dropped = self.output.lost()
            ended = self.ended if self.ended is not None else time.monotonic()
        out, bad_out = decode(stdout)
        err, bad_err = decode(stderr)
        both, _ = decode(both_bytes)
        extra = dict(self.extra)
        if self.rc is None:
            # Never invent an exit status: say that it is unknown.
            extra["exit_status"] = f"unknown: {self.error or 'the stream was cut'}"
        return Result(
            command=self.command, target=self.target, prompt=self.prompt,
            stdout=out, stderr=err, output=both,
            rc=self.rc if self.rc is not None else -1,
            started=self.started, duration=round(ended - self.t0, 6),
            timed_out=self.timed_out, invalid_bytes=bad_out + bad_err, extra=extra,
            dropped=dropped,
        )


def frames_to_json(protocol: str, frames: list[tuple[float, int, bytes]]) -> list[dict[str, Any]]:
    """Recorded messages in the format of ``tests/samples/kind/*.json``."""
    rows: list[dict[str, Any]] = []
    for at, opcode, data in frames:
        row: dict[str, Any] = {"t": round(at, 6), "opcode": opcode}
        if opcode in (OPCODE_TEXT, OPCODE_BINARY) and data:
            row["channel"] = data[0]
            try:
                row["text"] = data[1:].decode("utf-8")
            except UnicodeDecodeError:
                row["base64"] = base64.b64encode(data[1:]).decode()
        elif data:
            row["base64"] = base64.b64encode(data).decode()
        rows.append(row)
    return rows


def pump_frames(job: Exec, source: FrameSource, record: Path | None = None) -> None:
    """Read an exec websocket to its end into ``job`` (run in a thread of its own)."""
    frames = ExecFrames()
    log: list[tuple[float, int, bytes]] = []
    cut: str | None = None
    try:
        while not frames.closed:
            opcode, data = source.recv()
            if record is not None:
                log.append((time.monotonic() - job.t0, opcode, data))
            output = frames.feed(opcode, data)
            if output is not None:
                job.add(*output)
    except Exception as exc:  # whatever the socket raised, the stream is over
        cut = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        with contextlib.suppress(Exception):
            source.abort()
    if record is not None:
        record.write_text(json.dumps({
            "target": job.target, "command": job.command, "protocol": source.protocol,
            "frames": frames_to_json(source.protocol, log),
        }, indent=1, ensure_ascii=False))
    try:
        job.finish(rc=frames.exit_code())
    except ExecError as exc:
        error = exc
        if cut and not frames.closed and not frames.status:
            error = ExecError(f"the exec stream to {job.target} broke before the command "
                              f"ended ({cut})")
        job.finish(error=error)


def start_frames(job: Exec, source: FrameSource, record: Path | None = None) -> None:
    """Pump ``source`` into ``job`` in the background."""
    job.abort = source.abort
    threading.Thread(target=pump_frames, args=(job, source, record), daemon=True,
                     name=f"labkit-kind-{job.id}").start()


def pump_process(job: Exec, process: subprocess.Popen[bytes]) -> None:
    """Read a ``docker exec`` to its end into ``job`` (run in a thread of its own)."""
    assert process.stdout is not None and process.stderr is not None
    streams = {process.stdout.fileno(): STDOUT, process.stderr.fileno(): STDERR}
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            selector.register(fd, selectors.EVENT_READ)
        while streams:
            for key, _ in selector.select():
                data = os.read(key.fd, 65536)
                if data:
                    job.add(streams[key.fd], data)
                else:
                    selector.unregister(key.fd)
                    del streams[key.fd]
    rc = process.wait()
    rc = 128 - rc if rc < 0 else rc  # killed by a signal: as a shell reports it
    process.stdout.close()
    process.stderr.close()
    err = job.stderr().decode(errors="replace")
    if rc != 0 and err.startswith(("Error response from daemon", "Error: No such container")):
        # docker itself failed (the node container is gone or stopped): not the command's status.
        job.finish(error=LabUnavailable(
            f"docker could not run the command in {job.target}: {err.strip()}",
            hint="is the cluster still up? `labkit status --lab kind`"))
    else:
        job.finish(rc=rc)


def start_process(job: Exec, argv: list[str], *,
                  new_session: bool = False) -> subprocess.Popen[bytes]:
    """Start ``argv`` (a ``docker exec``, or the native lab's ``nsenter``) and pump it into
    ``job`` in the background; ``new_session`` makes it a process group's leader, whose
    group a signal can reach (see :mod:`labkit.backends.native.backend`)."""
    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=new_session)
    except OSError as exc:
        raise LabUnavailable(f"cannot run `{argv[0]}`: {exc.strerror or exc}",
                             hint="is docker still installed?") from exc

    def abort() -> None:
        with contextlib.suppress(OSError):
            process.kill()

    job.abort = abort
    threading.Thread(target=pump_process, args=(job, process), daemon=True,
                     name=f"labkit-exec-{job.id}").start()
    return process
