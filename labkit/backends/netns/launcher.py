# The host side of a netns lab: starts its agent, maps its user namespace, talks to it.
"""Start a netns lab (:func:`start`) or attach to one that ``labkit up`` left running
(:func:`attach`), and use it through :class:`NetnsBackend`."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ...model import scratch, topology
from ...model.errors import (
    CommandTimeout,
    LabBuildFailed,
    LabDamaged,
    LabError,
    LabUnavailable,
    ToolMissing,
    UnknownTarget,
)
from ...model.output import DEFAULT_KEEP, check_keep, interleave
from ...model.result import Result, decode
from ...model.tools import PACKAGES, tool_versions
from . import protocol

# The tools a reader's commands use here (status lists the missing ones), and the ones
# building the lab needs.
READER_TOOLS = ("ip", "bridge", "ping", "arping", "tcpdump", "sysctl", "birdc")
REQUIRED = ("ip", "bridge", "catatonit")
START_TIMEOUT = 60.0
ANSWER_GRACE = 30.0
"""How long the agent may take to answer, beyond the time the request itself may take."""
STOP_GRACE = 5.0
"""How long `labkit down` waits for an agent to end before it kills it by its pid."""
SUBIDS = 65536


def runtime_dir() -> Path:
    """Where detached labs keep their socket, pid and log: private to this user."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(base) / "labkit" if base else Path(tempfile.gettempdir()) / f"labkit-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def preflight() -> None:
    """Fail early, with the package to install, when this machine cannot run a lab."""
    if sys.platform != "linux":
        raise LabUnavailable(
            f"the netns lab needs Linux namespaces; this is {sys.platform}",
            hint="build from the recorded transcripts with `nox -s build -- --replay`",
        )
    for tool in REQUIRED:
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            raise ToolMissing(tool, PACKAGES[tool])
    limit = Path("/proc/sys/user/max_user_namespaces")
    if limit.exists() and limit.read_text().strip() == "0":
        raise LabUnavailable(
            "this kernel has user namespaces turned off (user.max_user_namespaces = 0)",
            hint="as root: sysctl -w user.max_user_namespaces=15000, or build with --replay",
        )
    switch = Path("/proc/sys/kernel/unprivileged_userns_clone")
    if os.geteuid() != 0 and switch.exists() and switch.read_text().strip() == "0":
        raise LabUnavailable(
            "this kernel does not let ordinary users create user namespaces",
            hint="as root: sysctl -w kernel.unprivileged_userns_clone=1, or run as root",
        )


def missing_tools() -> dict[str, str]:
    """Reader-facing tools that are not installed: tool -> package."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return {tool: PACKAGES[tool] for tool in READER_TOOLS if not shutil.which(tool, path=path)}


def _subordinate(file: str, user: str, uid: int) -> tuple[int, int] | None:
    try:
        lines = Path(file).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)):
            return int(parts[1]), min(int(parts[2]), SUBIDS - 1)
    return None


def map_ids(pid: int, ids: str = "auto") -> str:
    """Write the agent's uid/gid maps; return ``full`` or ``single``.

    As root: an identity map of 65536 ids.  As an ordinary user: root inside is
    this user, and 1..65535 come from /etc/subuid through newuidmap (as
    ``unshare --map-auto --map-root-user`` does).  Without subordinate ids only
    one id can be mapped: the lab still runs, but a command that changes user
    (tcpdump drops to the ``tcpdump`` user) cannot.
    """
    uid, gid = os.getuid(), os.getgid()
    proc = Path(f"/proc/{pid}")
    if ids == "single":
        return _map_single(proc, uid, gid)
    if uid == 0:
        (proc / "uid_map").write_text(f"0 0 {SUBIDS}\n")
        (proc / "gid_map").write_text(f"0 0 {SUBIDS}\n")
        return "full"
    user = pwd.getpwuid(uid).pw_name
    subuid = _subordinate("/etc/subuid", user, uid)
    subgid = _subordinate("/etc/subgid", user, uid)
    tools = shutil.which("newuidmap"), shutil.which("newgidmap")
    if subuid and subgid and all(tools):
        done = [
            subprocess.run([tool, str(pid), "0", str(own), "1", "1", str(start), str(count)],
                           capture_output=True, text=True)
            for tool, own, (start, count) in (
                ("newuidmap", uid, subuid), ("newgidmap", gid, subgid)
            )
        ]
        if all(d.returncode == 0 for d in done):
            return "full"
    return _map_single(proc, uid, gid)


def _map_single(proc: Path, uid: int, gid: int) -> str:
    (proc / "setgroups").write_text("deny")
    (proc / "uid_map").write_text(f"0 {uid} 1\n")
    (proc / "gid_map").write_text(f"0 {gid} 1\n")
    return "single"


SINGLE_ID_NOTE = (
    "only one user id is mapped into this lab (no subordinate ids for this user, or newuidmap "
    "missing: package uidmap): commands that switch users cannot work, and tcpdump, which "
    "drops privileges to the `tcpdump` user, fails; run as root or add this user to "
    "/etc/subuid and /etc/subgid"
)


class NetnsBackend:
    """A connection to a netns lab's agent (see :mod:`labkit.backends.netns.agent`)."""

    name = "netns"

    def __init__(self, sock: socket.socket, process: subprocess.Popen[bytes] | None = None,
                 cleanup: Path | None = None, inventory: dict[str, Any] | None = None,
                 path: Path | None = None) -> None:
        self._sock = sock
        self._path = Path(sock.getpeername()) if path is None else path
        self._process = process
        self._cleanup = cleanup
        self._inventory = inventory
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def agent_pid(self) -> int | None:
        """The host pid of the lab's agent, if this object started it (None if it attached)."""
        return self._process.pid if self._process is not None else None

    # -- the Backend protocol -------------------------------------------------------------

    def inventory(self) -> dict[str, Any]:
        if self._inventory is None:
            self._inventory = self._request({"op": "inventory"})["inventory"]
        return self._inventory

    def run(self, target: str, command: str, timeout: float,
            keep: int = DEFAULT_KEEP) -> Result:
        reply = self._request({"op": "run", "target": target, "command": command,
                               "timeout": timeout, "keep": check_keep(keep)}, wait=timeout)
        result = _result(reply)
        if result.timed_out:
            raise CommandTimeout(result, timeout)
        return result

    def start(self, target: str, command: str, ready: str | None, timeout: float,
              keep: int = DEFAULT_KEEP) -> str:
        reply = self._request({"op": "start", "target": target, "command": command,
                               "ready": ready, "ready_timeout": timeout, "timeout": None,
                               "keep": check_keep(keep)}, wait=timeout)
        handle = str(reply["handle"])
        if not reply.get("ready", True):
            result = self.stop(handle, "KILL", 1.0)
            raise CommandTimeout(result, timeout) if result.timed_out else LabError(
                f"`{command}` on {target} exited with {result.rc} before printing "
                f"{ready!r}\n  output: {result.output.strip() or '(none)'}"
            )
        return handle

    def stop(self, handle: str, signal: str, timeout: float) -> Result:
        reply = self._request({"op": "stop", "handle": handle, "signal": signal,
                               "timeout": timeout}, wait=timeout + STOP_GRACE)
        return _result(reply)

    def close(self) -> None:
        """Stop the lab if this object started it (the agent and every namespace go)."""
        if self._closed:
            return
        self._closed = True
        if self._process is not None:
            with contextlib.suppress(LabError, OSError):
                self._request({"op": "shutdown"})
        self._sock.close()
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdin:
                self._process.stdin.close()
        if self._cleanup is not None:
            shutil.rmtree(self._cleanup, ignore_errors=True)

    def current(self) -> dict[str, Any]:
        """The inventory as the agent tells it now (with ``damaged`` if a holder died)."""
        inventory = self._request({"op": "inventory"})["inventory"]
        self._inventory = {k: v for k, v in inventory.items() if k != "damaged"}
        return dict(inventory)

    def shutdown(self, grace: float = ANSWER_GRACE) -> None:
        """Stop a lab this object merely attached to (``labkit down``)."""
        self._request({"op": "shutdown"}, grace=grace)
        self._sock.close()
        self._closed = True

    # -- plumbing -------------------------------------------------------------------------

    def _reconnect(self) -> None:
        self._sock.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _unix_socket(sock.connect, self._path)
        except OSError:
            sock.close()
            return  # the agent is gone: the next request reports it
        self._sock = sock

    def _request(self, message: dict[str, Any], wait: float = 0.0,
                 grace: float = ANSWER_GRACE) -> dict[str, Any]:
        """Send one request; its answer within ``wait`` (the command's own time) plus
        ``grace``, or :class:`LabUnavailable` saying the agent is silent."""
        limit = wait + grace
        with self._lock:
            message["id"] = next(self._ids)
            self._sock.settimeout(limit)
            try:
                for frame in protocol.encode(message):
                    self._sock.sendall(frame)
                reply = protocol.recv(self._sock)
            except TimeoutError as exc:
                self._reconnect()  # its late answer must not be taken for the next one's
                raise LabUnavailable(
                    f"the lab's agent did not answer within {limit:g}s: it is stopped "
                    "(SIGSTOP?) or stuck", hint="`labkit down` ends it") from exc
            except OSError as exc:
                raise LabUnavailable(
                    "lost the connection to the lab's agent (it was stopped or killed)",
                    hint="start a new lab",
                ) from exc
            except BaseException:
                # Interrupted mid-request (a snippet's timeout, Ctrl-C): the answer may still
                # arrive on this connection and would be read as the next request's. Start
                # over on a new connection; the agent drops answers to a closed one.
                self._reconnect()
                raise
        if not reply.get("ok"):
            error = reply.get("error", {})
            if error.get("type") == "UnknownTarget":
                raise UnknownTarget(error["message"], error.get("known", []))
            if error.get("type") == "LabDamaged":
                raise LabDamaged(error["message"])
            raise LabError(error.get("message", "the lab's agent reported an error"))
        return reply


def _result(reply: dict[str, Any]) -> Result:
    """The :class:`Result` in an agent's answer, its output decoded from the raw bytes."""
    fields = dict(reply["result"])
    stdout, stderr = reply.get("_blobs") or (b"", b"")
    out, bad_out = decode(stdout)
    err, bad_err = decode(stderr)
    if not stderr or not stdout:  # one stream only (the usual case): the same text, once
        both = out if stdout else err
    else:
        both, _ = decode(interleave(stdout, stderr, fields["order"]))
    del fields["order"]
    return Result.from_dict({**fields, "stdout": out, "stderr": err, "output": both,
                             "invalid_bytes": bad_out + bad_err})


def _handshake_line(stream: IO[bytes], process: subprocess.Popen[bytes], deadline: float,
                    log: Path) -> str:
    line = stream.readline().decode()
    if not line:
        code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
        detail = log.read_text(errors="replace").strip()[-2000:] if log.exists() else ""
        raise LabUnavailable(f"the lab's agent exited ({code}) while starting:\n{detail}")
    return line.rstrip("\n")


def start(manifests: Path | None = None, *, name: str = "default", detached: bool = False,
          encapsulation: str | None = None, ids: str | None = None,
          bird: bool = True) -> NetnsBackend:
    """Start a new netns lab and connect to it.

    Detached labs (``labkit up``) keep running after this process exits, until
    ``labkit down``; otherwise the lab goes when :meth:`NetnsBackend.close` is
    called or this process dies, however it dies.  ``encapsulation`` forces
    ``IPIP`` or ``VXLAN`` (default: IPIP if the kernel can); ``ids="single"``
    (or ``LABKIT_USERNS=single``) maps one user id even where more are possible,
    to see what a machine without subordinate ids gets.  ``bird=False`` starts no
    BIRD in an IPIP or BGP lab: the routes BIRD would install are then missing.
    """
    # The manifests first: a mistake in them is the user's to fix on any machine.
    manifests = manifests or topology.default_manifests()
    topo = topology.load(manifests)
    preflight()
    ids = ids or os.environ.get("LABKIT_USERNS", "auto")
    if ids not in ("auto", "single"):
        raise LabError(f"LABKIT_USERNS={ids!r}: choose auto or single")
    if detached:
        home = runtime_dir()
        sock_path = home / f"{name}.sock"
        log = home / f"{name}.log"
        cleanup = None
        if sock_path.exists():
            try:
                attach(name).inventory()
            except LabError:
                sock_path.unlink()  # a lab that died without `labkit down` left it behind
            else:
                raise LabError(f"a lab named {name!r} is already up; `labkit down` stops it")
    else:
        scratch.sweep()  # what labs of killed processes left behind
        cleanup = scratch.folder("lab")
        sock_path = cleanup / "agent.sock"
        log = cleanup / "agent.log"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _unix_socket(listener.bind, sock_path)
    listener.listen(16)
    package_root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "labkit.backends.netns.agent"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
            pass_fds=[listener.fileno()], start_new_session=detached, env=env,
        )
    listener_fd = listener.fileno()
    assert process.stdin is not None and process.stdout is not None
    # The checked topology itself: reading and checking the manifests again would cost the
    # agent pydantic's import, a third of a second before the first namespace.
    config = {"manifests": str(manifests), "topology": topology.to_json(topo), "name": name,
              "detached": detached, "listen_fd": listener_fd, "encapsulation": encapsulation,
              "bird": bird}
    deadline = time.monotonic() + START_TIMEOUT
    try:
        process.stdin.write((json.dumps(config) + "\n").encode())
        process.stdin.flush()
        line = _handshake_line(process.stdout, process, deadline, log)
        if line.startswith("error "):
            raise LabUnavailable(line[6:], hint="build from transcripts with --replay")
        mapping = map_ids(process.pid, ids)
        process.stdin.write(f"mapped {mapping}\n".encode())
        process.stdin.flush()
        line = _handshake_line(process.stdout, process, deadline, log)
        if line.startswith("unavailable ") or line.startswith("error cannot create the lab's"):
            raise LabUnavailable(f"this machine cannot run the lab: {line.split(' ', 1)[1]}",
                                 hint="build from transcripts with --replay")
        if not line.startswith("ready "):
            raise LabBuildFailed(f"the lab could not be built: {line.removeprefix('error ')}")
        inventory = json.loads(line[6:])
    except BaseException:
        process.kill()
        process.wait()
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)
        else:
            sock_path.unlink(missing_ok=True)
        raise
    finally:
        listener.close()
    process.stdout.close()
    inventory["info"]["missing_tools"] = missing_tools()
    inventory["info"]["tools"] = tool_versions()
    if mapping == "single":
        inventory["info"]["limitations"] = [SINGLE_ID_NOTE]
    if detached:
        (home / f"{name}.json").write_text(json.dumps({"pid": process.pid,
                                                       "inventory": inventory}))
        # The agent outlives us; closing our end of its stdin does not stop a detached agent.
        process.stdin.close()
        return _connect(sock_path, inventory=inventory)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _unix_socket(sock.connect, sock_path)
    return NetnsBackend(sock, process=process, cleanup=cleanup, inventory=inventory,
                        path=sock_path)


def _connect(path: Path, inventory: dict[str, Any] | None = None) -> NetnsBackend:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _unix_socket(sock.connect, path)
    except OSError as exc:
        sock.close()
        raise LabUnavailable("no lab is up", hint="start one with `labkit up`") from exc
    return NetnsBackend(sock, inventory=inventory, path=path)


# A socket's address holds at most 107 bytes of path (sun_path), and TMPDIR can be longer
# (pytest's tmp_path under xdist is): a longer path is reached through its folder's
# descriptor, /proc/self/fd/N/NAME, which names the same socket in a few bytes.
_SUN_PATH_MAX = 107


def _unix_socket(call: Callable[[str], None], path: Path) -> None:
    """``call`` (a socket's ``bind`` or ``connect``) on ``path``, however long it is."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        call(str(path))
        return
    folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        call(f"/proc/self/fd/{folder}/{path.name}")
    finally:
        os.close(folder)


def labs_up() -> dict[str, dict[str, Any]]:
    """The detached labs ``labkit up`` started and that still answer: name -> inventory."""
    found = {}
    for state in sorted(runtime_dir().glob("*.json")):
        name = state.stem
        if not (state.parent / f"{name}.sock").exists():
            continue
        with contextlib.suppress(OSError, ValueError, KeyError):
            found[name] = json.loads(state.read_text())["inventory"]
    return found


def down(name: str = "calico") -> str:
    """Stop the lab ``labkit up`` started as ``name`` and remove its socket, state and log.

    An agent that does not answer (stopped, stuck) is ended by its pid after
    :data:`STOP_GRACE`; returns what happened, in a sentence.
    """
    home = runtime_dir()
    files = [home / f"{name}.{suffix}" for suffix in ("sock", "json", "log")]
    pid = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        pid = int(json.loads(files[1].read_text())["pid"])
    if pid is None and not files[0].exists():
        raise LabUnavailable("no lab is up", hint="start one with `labkit up`")
    said = f"lab {name!r} is down"
    with contextlib.suppress(LabError):  # dead already, or silent: its pid decides
        _connect(files[0]).shutdown(grace=STOP_GRACE)
    if pid is not None and not _ended(pid, STOP_GRACE):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # SIGKILL ends a stopped process too
        _ended(pid, STOP_GRACE)
        said += f" (its agent, pid {pid}, did not stop by itself and was killed)"
    for path in files:
        path.unlink(missing_ok=True)
    return said


def _ended(pid: int, within: float) -> bool:
    """Whether ``pid`` (our own detached agent) is gone, waiting up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (ProcessLookupError, FileNotFoundError):
            return True
        except (PermissionError, IndexError):
            return False  # not ours (its pid was reused): leave it be
        if state == "Z":
            return True  # dead, waiting for init to reap it
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def attach(name: str = "calico") -> NetnsBackend:
    """Connect to a lab that ``labkit up`` started."""
    home = runtime_dir()
    path = home / f"{name}.sock"
    if not path.exists():
        raise LabUnavailable("no lab is up", hint="start one with `labkit up`")
    backend = _connect(path)
    state = home / f"{name}.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        backend._inventory = json.loads(state.read_text())["inventory"]
    return backend
