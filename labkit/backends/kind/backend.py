# The kind lab: a real cluster (kind, Calico or Flannel, the seed's Deployment) as a Backend.
"""Bring up (or reuse) a lab's kind cluster and run commands in its nodes and pods.

:func:`start` does in Python what the seed's ``1-setup-env.sh`` does:
``kind create cluster`` with ``manifests/kind-cluster.yaml``; remove the
control-plane taint; apply Calico's official manifest (pinned by sha256,
cached on disk) with the pool of ``manifests/calico.yaml``; give the nodes
ping, tcpdump and net-tools; wait, on watches, until every node and pod is
Ready; apply the seed's Deployment and wait for it.  A healthy cluster of the
same name is reused as it is.  :func:`delete` and :func:`status` are what
``labkit down --lab kind`` and ``labkit status --lab kind`` call.

A Flannel lab (``manifests/flannel/``) is brought up the same way with
kube-flannel.yml (pinned in ``flannel.yaml``) instead of Calico, after the
``bridge`` plugin is copied onto every node: kind's node image deletes every
CNI plugin but host-local, ptp, portmap and loopback, and Flannel's CNI
plugin delegates to ``bridge``.

Commands in nodes go through ``docker exec``, commands in pods through the
API server's exec stream; :mod:`.commands` says how both are stopped.
The ``kubernetes`` package is imported here and in :mod:`.readiness` only, and
only when a kind lab is started, so ``import labkit`` works without it.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...model.errors import LabError, LabUnavailable, UnknownTarget
from ...model.output import DEFAULT_KEEP, Output, check_keep
from ..cluster import commands
from ..cluster.commands import Exec, FrameSource
from ..cluster.jobs import KILL_WAIT, JobBackend
from ..cluster.settings import (
    Settings,
    load,
)
from . import cluster, download
from .client import Api
from .cluster import Progress
from .provision import (
    READY_TIMEOUT,
    bridge_plugin,
    cni_objects,
    gather,
    prepare_nodes,
    problems_now,
    set_up,
    stderr_progress,
)

PodExec = Callable[[str, str, str, list[str]], FrameSource]
"""``pod_exec(namespace, pod, container, argv)`` opens an exec stream."""

# Run by a command's second exec: short, so a fixed timeout is enough.
HELPER_TIMEOUT = 15.0


@dataclass(frozen=True)
class Where:
    """Where a target's commands run: a node container, or a pod's container."""

    name: str
    prompt: str
    pod: bool
    namespace: str = ""
    container: str = ""


@dataclass
class KindBackend(JobBackend):
    """A kind cluster as a :class:`labkit.api.backend.Backend`.

    :meth:`close` detaches: the cluster stays up for the next build (creating
    one takes minutes); ``labkit down --lab kind`` deletes it.
    """

    settings: Settings
    _inventory: dict[str, Any]
    pod_exec: PodExec | None = None
    api: Api | None = None
    record: Path | None = None
    """A directory to write every pod exec's websocket messages to (see tests/samples/kind)."""
    name: str = "kind"
    _jobs: dict[str, Exec] = field(default_factory=dict)
    _session: str = field(default_factory=lambda: secrets.token_hex(4))
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _used: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._where = {n["name"]: Where(n["name"], n["prompt"], pod=False, container=n["name"])
                       for n in self._inventory["nodes"]}
        self._where.update({p["name"]: Where(p["name"], p["prompt"], pod=True,
                                             namespace=p["namespace"],
                                             container=self.settings.container)
                            for p in self._inventory["pods"]})

    # -- the Backend protocol -------------------------------------------------------------

    def inventory(self) -> dict[str, Any]:
        return self._inventory

    def close(self) -> None:
        """Kill what is still running, remove the pid files, and let the cluster be."""
        for job in list(self._jobs.values()):
            with contextlib.suppress(LabError):
                self._end(job, "KILL", 2.0)
        self._jobs.clear()
        for name in sorted(self._used):
            with contextlib.suppress(LabError):
                self._helper(name, ["/bin/sh", "-c", f"rm -f /tmp/labkit-{self._session}-*.pid"])
        self._used.clear()
        if self.api is not None:
            self.api.close()

    # -- plumbing -------------------------------------------------------------------------

    def _target(self, name: str) -> Where:
        where = self._where.get(name)
        if where is None:
            raise UnknownTarget(name, list(self._where))
        return where

    def _open(self, where: Where, job: Exec, argv: list[str]) -> None:
        if where.pod:
            if self.pod_exec is None:
                raise LabUnavailable("this kind lab has no API connection to exec in pods")
            job.extra["container"] = where.container
            commands.start_frames(job, self.pod_exec(where.namespace, where.name,
                                                     where.container, argv),
                                  self._record_path(job))
        else:
            commands.start_process(job, cluster.docker_exec_argv(where.container, argv))

    def _record_path(self, job: Exec) -> Path | None:
        if self.record is None:
            return None
        self.record.mkdir(parents=True, exist_ok=True)
        return self.record / f"{self._session}-{job.id}.json"

    def _launch(self, target: str, command: str, keep: int = DEFAULT_KEEP) -> Exec:
        where = self._target(target)
        with self._lock:
            number = next(self._ids)
            self._used.add(target)
        pidfile = f"/tmp/labkit-{self._session}-{number}.pid"
        job = Exec(id=str(number), target=target, prompt=where.prompt, command=command,
                  pidfile=pidfile, output=Output(check_keep(keep)))
        self._open(where, job, commands.command_argv(pidfile, command))
        return job

    def _helper(self, target: str, argv: list[str]) -> int | None:
        """Run a short command of labkit's own (not a reader's) and return its exit status."""
        where = self._target(target)
        job = Exec(id="helper", target=target, prompt=where.prompt, command=argv[-1], pidfile="")
        self._open(where, job, argv)
        if not job.wait(HELPER_TIMEOUT):
            job.abort()
            raise LabError(f"labkit's own `{argv[-1]}` in {target} did not finish in "
                           f"{HELPER_TIMEOUT:g}s")
        if job.error is not None:
            raise job.error
        return job.rc

    def _signal(self, job: Exec, name: str) -> None:
        """Send SIG``name`` to the job's process group through a second exec."""
        deadline = time.monotonic() + 3.0
        while True:
            rc = self._helper(job.target, commands.kill_argv(job.pidfile, name))
            # 3: no pid file yet (the first exec has not reached its first line): try again.
            if rc != 3 or job.done or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def _end(self, job: Exec, name: str, wait: float = KILL_WAIT) -> None:
        """Signal the job and wait for its stream to end; drop the stream if it does not."""
        if not job.done:
            with contextlib.suppress(LabError):
                self._signal(job, name)
        if not job.wait(wait):
            job.abort()
            job.wait(2.0)


# -- bringing the cluster up ------------------------------------------------------------------


def start(manifests: Path | None = None, *, progress: Progress | None = None,
          ready_timeout: float = READY_TIMEOUT, record: Path | None = None,
          detached: bool = False, encapsulation: str | None = None, reuse_only: bool = False,
          **options: Any) -> KindBackend:
    """Start the kind lab: reuse the cluster if it is healthy, else create and set it up.

    Everything that can fail without a cluster (no docker, no daemon, no kind,
    an unpinned or changed Calico manifest or kube-flannel.yml, no ``bridge``
    plugin to copy, no network) fails before one is created.  A failure after
    that leaves the cluster up and says so.

    ``detached`` is accepted for the CLI's sake and changes nothing: the cluster
    always outlives this process.  ``encapsulation``, if given, must be what
    the lab's ``calico.yaml`` asks for (the pool is set there, for both labs).
    With ``reuse_only`` (``labkit status``, ``labkit sh``) nothing is created or
    changed: a cluster that is not up and ready is an error.
    """
    if options:
        raise LabError(f"the kind lab takes no option {', '.join(sorted(options))}")
    del detached
    show = progress or stderr_progress()
    settings = load(manifests)
    if encapsulation is not None and encapsulation.upper() != settings.encapsulation:
        if settings.cni == "flannel":
            raise LabError(f"the Flannel lab runs vxlan ({settings.manifest.file}), "
                           f"not {encapsulation}")
        raise LabError(f"the kind lab runs the pool of {settings.manifest.file} "
                       f"({settings.encapsulation}), not {encapsulation}: change "
                       "pool.ipipMode and pool.vxlanMode there")
    if settings.cni == "flannel":
        bridge_plugin(settings)  # before a cluster exists, like every other missing piece
    cluster.preflight()
    name = settings.cluster
    exists = name in cluster.clusters()
    if reuse_only and not exists:
        raise LabUnavailable(f"no kind cluster {name!r} is up",
                             hint="`labkit up --lab kind` creates it")
    api: Api | None = None
    try:
        if exists:
            show(f"found kind cluster {name}; checking it")
            _check_nodes(settings)
            api = Api(cluster.kubeconfig(name))
            found = problems_now(api, settings)
            if not found:
                show(f"reusing kind cluster {name}")
                notes: dict[str, Any] = {"reused": True}
                if not reuse_only:  # a quick check when the tools are there; apt if not
                    missing = prepare_nodes(settings, show)
                    if missing:
                        notes["missing_tools"] = missing
                return _backend(api, settings, notes, record)
            if reuse_only:
                raise LabUnavailable(f"kind cluster {name!r} is not ready: "
                                     f"{'; '.join(found[:5])}",
                                     hint="`labkit up --lab kind` finishes setting it up")
            show(f"kind cluster {name} is not ready ({'; '.join(found[:3])}); setting it up")
        manifest = download.get(settings.manifest, progress=show)
        cni_objects(manifest, settings)  # fail before kind runs
        left_up = (f"kind cluster {name!r} is left up for a look (`docker exec -it "
                   f"{settings.node_names[0]} bash`); `labkit down --lab kind` deletes it, and "
                   "starting the lab again picks up where it stopped")
        try:
            if not exists:
                show(f"creating kind cluster {name} ({len(settings.node_names)} nodes, "
                     f"{settings.node_images[0]}); this takes a few minutes")
                cluster.create(name, settings.kind_config_path, show)
                api = Api(cluster.kubeconfig(name))
            assert api is not None
            notes = set_up(api, settings, manifest, show, ready_timeout)
            notes["reused"] = exists
            return _backend(api, settings, notes, record)
        except LabError as exc:
            if name not in cluster.existing_clusters():
                raise
            message = getattr(exc, "message", None) or str(exc)
            hints = [getattr(exc, "hint", ""), left_up]
            raise LabUnavailable(message, hint="; ".join(h for h in hints if h)) from exc
        except KeyboardInterrupt:
            show(f"interrupted: kind cluster {name!r} may be half set up; `labkit down --lab "
                 "kind` deletes it, starting the lab again picks up where it stopped")
            raise
    except BaseException:
        if api is not None:
            api.close()
        raise


def _check_nodes(settings: Settings) -> None:
    have = cluster.nodes(settings.cluster)
    if sorted(have) != sorted(settings.node_names):
        raise LabUnavailable(
            f"a kind cluster named {settings.cluster!r} exists with nodes {', '.join(have)}, "
            f"not the lab's {', '.join(settings.node_names)}",
            hint="it was made from another config: `labkit down --lab kind` deletes it "
                 f"(or `kind delete cluster --name {settings.cluster}`)",
        )


def _backend(api: Api, settings: Settings, notes: dict[str, Any],
             record: Path | None) -> KindBackend:
    found = gather(api, settings, notes)
    if len(found["pods"]) < settings.replicas:
        raise LabUnavailable(f"only {len(found['pods'])} of the Deployment's {settings.replicas} "
                             "pods are running with an address")
    return KindBackend(settings, found, pod_exec=api.pod_exec, api=api, record=record)
