# The native lab: the seed's real cluster in Linux namespaces, as a Backend.
"""Start (or attach to) a native lab and run commands in its nodes and pods.

:func:`start` checks that it can run here (root, the parts built), sweeps what
dead labs left, starts the lab's owner (:mod:`.owner`: the nodes), then brings
the cluster up (:mod:`.bringup`; a Flannel lab's CNI by :mod:`.flannel`).  Labs of
different names (the Calico and the Flannel cluster, as chapter 五 holds them) run side
by side: each has its own folder, cgroups, underlay namespace and nodes.  With
``detached`` (``labkit up --lab native``) the lab outlives this process: its owner's pid
and folder are kept in ``$TMPDIR/labkit-native-<name>.json``, which :func:`attach`,
:func:`down` and ``labkit status``/``labkit sh`` read.  Otherwise
:meth:`NativeBackend.close` removes it.

A command in a node runs as ``docker exec`` would (the node's cgroups, all of its
namespaces, its root); in a pod as ``kubectl exec`` ends in ``runc exec``: the
pod's container is found with ``crictl`` in its node, and its namespaces, root
and environment are entered.  Each command leads a process group of its own on
the host; a signal (Ctrl-C for a background command, KILL past a timeout) goes
to that group's command, not to the ``nsenter`` that carries it, so the exit
status is the command's.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import parts
from ...model import scratch
from ...model.errors import (
    LabBuildFailed,
    LabError,
    LabUnavailable,
    UnknownTarget,
)
from ...model.kind import underlay6_address
from ...model.leftovers import left_by_dead_process
from ...model.output import DEFAULT_KEEP, Output, check_keep
from ...model.tools import runtime_versions, tool_versions
from ..cluster import commands, kubeadm
from ..cluster.commands import Exec
from ..cluster.jobs import KILL_WAIT, JobBackend
from ..cluster.kubeconfig import KubeconfigError, kind_kubeconfig
from ..cluster.settings import Settings, load, shown
from . import bringup, flannel, nodes
from .nodes import Lab

NEEDED_PARTS = ("kubernetes", "pause", "crictl", "calico", "calico-manifests",
                *(f"image-{name}" for name in bringup.IMAGES))
FLANNEL_PARTS = ("kubernetes", "pause", "crictl", *flannel.NEEDED_PARTS)
OWNER_START_TIMEOUT = 60.0
HELPER_TIMEOUT = 30.0
ROOT_ONLY = ("the native lab runs a real cluster in Linux namespaces and needs root (like "
             "kind's rootful mode): run it as root, or use the netns replica (the default)")


@dataclass(frozen=True)
class Where:
    name: str
    prompt: str
    node: str
    """The node it is (or runs on)."""
    pod: bool
    namespace: str = ""
    container: str = ""


@dataclass
class NativeBackend(JobBackend):
    """A native lab as a :class:`labkit.api.backend.Backend`."""

    lab: Lab
    settings: Settings
    _inventory: dict[str, Any]
    owned: bool = True
    """Whether :meth:`close` removes the lab (not when ``labkit up`` left it running)."""
    name: str = "native"
    _jobs: dict[str, Exec] = field(default_factory=dict)
    _leaders: dict[str, int] = field(default_factory=dict)
    _containers: dict[str, int] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._where = {n["name"]: Where(n["name"], n["prompt"], n["name"], pod=False)
                       for n in self._inventory["nodes"]}
        for pod in self._inventory["pods"]:
            container = self.settings.container if bringup.is_app(self.settings, pod) else ""
            self._where[pod["name"]] = Where(pod["name"], pod["prompt"], pod["node"], pod=True,
                                             namespace=pod["namespace"], container=container)

    # -- the Backend protocol -------------------------------------------------------------

    def inventory(self) -> dict[str, Any]:
        return self._inventory

    def close(self) -> None:
        """Kill what still runs; remove the lab if this process made it for itself."""
        for job in list(self._jobs.values()):
            with contextlib.suppress(LabError):
                self._end(job, "KILL")
        self._jobs.clear()
        if self.owned:
            nodes.destroy(self.lab)

    def kubeconfig(self) -> str:
        """The kubeconfig ``kind get kubeconfig`` would print for this lab (``labkit
        kubeconfig`` prints it for a lab ``labkit up`` left running)."""
        return _kubeconfig(self.lab, self.settings, str(self._inventory["info"]["apiserver"]))

    # -- plumbing -------------------------------------------------------------------------

    def _target(self, name: str) -> Where:
        where = self._where.get(name)
        if where is None:
            raise UnknownTarget(name, list(self._where))
        return where

    def _argv(self, where: Where, argv: list[str]) -> list[str]:
        if not where.pod:
            return nodes.node_argv(self.lab, where.node, argv)
        return nodes.container_argv(self._container_pid(where), argv)

    def _container_pid(self, where: Where) -> int:
        """The host pid of the pod's container (found with crictl in its node, then kept)."""
        pid = self._containers.get(where.name, 0)
        if pid and Path(f"/proc/{pid}").exists():
            return pid
        name = f"--name '^{where.container}$' " if where.container else ""
        script = (f"p=$(crictl pods --name '^{where.name}$' --namespace '^{where.namespace}$' "
                  "--state ready -q | head -n 1) && [ -n \"$p\" ] && "
                  f"c=$(crictl ps --pod \"$p\" {name}--state running -q | head -n 1) && "
                  "[ -n \"$c\" ] && crictl inspect --output go-template "
                  "--template '{{.info.pid}}' \"$c\"")
        rc, out, err = bringup.sh(self.lab, where.node, script, timeout=HELPER_TIMEOUT)
        node_pid = out.strip()
        if rc != 0 or not node_pid.isdigit():
            raise LabUnavailable(f"no running container of pod {where.namespace}/{where.name} "
                                 f"on {where.node} ({err.strip() or 'crictl found none'})",
                                 hint="`labkit status --lab native` shows the pods")
        pid = nodes.host_pid(self.lab, where.node, int(node_pid))
        if not pid:
            raise LabUnavailable(f"cannot find the process of pod {where.name}'s container "
                                 f"(pid {node_pid} in {where.node})")
        self._containers[where.name] = pid
        return pid

    def _launch(self, target: str, command: str, keep: int = DEFAULT_KEEP) -> Exec:
        where = self._target(target)
        with self._lock:
            number = str(next(self._ids))
        job = Exec(id=number, target=target, prompt=where.prompt, command=command,
                   pidfile="", output=Output(check_keep(keep)))
        argv = self._argv(where, commands.command_argv("/dev/null", command))
        process = commands.start_process(job, argv, new_session=True)
        self._leaders[number] = process.pid
        return job

    def _signal(self, job: Exec, name: str) -> None:
        """Send SIG``name`` to the command's process group, past the nsenter that carries it."""
        leader = self._leaders.get(job.id)
        if leader is None:
            return
        sig = signal.Signals[f"SIG{name}"]
        deadline = time.monotonic() + 3.0
        while True:
            members = nodes.group_members(leader)
            for pid in members:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
            if members or job.done or time.monotonic() > deadline:
                return
            time.sleep(0.05)  # still in nsenter: the command has not started yet

    def _end(self, job: Exec, name: str, wait: float = KILL_WAIT) -> None:
        if not job.done:
            self._signal(job, name)
        if not job.wait(wait):
            job.abort()
            job.wait(2.0)
        self._forget(job)

    def _forget(self, job: Exec) -> None:
        self._leaders.pop(job.id, None)


# -- the lab's life ----------------------------------------------------------------------------


def _state_path(instance: str) -> Path:
    return scratch.system_tmp() / f"labkit-native-{instance}.json"


def preflight(cni: str = "calico") -> None:
    """One clear line when this machine cannot run the native lab (of ``cni``)."""
    if sys.platform != "linux":
        raise LabUnavailable(f"the native lab needs Linux namespaces; this is {sys.platform}")
    if os.geteuid() != 0:
        raise LabUnavailable(ROOT_ONLY)
    for tool in ("nsenter", "unshare", "ip", "mount"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            raise LabUnavailable(f"the native lab needs `{tool}` (util-linux, iproute2)")
    missing = []
    for name in FLANNEL_PARTS if cni == "flannel" else NEEDED_PARTS:
        try:
            parts.path(name)
        except parts.PartsError:
            missing.append(name)
    if missing:
        raise LabUnavailable(f"labkit parts build has not run here: {', '.join(missing)} "
                             "not built", hint="`labkit parts build` builds them")


def unavailable(cni: str = "calico") -> str | None:
    """Why this machine cannot run the native lab (one line), or None if it can."""
    try:
        preflight(cni)
    except LabUnavailable as exc:
        return exc.one_line()
    return None


def _bin_links() -> dict[str, str]:
    """``/usr/local/bin`` in the nodes: links into the parts, as the nodes see them."""
    root = parts.root()
    inside = Path("/opt/labkit/parts")
    files = {"pause": ("pause", "pause"), "crictl": ("crictl", "crictl"),
             "calicoctl": ("calico", "calicoctl"),
             **{b: ("kubernetes", b) for b in ("kubeadm", "kubelet", "kubectl")}}
    return {name: str(inside / parts.binary(part, file).relative_to(root))
            for name, (part, file) in files.items()}


def _node_ips(settings: Settings) -> dict[str, str]:
    """The replica's addresses when its manifest names them (docker gives them in the order
    the nodes are created); else .2, .3... in kind's order."""
    replica = getattr(settings.spec, "replica", None)
    known = {name: str(node.ip) for name, node in (getattr(replica, "nodes", None) or {}).items()
             if getattr(node, "ip", None)}
    return {name: known.get(name, f"172.18.0.{index + 2}")
            for index, name in enumerate(settings.node_names)}


_ALIVE: list[int] = []
"""Write ends of the pipes whose end-of-file tells this process's labs' owners it is gone."""


def _start_owner(instance: str, settings: Settings, ips: dict[str, str],
                 detached: bool) -> tuple[Lab, int, int]:
    """The lab's owner and its nodes: (the lab, the owner's pid, the API server's port on the
    host's 127.0.0.1)."""
    # Only a detached lab (`labkit up`) is known by its name, for later commands to attach
    # to: two builds or tests may each own a lab of the same cluster at once.
    state = _state_path(instance)
    spec: dict[str, Any] = {"state": str(state) if detached else "", "instance": instance,
            "manifests": str(settings.directory),
            "parts": str(parts.root()), "bin": _bin_links(),
            "apiserver": {"address": ips[settings.node_names[0]], "port": kubeadm.API_PORT},
            "nodes": [{"name": n, "ip": ips[n], "ip6": underlay6_address(ips[n])}
                      for n in settings.node_names]}
    # A lab this process owns ends with it, however it ends (a killed build, a crashed
    # test): the owner holds the read end of a pipe only this process can write to, and
    # stops when it reads end-of-file.
    creator_fd = None
    if not detached:
        creator_fd, alive = os.pipe()
        _ALIVE.append(alive)  # open (close-on-exec) for this process's lifetime
        spec["creator_fd"] = creator_fd
    folder = scratch.system_tmp()
    handle, name = tempfile.mkstemp(prefix=f"labkit-native-{instance}-", suffix=".spec.json",
                                    dir=folder)
    spec_file = Path(name)
    with os.fdopen(handle, "w") as out:
        out.write(json.dumps(spec))
    # unshare --kill-child: the owner dies with this launcher too (the launcher dies only when
    # killed); start_new_session: a Ctrl-C in the terminal does not reach a detached lab.
    process = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-m",
         "labkit.backends.native.owner", str(spec_file)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True, cwd="/", pass_fds=() if creator_fd is None else (creator_fd,))
    if creator_fd is not None:
        os.close(creator_fd)
    assert process.stdout is not None
    line = process.stdout.readline().decode(errors="replace").strip()
    spec_file.unlink(missing_ok=True)
    try:
        report = json.loads(line) if line else {}
    except ValueError:
        report = {"error": line}
    if "error" in report or not report:
        err = process.stderr.read().decode(errors="replace") if process.stderr and \
            process.poll() is not None else ""
        with contextlib.suppress(OSError):
            process.kill()
        if report.get("folder"):
            nodes.destroy(Lab(Path(report["folder"])))
        if detached:
            state.unlink(missing_ok=True)
        raise LabUnavailable(f"the native lab's nodes did not start: "
                             f"{report.get('error') or err.strip() or 'no report'}")
    process.stdout.close()
    if process.stderr is not None:
        process.stderr.close()
    return Lab(Path(report["folder"])), int(report["owner"]), int(report["apiserver_port"])


def _progress() -> Any:
    t0 = time.monotonic()

    def show(message: str) -> None:
        print(f"[native {time.monotonic() - t0:5.1f}s] {message}", file=sys.stderr, flush=True)

    return show


def start(manifests: Path | None = None, *, name: str | None = None, progress: Any = None,
          ready_timeout: float = bringup.READY_TIMEOUT, detached: bool = False,
          reuse_only: bool = False, encapsulation: str | None = None,
          **options: Any) -> NativeBackend:
    """Start the native lab (or reuse a ready one of the same ``name``).

    ``detached`` leaves it running for later commands (``labkit up``); ``reuse_only``
    (``labkit status``, ``labkit sh``) only attaches.  ``encapsulation`` may only be VXLAN,
    which is what this machine can run (see :mod:`.bringup`).
    """
    if options:
        raise LabError(f"the native lab takes no option {', '.join(sorted(options))}")
    if os.geteuid() != 0:
        raise LabUnavailable(ROOT_ONLY)
    if encapsulation is not None and encapsulation.upper() != "VXLAN":
        raise LabUnavailable(f"the native lab runs VXLAN here, not {encapsulation}: this "
                             "kernel has no ipip module")
    settings = load(manifests)
    if settings.cni == "calico" and settings.ipip_mode == "Never" and \
            settings.vxlan_mode == "Never":
        # Without encapsulation Calico routes with BGP, through BIRD: Calico's own BIRD fork
        # is no Go module, and Debian's refuses the configuration Calico's confd writes.
        raise LabUnavailable(f"{shown(settings.pin_path)} asks for a pool without "
                             "encapsulation (BGP): that needs Calico's BIRD, which the native "
                             "lab cannot run here; the netns replica runs it with Debian's BIRD")
    instance = name or settings.cluster
    if reuse_only:
        return attach(instance)
    preflight(settings.cni)
    show = progress or _progress()
    nodes.sweep()
    state = nodes.read_json(_state_path(instance))
    if state.get("owner") and not left_by_dead_process(str(state["owner"])):
        # Only `labkit up` registers a lab under its name, and only once it is ready: one
        # being brought up is another command's, never ours to tear down.
        if state.get("ready"):
            show(f"reusing the native lab {instance}")
            return attach(instance)
        raise LabUnavailable(f"the native lab {instance!r} is being brought up by another "
                             f"`labkit up` (pid {state['owner']})",
                             hint="wait for it, or `labkit down --lab native`")
    timings: dict[str, float] = {}
    t0 = mark = time.monotonic()

    def phase(what: str) -> None:
        nonlocal mark
        now = time.monotonic()
        timings[what] = round(now - mark, 2)
        mark = now
        show(f"{what} ({timings[what]:.1f}s)")

    ips = _node_ips(settings)
    lab, owner, port = _start_owner(instance, settings, ips, detached)
    try:
        phase(f"nodes up ({', '.join(settings.node_names)})")
        bringup.preload(lab, settings, show,
                        flannel.IMAGES if settings.cni == "flannel" else bringup.IMAGES)
        phase("images in containerd")
        bringup.boot(lab, settings, ips)
        phase("containerd and kubelet started")
        bringup.kubeadm_init(lab, settings)
        phase("kubeadm init")
        bringup.wait_for_signature(lab, settings)
        phase("bootstrap token signed (kube-controller-manager)")
        bringup.join(lab, settings)
        phase("kubeadm join, the workers at once")
        extra: dict[str, Any] = {}
        if settings.cni == "flannel":
            flannel.install(lab, settings, show)
            phase("bridge copied, kube-flannel.yml applied")
        else:
            bringup.calico(lab, settings, show)
            extra["calicoctl_get_ippool"] = bringup.vxlan_always(lab, settings).strip()
            phase("Calico applied, pool VXLAN Always")
        bringup.wait_ready(lab, settings, show, ready_timeout, app=False)
        phase(f"{'Flannel' if settings.cni == 'flannel' else 'Calico'}, CoreDNS and the "
              "nodes Ready")
        # After the nodes are Ready, as the kind lab does: pods scheduled while workers are
        # NotReady would all land on the control plane.
        bringup.deployment(lab, settings)
        bringup.wait_ready(lab, settings, show, ready_timeout)
        phase("the Deployment Ready")
        timings["total"] = round(time.monotonic() - t0, 2)
        extra.update({"instance": instance, "owner": owner, "folder": str(lab.folder),
                      "apiserver": _server(port), "timings": timings})
        found = _gather(lab, settings, extra)
    except BaseException as exc:
        if not detached:
            nodes.destroy(lab)
        elif isinstance(exc, bringup.Step):
            raise LabBuildFailed(f"{exc}\n  the lab is left up for a look; `labkit down "
                                 "--lab native` removes it") from exc
        # The machine can run it (preflight said so): a step that fails is a failure,
        # never a reason to skip.
        if isinstance(exc, bringup.Step):
            raise LabBuildFailed(str(exc)) from exc
        raise
    if detached:  # a lab a build or a test owns is theirs alone: not for others to reuse
        _state_path(instance).write_text(json.dumps({
            "folder": str(lab.folder), "owner": owner, "ready": True, "instance": instance,
            "manifests": str(settings.directory), "timings": timings, "apiserver_port": port}))
    return NativeBackend(lab, settings, found, owned=not detached)


def _gather(lab: Lab, settings: Settings, extra: dict[str, Any]) -> dict[str, Any]:
    gather = flannel.gather if settings.cni == "flannel" else bringup.gather
    # The nodes run the host's containerd, runc, ip, ping and tcpdump (Debian's): the pages
    # name the versions that printed their outputs.
    return gather(lab, settings, {**extra, **runtime_versions(), "tools": tool_versions()})


def _server(port: int) -> str:
    """The API server as the host reaches it (kind's external kubeconfig's ``server``)."""
    return f"https://127.0.0.1:{port}"


def _ready_state(instance: str) -> dict[str, object]:
    """The state file of the ready lab ``instance``; :class:`LabUnavailable` if none is up."""
    if os.geteuid() != 0:
        raise LabUnavailable(ROOT_ONLY)
    state = nodes.read_json(_state_path(instance))
    owner = state.get("owner")
    if not owner or left_by_dead_process(str(owner)):
        raise LabUnavailable(f"no native lab {instance!r} is up",
                             hint="`labkit up --lab native` starts it")
    if not state.get("ready"):
        raise LabUnavailable(f"the native lab {instance!r} is still coming up (or its "
                             "`labkit up` was stopped)", hint="`labkit down --lab native`, then "
                             "`labkit up --lab native`")
    return state


def attach(instance: str) -> NativeBackend:
    """The native lab ``labkit up`` left running under ``instance``."""
    state = _ready_state(instance)
    settings = load(Path(str(state["manifests"])))
    lab = Lab(Path(str(state["folder"])))
    extra = {"instance": instance, "owner": state["owner"], "folder": str(lab.folder),
             "apiserver": _server(int(str(state.get("apiserver_port") or 0))),
             "timings": state.get("timings", {})}
    try:
        found = _gather(lab, settings, extra)
    except bringup.Step as exc:
        raise LabUnavailable(f"the native lab {instance!r} does not answer: {exc}") from exc
    return NativeBackend(lab, settings, found, owned=False)


def kubeconfig(manifests: Path | None = None, *, name: str | None = None) -> str:
    """What ``kind get kubeconfig`` prints, for the native lab ``labkit up`` left running as
    ``name`` (default: the cluster's name): kind's names, the API server on 127.0.0.1."""
    instance = name or load(manifests).cluster
    state = _ready_state(instance)
    port = int(str(state.get("apiserver_port") or 0))
    if not port:
        raise LabUnavailable(f"the native lab {instance!r} was started by a labkit that did not "
                             "publish its API server", hint="`labkit down --lab native --name "
                             f"{instance}`, then `labkit up --lab native`")
    return _kubeconfig(Lab(Path(str(state["folder"]))),
                       load(Path(str(state["manifests"]))), _server(port))


def _kubeconfig(lab: Lab, settings: Settings, server: str) -> str:
    """As kind does: admin.conf read on the control plane, renamed, pointed at ``server``."""
    control_plane = settings.node_names[0]
    rc, out, err = bringup.sh(lab, control_plane, f"cat {bringup.ADMIN}", timeout=HELPER_TIMEOUT)
    if rc != 0:
        raise LabUnavailable(f"cannot read {bringup.ADMIN} on {control_plane}: "
                             f"{err.strip() or f'exit {rc}'}")
    try:
        return kind_kubeconfig(out, settings.cluster, server)
    except KubeconfigError as exc:
        raise LabUnavailable(f"{bringup.ADMIN} on {control_plane}: {exc}") from exc


def down(instance: str | None = None) -> str:
    """Remove the lab ``instance`` (default: every lab `labkit up` started) and whatever dead
    ones left; never a lab a running build or test made for itself."""
    if os.geteuid() != 0:
        raise LabUnavailable(ROOT_ONLY)
    removed = []
    left: list[str] = []
    states = ([_state_path(instance)] if instance else
              sorted(scratch.system_tmp().glob("labkit-native-*.json")))
    for path in states:
        state = nodes.read_json(path)
        if state.get("folder"):
            left += nodes.destroy(Lab(Path(str(state["folder"]))))
            removed.append(str(state.get("instance") or path.stem))
        path.unlink(missing_ok=True)
    # A lab a running build or test made for itself is not `labkit up`'s to remove: it ends
    # with its maker. Only what dead ones left is swept.
    removed += nodes.sweep()
    if left:
        raise LabError(f"the native lab left: {', '.join(left)}")
    return (f"native lab removed: {', '.join(removed)}" if removed
            else "no native lab was up")
