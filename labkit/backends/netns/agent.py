# The process that owns a netns lab: it holds every namespace and runs commands in them.
"""The lab's agent.

Started by :mod:`.launcher` with ``python -m labkit.backends.netns.agent``.  It moves
into a new user namespace (the launcher writes its id maps), then into new
network, mount, UTS and PID namespaces, and forks the lab's PID 1.  PID 1
builds the replica (one holder per node and per pod, each with its own network,
UTS, mount and PID namespace and root filesystem: :mod:`.holder`) and then
serves requests on a unix socket until it is told to stop or, unless detached,
until the process that started it goes away.  Because every process of the lab
lives in that PID namespace or below it, the kernel kills all of them, and frees
every namespace, the moment PID 1 exits, however it exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import socket
import struct
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...model import calico
from ...model.result import decode
from ...model.tools import STDBUF
from ...model.topology import Topology, load
from . import bird, etc, linux, plan, protocol
from .holder import Holder, HolderError, Holders

ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "xterm",
}
# stdout and stderr each go to a SOCK_SEQPACKET socket whose reader asks the kernel to
# stamp every write() with the time it was made, so the two streams can be merged in the
# exact order the command wrote them (pipes or ptys race: see DESIGN notes in the README).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # asm-generic value (x86, arm64)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
RECORD_MAX = 4 << 20
# After a command exits, how long to keep reading output that a child it left behind writes.
DRAIN_GRACE = 0.2
# How long BIRD gets to bring every session up and install every route (a few seconds here:
# `connect delay time 2`, then one scan of the kernel table).
BIRD_TIMEOUT = 30.0
NS_FLAGS = linux.CLONE_NEWNET | linux.CLONE_NEWUTS | linux.CLONE_NEWNS
MOUNT_FLAGS = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
# Setup commands (ip -batch, bridge -batch) running at once while the lab is built; each
# spends most of its time waiting (for exec, for the kernel), so several per CPU.
SETUP_WIDTH = max(4, 4 * (os.cpu_count() or 1))
PF_EXITING = 0x4  # in /proc/PID/stat's flags: the task is in do_exit()
# `netns attach NAME PID` in a batch: done by the agent (Holders.attach_netns).
NETNS_ATTACH = re.compile(r"^netns attach (\S+) (\d+)$")


@dataclass
class Where:
    """A node or a pod: a holder whose namespaces commands enter."""

    name: str
    kind: str
    holder: Holder | None
    """None for the agent's own namespaces (the build machine's side of docker's network)."""
    holders: Holders | None = None
    """Who made it, and knows the agent's own namespaces to come back to."""

    @contextlib.contextmanager
    def entered(self, names: tuple[str, ...] = ("net", "uts", "mnt", "pid")) -> Iterator[None]:
        """This process in the target's namespaces (``names`` of them) for the block."""
        if self.holder is None or self.holders is None:
            yield
            return
        with self.holders.entered(self.holder, names=names):
            yield

    @property
    def pid(self) -> int:
        return self.holder.pid if self.holder else os.getpid()

    @property
    def prompt(self) -> str:
        return f"root@{self.name}:/#"


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
    chunks: list[tuple[int, int, bytes]] = field(default_factory=list)
    """(kernel timestamp of the write, stream, bytes), in arrival order."""
    status: int | None = None
    exited_at: float | None = None
    timed_out: bool = False
    stopping: bool = False
    waiters: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    ready: bytes | None = None
    ready_deadline: float | None = None
    ready_waiter: Callable[[dict[str, Any]], None] | None = None

    def seen(self) -> bytes:
        return b"".join(data for _, _, data in self.chunks)

    def result(self) -> dict[str, Any]:
        out, bad_out = decode(b"".join(d for _, s, d in self.chunks if s == 1))
        err, bad_err = decode(b"".join(d for _, s, d in self.chunks if s == 2))
        # A stable sort by write time: what a terminal would have shown, in that order.
        both, _ = decode(b"".join(d for _, _, d in sorted(self.chunks, key=lambda c: c[0])))
        status = self.status if self.status is not None else 0
        rc = os.waitstatus_to_exitcode(status)
        return {
            "command": self.command,
            "target": self.target.name,
            "prompt": self.target.prompt,
            "stdout": out,
            "stderr": err,
            "output": both,
            "rc": 128 - rc if rc < 0 else rc,
            "started": self.started,
            "duration": round((self.exited_at or time.monotonic()) - self.t0, 6),
            "timed_out": self.timed_out,
            "invalid_bytes": bad_out + bad_err,
        }


COMMAND_ENV = dict(ENV, LD_PRELOAD=STDBUF, _STDBUF_O="L") if os.path.exists(STDBUF) else ENV


class SetupError(Exception):
    """The lab could not be built as its manifests say."""


class MachineLacks(SetupError):
    """This machine lacks what the lab needs (a tool, a kernel module): not the lab's fault,
    and not the replica's; the launcher reports it as the lab being unavailable here."""


def which(tool: str) -> str:
    """The absolute path execve() needs, looked up on the lab's own PATH."""
    found = shutil.which(tool, path=ENV["PATH"])
    if found is None:
        raise MachineLacks(f"`{tool}` is not installed")
    return found


RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM,
                 signal.SIGHUP)


def spawn(target: Where, argv: list[str], stdio: tuple[int, int, int]) -> int:
    """Start ``argv`` inside ``target``'s namespaces (its PID namespace too); its pid."""
    with target.entered():
        return os.posix_spawn(
            argv[0], argv, ENV,
            file_actions=[(os.POSIX_SPAWN_DUP2, fd, number) for number, fd in enumerate(stdio)],
            setsigdef=RESET_SIGNALS,
        )


def call(target: Where, argv: list[str], stdin: bytes = b"") -> tuple[int, str]:
    """Run a setup command in ``target`` to completion (before the event loop starts)."""
    feed = os.memfd_create("stdin", os.MFD_CLOEXEC)
    out = os.memfd_create("output", os.MFD_CLOEXEC)
    try:
        os.write(feed, stdin)
        os.lseek(feed, 0, os.SEEK_SET)
        try:
            pid = spawn(target, argv, (feed, out, out))
        except OSError as exc:
            raise SetupError(f"cannot start {argv[0]} in {target.name}: {exc}") from exc
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), _read(out)
    finally:
        os.close(feed)
        os.close(out)


def in_namespace(target: Where, action: Callable[[], None]) -> None:
    """Run a Python callable with this process in ``target``'s network, UTS and mount
    namespaces (paths are the target's, as its own processes see them)."""
    try:
        with target.entered(("net", "uts", "mnt")):
            action()
    except OSError as exc:
        raise SetupError(f"in {target.name}: {exc}") from exc


@contextlib.contextmanager
def entered_net(target: Where) -> Iterator[None]:
    """This process in ``target``'s network namespace for a moment (what /proc/sys/net and
    if_nameindex() see)."""
    with target.entered(("net",)):
        yield


def write_sysctls(values: dict[str, str]) -> None:
    """Write sysctls of the network namespace this process is in."""
    for key, value in values.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        # Device names contain dots (vxlan.calico) but never as the last path parts' separator
        # that sysctl(8) uses; cali names have none, and those are the only device keys here.
        path.write_text(value)


class Replica:
    """The running replica: its holders (one per node and pod) and what runs in them."""

    def __init__(self, topo: Topology, encapsulation: str, mapping: str,
                 bird: bool = True, note: str = "") -> None:
        self.topo = topo
        self.encapsulation = encapsulation
        self.mapping = mapping
        self.bird = bird and calico.runs_bird(encapsulation)
        """Whether every node runs BIRD (IPIP and plain BGP pools, unless told not to)."""
        self.note = note
        self.holders = Holders()
        self.host = Where("host", "host", None)
        self.targets: dict[str, Where] = {}
        self.netns: dict[str, str] = {}
        self.started = time.time()
        self.cni_calls: dict[str, Any] = {}
        """Flannel labs: each pod's CNI plugin calls (see :mod:`.flannel`)."""
        self.cni_folder = ""

    # -- starting commands ----------------------------------------------------------------

    def spawn(self, target: Where, argv: list[str], stdio: tuple[int, int, int], *,
              env: dict[str, str] = COMMAND_ENV, session: bool = True) -> int:
        """Start ``argv`` inside ``target``'s namespaces, straight from this process: its
        pid.  posix_spawn (vfork + exec) costs a fraction of forking this Python process,
        and after setns() the child is born where a reader's shell would be (a command's
        PID namespace too: ``ps`` there shows the node's or pod's processes)."""
        with self.holders.entered(target.holder):
            return os.posix_spawn(
                argv[0], argv, env,
                file_actions=[(os.POSIX_SPAWN_DUP2, fd, number) for number, fd in enumerate(stdio)],
                setsid=session, setsigdef=RESET_SIGNALS,
            )

    def spawn_command(self, target: Where, command: str, stdio: tuple[int, int, int]) -> int:
        """``/bin/sh -c command`` in ``target`` the way a reader's shell would run it, in a
        session of its own (so a timeout or Ctrl-C reaches everything it started)."""
        return self.spawn(target, ["/bin/sh", "-c", command], stdio)

    def _start_tool(self, target: Where, tool: str, text: str) -> tuple[int, int]:
        """Start ``tool -batch -`` reading ``text`` in ``target``: (pid, its output's fd)."""
        feed = os.memfd_create("batch", os.MFD_CLOEXEC)
        out = os.memfd_create("output", os.MFD_CLOEXEC)
        try:
            os.write(feed, text.encode())
            os.lseek(feed, 0, os.SEEK_SET)
            # In the PID namespace of the agent, whose pids the batches name (`netns PID`).
            with self.holders.entered(target.holder, names=("net", "uts", "mnt")):
                pid = os.posix_spawn(which(tool), [tool, "-batch", "-"], ENV,
                                     file_actions=[(os.POSIX_SPAWN_DUP2, feed, 0),
                                                   (os.POSIX_SPAWN_DUP2, out, 1),
                                                   (os.POSIX_SPAWN_DUP2, out, 2)])
        except BaseException:
            os.close(out)
            raise
        finally:
            os.close(feed)
        return pid, out

    def call(self, target: Where, argv: list[str]) -> tuple[int, str]:
        """Run a setup command to completion (before the event loop starts)."""
        out = os.memfd_create("output", os.MFD_CLOEXEC)
        try:
            pid = self.spawn(target, argv, (self.holders.null, out, out), env=ENV,
                             session=False)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status), _read(out)
        finally:
            os.close(out)

    # -- building -------------------------------------------------------------------------

    def hold(self, name: str, kind: str, files: dict[str, str | None] | None = None) -> Where:
        """A node or pod with namespaces, a root filesystem and a PID 1 of its own; its
        /etc names it as docker, kind and the kubelet would (:mod:`.etc`) unless ``files``
        says otherwise."""
        if files is None:
            files = (etc.node_files(self.topo, self.topo.node(name)) if kind == "node"
                     else etc.pod_files(self.topo, self.topo.pod(name)))
        try:
            return Where(name, kind, self.holders.make(name, files), self.holders)
        except HolderError as exc:
            raise SetupError(str(exc)) from exc

    def apply(self, target: Where, batch: plan.Batch) -> None:
        """Apply one batch in ``target`` and wait for it."""
        self.configure([[(target, batch)]])

    def build(self) -> None:
        topo = self.topo
        if topo.cni == "flannel":  # pods attached by the real CNI plugins: its own module
            from . import flannel

            flannel.build(self)
            return
        for node in topo.nodes:
            self.targets[node.name] = self.hold(node.name, "node")
        for pod in topo.pods:
            self.targets[pod.name] = self.hold(pod.name, "pod")
            self.netns[pod.name] = plan.netns_name(pod)
        for target in self.targets.values():
            assert target.holder is not None
            self.holders.ready(target.holder)
        pids = {name: t.pid for name, t in self.targets.items()}
        fresh = 1
        if topo.pods:  # the interface numbers a new namespace starts with (lo, tunl0...)
            with entered_net(self.targets[topo.pods[0].name]):
                fresh = max(index for index, _ in socket.if_nameindex())
        self.configure([[(self.host, plan.underlay(topo, pids))]])
        # One pipeline per node: the node, then its pods in the order they started (that
        # order decides the interface numbers the node gives their cali devices), then the
        # node's side of them; the nodes' pipelines run side by side.
        self.configure([
            [(self.targets[node.name],
              plan.node(topo, node.name, self.encapsulation, bird=self.bird)),
             *((self.targets[pod.name],
                plan.pod(topo, pod.name, self.encapsulation, pids, fresh))
               for pod in topo.pods if pod.node == node.name),
             (self.targets[node.name], plan.node_pods(topo, node.name, pids))]
            for node in topo.nodes
        ])

    def configure(self, pipelines: list[list[tuple[Where, plan.Batch]]]) -> None:
        """Apply batches: each pipeline's in order, up to SETUP_WIDTH commands at once."""
        queues = [deque(a for target, batch in steps for a in self._actions(target, batch))
                  for steps in pipelines]
        holders = {t.pid: t.name for t in self.targets.values()}
        running: dict[int, tuple[int, int, Where, str]] = {}
        ready = deque(range(len(queues)))
        while ready or running:
            while ready and len(running) < SETUP_WIDTH:
                index = ready.popleft()
                queue = queues[index]
                while queue:
                    what, target, detail = queue.popleft()
                    if what == "sysctl":
                        with self.holders.entered(target.holder, names=("net",)):
                            write_sysctls(detail)
                    elif what == "attach":
                        name, pid = detail
                        self.holders.attach_netns(self._holder(target), name, pid)
                    else:
                        pid, out = self._start_tool(target, what, detail)
                        running[pid] = (index, out, target, what)
                        break
            if not running:
                continue
            pid, status = os.waitpid(-1, 0)
            if pid in holders:
                raise SetupError(f"the PID 1 of {holders[pid]} exited while the lab was built")
            if pid not in running:
                continue
            index, out, target, tool = running.pop(pid)
            text = _read(out)
            os.close(out)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SetupError(f"configuring {target.name} with `{tool} -batch`: {text.strip()}")
            ready.append(index)

    @staticmethod
    def _actions(target: Where, batch: plan.Batch) -> Iterator[tuple[str, Where, Any]]:
        ip = []
        for line in batch.ip:
            attach = NETNS_ATTACH.match(line)
            if attach:
                yield "attach", target, (attach[1], int(attach[2]))
            else:
                ip.append(line)
        for tool, lines in (("ip", ip), ("bridge", batch.bridge)):
            if lines:
                yield tool, target, "\n".join(lines) + "\n"
        if batch.sysctl:
            yield "sysctl", target, batch.sysctl

    @staticmethod
    def _holder(target: Where) -> Holder:
        if target.holder is None:
            raise SetupError(f"{target.name} has no namespaces of its own to name others in")
        return target.holder

    # -- BIRD -----------------------------------------------------------------------------

    def start_bird(self, timeout: float = BIRD_TIMEOUT) -> None:
        """Start BIRD in every node, as calico-node does, and wait until BGP has converged.

        Each node gets its own /var/run/calico (a tmpfs in its mount namespace) with
        confd's configuration, BIRD's socket and its log.  Ready means: every mesh
        session Established and every other node's block routed; otherwise a
        :class:`SetupError` names the first node and session that is not there yet.
        """
        if not self.bird:
            return
        try:
            which("bird")
            client = which("birdc")
        except SetupError as exc:
            raise SetupError(
                f"{exc}: a pool with ipipMode {self.topo.ipip_mode} and vxlanMode "
                f"{self.topo.vxlan_mode} routes with BGP, and the replica runs BIRD for it "
                f"(Debian/Ubuntu package `{bird.PACKAGE}`)"
            ) from None
        null = self.holders.null
        for node in self.topo.nodes:
            target = self.targets[node.name]
            files = bird.config_files(self.topo, node.name, self.encapsulation)
            with self.holders.entered(target.holder, names=("mnt",)):
                _bird_home(files)
            self.spawn_command(target, bird.DAEMON, (null, null, null))
        deadline = time.monotonic() + timeout
        while True:
            missing = self._bird_missing(client)
            if missing is None:
                return
            if time.monotonic() > deadline:
                where, what = missing
                raise SetupError(
                    f"BGP did not converge within {timeout:.0f} s: on {where}, {what} "
                    f"(its BIRD log: {bird.LOG} in that node)"
                )
            time.sleep(0.2)

    def _bird_missing(self, client: str) -> tuple[str, str] | None:
        for node in self.topo.nodes:
            target = self.targets[node.name]
            answers = []
            for argv in ([client, "-s", bird.SOCKET, "show protocols"],
                         [client, "-s", bird.SOCKET, "show route"],
                         [which("ip"), "-4", "route"]):
                rc, text = self.call(target, argv)
                if rc != 0:
                    return node.name, f"`{' '.join(argv[1:])}` failed: {text.strip()}"
                answers.append(text)
            missing = bird.not_converged(self.topo, node.name, answers[0], answers[1],
                                         answers[2], self.encapsulation)
            if missing:
                return node.name, missing
        return None

    def inventory(self) -> dict[str, Any]:
        topo = self.topo
        if topo.cni == "flannel":
            from . import flannel

            return flannel.inventory(self)
        tunnel = calico.tunnel_device(self.encapsulation)
        return {
            "info": {
                "backend": "netns",
                "lab": topo.lab,
                "cni": "calico",
                "encapsulation": self.encapsulation,
                "pool": {"ipipMode": topo.ipip_mode, "vxlanMode": topo.vxlan_mode},
                "bird": self.bird,
                **({"mode_note": self.note} if self.note else {}),
                "cluster": topo.cluster,
                "calico": topo.calico_version,
                "kernel": os.uname().release,
                "user_namespace": self.mapping,
                "started": self.started,
            },
            "nodes": [
                {
                    "name": n.name, "role": n.role, "ip": n.ip, "block": n.block,
                    "hostname": n.name, "tunnel_device": tunnel,
                    "tunnel_ip": n.tunnel_ip if tunnel else "",
                    "prompt": self.targets[n.name].prompt,
                }
                for n in topo.nodes
            ],
            "pods": [
                {
                    "name": p.name, "namespace": p.namespace, "node": p.node, "ip": p.ip,
                    "veth": p.veth, "labels": p.labels, "hostname": p.name,
                    "netns": self.netns[p.name], "prompt": self.targets[p.name].prompt,
                }
                for p in topo.pods
            ],
        }


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _bird_home(files: dict[str, str]) -> None:
    """In a node: its own /var/run/calico, holding confd's files for its BIRD."""
    var_run = Path("/var/run")
    if not var_run.exists() and Path("/var").is_dir():
        var_run.symlink_to("/run")  # as Debian and Ubuntu images have it
    Path(bird.RUN_DIR).mkdir(parents=True, exist_ok=True)
    linux.mount("tmpfs", bird.RUN_DIR, "tmpfs", MOUNT_FLAGS, "mode=755")
    config = Path(bird.CONFIG_DIR)
    config.mkdir()
    for name, text in files.items():
        (config / name).write_text(text)


def has_ipip() -> bool:
    """Whether this kernel can make an ipip device (asked in the agent's own namespace)."""
    ip = which("ip")

    def run(*args: str) -> int:
        with open(os.devnull, "r+b") as null:
            pid = os.posix_spawn(ip, [ip, *args], ENV, file_actions=[
                (os.POSIX_SPAWN_DUP2, null.fileno(), n) for n in (0, 1, 2)])
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    if run("link", "add", "labkit-probe", "type", "ipip") != 0:
        return False
    run("link", "del", "labkit-probe")
    return True


def choose_encapsulation(topo: Topology, manifests: str) -> tuple[str, str]:
    """The mode the pool asks for, and a note if the replica runs another one instead.

    IPIP needs the kernel's ``ipip`` module (Felix's ``tunl0``).  Without it a lab
    whose ``replica.yaml`` names ``ipipFallback: VXLAN`` (the seed's) runs VXLAN and
    says so; any other fails, saying why and what can stand in.
    """
    if topo.cni == "flannel":
        return "VXLAN", ""  # flannel's vxlan backend: no Calico pool to read
    wanted = topo.encapsulation
    if not wanted.startswith("IPIP") or has_ipip():
        return wanted, ""
    setting = f"ipipMode: {topo.ipip_mode}"
    if topo.ipip_fallback:
        return topo.ipip_fallback, (
            f"the pool asks for `{setting}`, but this kernel has no ipip module (no tunl0), "
            f"so the replica runs the pool as `vxlanMode: Always` (replica.yaml's ipipFallback)"
        )
    instead = ("every node is on 172.18.0.0/16, where CrossSubnet routes exactly as "
               "`ipipMode: Never` (plain BGP) does: set that"
               if wanted == "IPIPCrossSubnet" else
               "`ipipMode: Never` with `vxlanMode: Always` carries the same traffic in VXLAN, "
               "and `ipipMode: Never` with `vxlanMode: Never` routes it with BGP, unencapsulated")
    raise MachineLacks(
        f"{manifests}/calico.yaml: the pool's `{setting}` needs the kernel's ipip module "
        f"(Calico's tunl0 device), and this kernel has none (`ip link add type ipip` fails); "
        f"{instead}; or let this lab fall back to VXLAN with `ipipFallback: VXLAN` in "
        f"{manifests}/replica.yaml"
    )


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
            if job.ready and job.ready_waiter and job.ready in job.seen():
                waiter, job.ready_waiter = job.ready_waiter, None
                waiter({"handle": job.id, "ready": True})
            return
        self._close_fd(job, fd)
        self._maybe_finish(job)

    @staticmethod
    def _keep(job: Job, fd: int, data: bytes, ancillary: list[tuple[int, int, bytes]]) -> None:
        stamp = 0
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanos = struct.unpack("qq", value[:16])
                stamp = seconds * 1_000_000_000 + nanos
        job.chunks.append((stamp, job.fds[fd], data))

    # -- jobs -----------------------------------------------------------------------------

    def _close_fd(self, job: Job, fd: int) -> None:
        self.sel.unregister(fd)
        job.socks.pop(fd).close()
        del job.fds[fd]

    def _launch(self, target: Where, command: str, timeout: float | None,
                background: bool) -> Job:
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
            deadline=t0 + timeout if timeout else None,
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

    def _drain(self, job: Job, fd: int) -> None:
        while True:
            try:
                data, ancillary, _flags, _ = job.socks[fd].recvmsg(RECORD_MAX, 64)
            except OSError:
                return
            if not data:
                return
            self._keep(job, fd, data, ancillary)

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
        data = protocol.encode(message)
        conn.setblocking(True)
        try:
            conn.sendall(data)
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
                                   request.get("timeout"), background)
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


def become_lab_init(config: dict[str, Any], handshake: Any) -> int:
    """Runs as PID 1 of the lab's PID namespace; returns the exit status."""
    linux.die_with_parent(signal.SIGKILL)
    linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("proc", "/proc", "proc", MOUNT_FLAGS)
    # A private /run: the lab's /run/netns must not be, or touch, the host's.
    linux.mount("tmpfs", "/run", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=755")
    os.mkdir("/run/netns")
    linux.sethostname("labkit-" + config["name"])
    topo = load(Path(config["manifests"]))
    listener = socket.socket(fileno=config["listen_fd"])
    listener.set_inheritable(False)  # commands (and holders) must not hold it open
    note = ""
    encapsulation = config.get("encapsulation")
    if not encapsulation:
        encapsulation, note = choose_encapsulation(topo, config["manifests"])
    lab = Replica(topo, encapsulation, config["mapping"], bird=config.get("bird", True), note=note)
    lab.build()
    lab.start_bird()
    handshake.write("ready " + json.dumps(lab.inventory()) + "\n")
    handshake.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    parent = None if config.get("detached") else 0
    Server(lab, listener, parent).serve()
    return 0


def main() -> int:
    handshake = sys.stdout
    config = json.loads(sys.stdin.readline())
    try:
        linux.unshare(linux.CLONE_NEWUSER)
    except OSError as exc:
        handshake.write(f"error user namespaces are not available: {exc.strerror}\n")
        return 1
    handshake.write("userns\n")
    handshake.flush()
    answer = sys.stdin.readline().strip()
    if not answer.startswith("mapped"):
        return 1
    config["mapping"] = answer.split()[1]
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        if config["mapping"] != "single":
            os.setgroups([])
        linux.unshare(NS_FLAGS | linux.CLONE_NEWPID)
    except OSError as exc:
        handshake.write(f"error cannot create the lab's namespaces: {exc}\n")
        return 1
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = become_lab_init(config, handshake)
        except BaseException as exc:
            detail = "".join(traceback.format_exception_only(exc)).strip()
            sys.stderr.write(traceback.format_exc())
            # A machine without what the lab needs skips; a lab that fails to build is a bug.
            lacks = isinstance(exc, MachineLacks) or type(exc).__name__ == "PluginMissing"
            try:
                handshake.write(f"{'unavailable' if lacks else 'error'} {detail}\n")
                handshake.flush()
            except OSError:
                pass
        os._exit(code)
    # This process stays outside the lab's PID namespace only to wait for its PID 1.
    sys.stdin.close()
    os.close(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
