# The agent's event loop: requests on the lab's socket, commands running, their output in order.
"""One thread, one selector: the replica outlives one bad request, never its parent."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...model.output import DEFAULT_KEEP, Output
from . import protocol
from .spawn import SetupError, Where

if TYPE_CHECKING:
    from .replica import Replica


# stdout and stderr each go to a SOCK_SEQPACKET socket whose reader asks the kernel to
# stamp every write() with the time it was made, so the two streams can be merged in the
# exact order the command wrote them (pipes or ptys race: see DESIGN notes in the README).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # asm-generic value (x86, arm64)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
RECORD_MAX = 4 << 20
# After a command exits, how long to keep reading output that a child it left behind writes.
DRAIN_GRACE = 0.2
# Writes are put in order (and merged) once this many wait, so a command that writes a byte
# at a time holds a few pieces, not millions. Only writes older than SETTLE_MARGIN are put in
# order: a write the kernel stamped is on its socket's queue well within that.
SETTLE_EVERY = 4096
SETTLE_MARGIN_NS = 100_000_000


PF_EXITING = 0x4  # in /proc/PID/stat's flags: the task is in do_exit()


@dataclass
class Job:
    id: int
    pid: int
    target: Where
    command: str
    started: float
    t0: float
    fds: dict[int, int]
    """Open output fd -> stream number (1 stdout, 2 stderr)."""
    socks: dict[int, socket.socket]
    deadline: float | None
    background: bool
    output: Output = field(default_factory=Output)
    """What it printed: up to its ``keep`` bytes of each stream, in the order written."""
    tail: bytes = b""
    """The last bytes it printed, as long as the ready text: that text may span two writes."""
    settle_at: int = SETTLE_EVERY
    status: int | None = None
    exited_at: float | None = None
    timed_out: bool = False
    stopping: bool = False
    waiters: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    ready: bytes | None = None
    ready_deadline: float | None = None
    ready_waiter: Callable[[dict[str, Any]], None] | None = None

    def printed(self, data: bytes) -> bool:
        """Whether the ready text is in what was printed, now that ``data`` came."""
        assert self.ready is not None
        seen = self.tail + data
        self.tail = seen[-len(self.ready):]
        return self.ready in seen

    def result(self) -> dict[str, Any]:
        """How it ended; the bytes of stdout and stderr travel beside it (``_blobs``, raw:
        the host decodes them, so no escaping in between can make them larger)."""
        self.output.settle()
        status = self.status if self.status is not None else 0
        rc = os.waitstatus_to_exitcode(status)
        return {
            "command": self.command,
            "target": self.target.name,
            "prompt": self.target.prompt,
            "order": self.output.order(),
            "rc": 128 - rc if rc < 0 else rc,
            "started": self.started,
            "duration": round((self.exited_at or time.monotonic()) - self.t0, 6),
            "timed_out": self.timed_out,
            "dropped": self.output.lost(),
            "_blobs": [self.output.stream(1), self.output.stream(2)],
        }


class Server:
    """Serves requests on the lab's socket, one single-threaded event loop."""

    def __init__(self, lab: Replica, listener: socket.socket, parent: int | None) -> None:
        self.lab = lab
        self.listener = listener
        self.parent = parent
        self.sel = selectors.DefaultSelector()
        self.jobs: dict[int, Job] = {}
        self.by_pid: dict[int, Job] = {}
        self.next_id = 1
        self.running = True
        self.holders = {t.pid: t for t in lab.targets.values()}
        self.gone: dict[str, int] = {}
        """Nodes and pods whose PID 1 exited, and how: nothing can run in them any more."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_r = wake_r
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._stop_signal)
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, ("accept", None))
        self.sel.register(wake_r, selectors.EVENT_READ, ("signal", None))
        if parent is not None:
            self.sel.register(parent, selectors.EVENT_READ, ("parent", None))

    def _stop_signal(self, *_: object) -> None:
        self.running = False

    def serve(self) -> None:
        while self.running:
            events = self.sel.select(self._timeout())
            for key, _ in events:
                what, obj = key.data
                getattr(self, f"_on_{what}")(key.fd, obj)
            self._reap()
            self._check_deadlines()

    # -- events ---------------------------------------------------------------------------

    def _on_accept(self, fd: int, _: object) -> None:
        try:
            conn, _addr = self.listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        self.sel.register(conn, selectors.EVENT_READ, ("client", (conn, bytearray())))

    def _on_client(self, fd: int, state: tuple[socket.socket, bytearray]) -> None:
        conn, buffer = state
        try:
            data = conn.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(conn)
            conn.close()
            return
        buffer += data
        try:
            frames = protocol.decode_frames(buffer)
        except ValueError as exc:
            self._send(conn, {"id": None, "ok": False, "error": {"type": "ProtocolError",
                                                                  "message": str(exc)}})
            return
        for request in frames:
            self._dispatch(conn, request)

    def _on_signal(self, fd: int, _: object) -> None:
        try:
            while os.read(fd, 512):
                pass
        except BlockingIOError:
            pass

    def _on_parent(self, fd: int, _: object) -> None:
        if not os.read(fd, 512):
            self.running = False  # whoever started us is gone: so is the lab

    def _on_output(self, fd: int, job: Job) -> None:
        try:
            data, ancillary, _flags, _ = job.socks[fd].recvmsg(RECORD_MAX, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", []
        if data:
            self._keep(job, fd, data, ancillary)
            if len(job.output.pending) >= job.settle_at:
                self._settle(job)
            return
        self._close_fd(job, fd)
        self._maybe_finish(job)

    @staticmethod
    def _keep(job: Job, fd: int, data: bytes, ancillary: list[tuple[int, int, bytes]]) -> int:
        """Take one write of ``job``'s (whenever it is read); the time it was made."""
        stamp = 0
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanos = struct.unpack("qq", value[:16])
                stamp = seconds * 1_000_000_000 + nanos
        job.output.add(job.fds[fd], data, stamp)
        # Looked for in every write, kept or not (past the limit it is still printed).
        if job.ready and job.ready_waiter and job.printed(data):
            waiter, job.ready_waiter = job.ready_waiter, None
            waiter({"handle": job.id, "ready": True})
        return stamp

    def _settle(self, job: Job) -> None:
        """Put in order what ``job`` wrote up to a moment ago: first read everything both its
        streams had queued by then (the kernel stamps a write as it queues it)."""
        before = time.time_ns() - SETTLE_MARGIN_NS
        for fd in list(job.fds):
            self._drain(job, fd, until=before)
        job.output.settle(before)
        # Not again until as many more wait: a stream that keeps writing cannot make each
        # of its writes re-sort all those waiting.
        job.settle_at = len(job.output.pending) + SETTLE_EVERY

    # -- jobs -----------------------------------------------------------------------------

    def _close_fd(self, job: Job, fd: int) -> None:
        self.sel.unregister(fd)
        job.socks.pop(fd).close()
        del job.fds[fd]

    def _launch(self, target: Where, command: str, timeout: float | None,
                background: bool, keep: int = DEFAULT_KEEP) -> Job:
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        readers, writers = [], []
        for _ in (1, 2):
            reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            reader.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            reader.setblocking(False)
            with contextlib.suppress(OSError):  # a big write() must fit in one record
                writer.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, RECORD_MAX)
            readers.append(reader)
            writers.append(writer)
        t0, started = time.monotonic(), time.time()
        try:
            pid = self.lab.spawn_command(target, command,
                                         (null, writers[0].fileno(), writers[1].fileno()))
        except OSError as exc:
            if self._is_gone(target):
                raise SetupError(self._gone_message(target)) from exc
            raise
        finally:
            os.close(null)
            for writer in writers:
                writer.close()
        job = Job(
            id=self.next_id, pid=pid, target=target, command=command, started=started, t0=t0,
            fds={readers[0].fileno(): 1, readers[1].fileno(): 2},
            socks={r.fileno(): r for r in readers}, background=background,
            deadline=t0 + timeout if timeout else None, output=Output(keep),
        )
        self.next_id += 1
        self.jobs[job.id] = job
        self.by_pid[pid] = job
        for fd in job.fds:
            self.sel.register(fd, selectors.EVENT_READ, ("output", job))
        return job

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            job = self.by_pid.pop(pid, None)
            if job is None:
                holder = self.holders.get(pid)
                if holder is not None:  # a node's or pod's PID 1 (`kill 1` in it, say)
                    self.gone[holder.name] = os.waitstatus_to_exitcode(status)
                continue  # or an orphan a command left behind, reparented to us (PID 1)
            job.status, job.exited_at = status, time.monotonic()
            self._maybe_finish(job)

    def _maybe_finish(self, job: Job) -> None:
        if job.status is None:
            return
        if job.fds and time.monotonic() - (job.exited_at or 0) < DRAIN_GRACE:
            return  # let the last output arrive; _check_deadlines comes back for it
        for fd in list(job.fds):
            self._drain(job, fd)
            self._close_fd(job, fd)
        if job.ready_waiter:  # it ended (or was killed) before printing the ready text
            waiter, job.ready_waiter = job.ready_waiter, None
            waiter({"handle": job.id, "ready": False})
        if not job.background or job.waiters:
            self._complete(job)

    def _drain(self, job: Job, fd: int, until: int | None = None) -> None:
        """Read what ``fd`` has queued (up to the first write made after ``until``)."""
        while True:
            try:
                data, ancillary, _flags, _ = job.socks[fd].recvmsg(RECORD_MAX, 64)
            except OSError:
                return
            if not data:
                return
            if self._keep(job, fd, data, ancillary) > (until if until is not None else 1 << 62):
                return

    def _complete(self, job: Job) -> None:
        result = job.result()
        self.jobs.pop(job.id, None)
        body: dict[str, Any] = {"result": result}
        if result["rc"] == 128 + signal.SIGKILL and not job.timed_out and self._is_gone(job.target):
            # Killed because its node's or pod's PID 1 exited: say that, not just "137".
            body = {"ok": False, "error": {"type": "LabError", "message": self._gone_message(
                job.target, f" while `{job.command}` ran")}}
        for waiter in job.waiters:
            waiter(body)
        job.waiters.clear()

    def _is_gone(self, target: Where) -> bool:
        """Whether ``target``'s PID 1 has exited, or is exiting (the kernel then kills the
        rest of its PID namespace and lets no new process in)."""
        if target.name in self.gone or target.holder is None:
            return target.name in self.gone
        try:
            pid, status = os.waitpid(target.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = 0, 0
        if pid:
            self.gone[target.name] = os.waitstatus_to_exitcode(status)
            return True
        try:
            stat = Path(f"/proc/{target.pid}/stat").read_text()
        except OSError:
            return False
        if int(stat.rsplit(")", 1)[1].split()[6]) & PF_EXITING:
            self.gone[target.name] = -1
            return True
        return False

    def _gone_message(self, target: Where, when: str = "") -> str:
        return (f"{target.name} is gone: its PID 1 exited{when}, and every process in it "
                "with it; nothing can run there any more")

    def _kill(self, job: Job, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, sig)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if job.status is None and job.deadline is not None and now >= job.deadline:
                # Past a stop's grace the command is killed, but it did not time out.
                job.timed_out = not job.stopping
                job.deadline = None
                self._kill(job, signal.SIGKILL)
            elif (job.status is None and job.ready_waiter and job.ready_deadline is not None
                  and now >= job.ready_deadline):
                # It never printed what it was waited for: kill it, and the waiter gets its
                # output with ready=False when it has gone.
                job.timed_out = True
                job.ready_deadline = None
                self._kill(job, signal.SIGKILL)
            elif job.status is not None and job.fds:
                self._maybe_finish(job)

    def _timeout(self) -> float | None:
        now = time.monotonic()
        times = [j.deadline for j in self.jobs.values() if j.deadline is not None]
        times += [j.ready_deadline for j in self.jobs.values()
                  if j.ready_waiter and j.ready_deadline is not None]
        times += [(j.exited_at or now) + DRAIN_GRACE for j in self.jobs.values()
                  if j.status is not None and j.fds]
        return max(0.0, min(times) - now) if times else None

    # -- requests -------------------------------------------------------------------------

    def _send(self, conn: socket.socket, message: dict[str, Any]) -> None:
        if conn.fileno() == -1:
            return  # the client hung up (an interrupted request) and _on_client closed it
        result = message.get("result")
        blobs: list[bytes] = []
        if isinstance(result, dict) and "_blobs" in result:  # a result's stdout and stderr
            blobs = result["_blobs"]
            message = {**message, "result": {k: v for k, v in result.items() if k != "_blobs"}}
        data = protocol.encode(message, blobs)
        conn.setblocking(True)
        try:
            for piece in data:
                conn.sendall(piece)
        except OSError:
            pass  # the client went away; nothing to tell it
        finally:
            conn.setblocking(False)

    def _dispatch(self, conn: socket.socket, request: dict[str, Any]) -> None:
        rid = request.get("id")

        def reply(body: dict[str, Any]) -> None:
            self._send(conn, {"id": rid, "ok": True, **body})

        def fail(kind: str, message: str, **extra: Any) -> None:
            self._send(conn, {"id": rid, "ok": False,
                              "error": {"type": kind, "message": message, **extra}})

        op = request.get("op")
        try:
            if op == "inventory":
                inventory = self.lab.inventory()
                gone = [t for t in self.lab.targets.values()
                        if t.kind != "host" and self._is_gone(t)]
                if gone:  # only then: a healthy lab's inventory is what transcripts record
                    inventory["damaged"] = {
                        "targets": [t.name for t in gone], "message": self._damage_message(gone)}
                reply({"inventory": inventory})
            elif op in ("run", "start"):
                target = self._target(request.get("target"))
                if target is None:
                    known = list(self.lab.targets)
                    fail("UnknownTarget", str(request.get("target")), known=known)
                    return
                if self._is_gone(target):
                    fail("LabDamaged", self._damage_message([target]))
                    return
                background = op == "start"
                job = self._launch(target, str(request["command"]),
                                   request.get("timeout"), background,
                                   int(request.get("keep", DEFAULT_KEEP)))
                if not background:
                    job.waiters.append(reply)
                elif request.get("ready"):
                    job.ready = str(request["ready"]).encode()
                    job.ready_waiter = reply
                    job.ready_deadline = time.monotonic() + float(request.get("ready_timeout", 10))
                else:
                    reply({"handle": job.id, "ready": True})
            elif op == "stop":
                stopped = self.jobs.get(int(request["handle"]))
                if stopped is None:
                    fail("LabError", f"no background command with handle {request['handle']}")
                    return
                job = stopped
                job.waiters.append(reply)
                if job.status is None:
                    name = request.get("signal", "INT")
                    # Killed after a signal's grace: stopped. Still running after a wait: too slow.
                    job.stopping = bool(name)
                    if name:  # "" means: just wait for it to end by itself
                        sig = getattr(signal, f"SIG{name}", None)
                        if not isinstance(sig, signal.Signals):
                            fail("LabError", f"unknown signal {name!r}")
                            return
                        self._kill(job, sig)
                    grace = float(request.get("timeout", 5.0))
                    job.deadline = time.monotonic() + grace
                else:
                    self._maybe_finish(job)
            elif op == "shutdown":
                reply({})
                self.running = False
            elif op == "ping":
                reply({})
            else:
                fail("LabError", f"unknown request {op!r}")
        except SetupError as exc:
            fail("LabError", str(exc))
        except Exception as exc:  # report, never die: the lab outlives one bad request
            fail("LabError", f"{type(exc).__name__}: {exc}")

    def _target(self, name: object) -> Where | None:
        return self.lab.targets.get(str(name)) if isinstance(name, str) else None

    def _damage_message(self, gone: list[Where]) -> str:
        """What `labkit sh` and `labkit status` say of a lab with a node or pod gone."""
        names = "; ".join(f"{t.kind} {self._gone_message(t)}" for t in gone)
        return f"the lab is damaged: {names}; `labkit down` and `labkit up` start a new lab"
