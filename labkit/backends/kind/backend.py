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
import importlib
import itertools
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ...model.errors import CommandTimeout, LabError, LabUnavailable, UnknownTarget
from ...model.result import Result
from . import cluster, commands, download, inventory, readiness
from .cluster import Progress
from .commands import Exec, FrameSource
from .settings import (
    CALICO_GROUP,
    FLANNEL_DAEMONSET,
    FLANNEL_NAMESPACE,
    Settings,
    calico_objects,
    flannel_objects,
    load,
)

PodExec = Callable[[str, str, str, list[str]], FrameSource]
"""``pod_exec(namespace, pod, container, argv)`` opens an exec stream."""

BRIDGE_ON_NODE = "/opt/cni/bin/bridge"
"""Where the kubelet's CNI_PATH finds plugins on a kind node."""
BRIDGE_PACKAGE = "containernetworking-plugins"
READY_TIMEOUT = 900.0
"""Seconds to wait for the CNI and the Deployment: first pulls of the images take minutes."""
# Run by a command's second exec: short, so a fixed timeout is enough.
HELPER_TIMEOUT = 15.0
# After a kill, how long to wait for the exit status before dropping the stream.
KILL_WAIT = commands.KILL_GRACE
KUBECTL_SETUP = "mkdir -p /root/.kube && cp /etc/kubernetes/admin.conf /root/.kube/config"
CALICOCTL_CONFIG = """apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata:
spec:
  datastoreType: kubernetes
  kubeconfig: /etc/kubernetes/admin.conf
"""


def client(module: str) -> Any:
    """A module of the kubernetes client, imported now (the client is only needed here)."""
    try:
        return importlib.import_module(f"kubernetes.{module}")
    except ImportError as exc:
        raise LabUnavailable(
            "the kind lab needs the `kubernetes` Python client, which is not installed",
            hint="pip install 'labkit[kind]' (or pip install kubernetes)") from exc


def stderr_progress() -> Progress:
    """Progress lines on stderr with the time since start: creating a cluster takes minutes."""
    t0 = time.monotonic()

    def show(message: str) -> None:
        elapsed = int(time.monotonic() - t0)
        print(f"[kind {elapsed // 60:d}:{elapsed % 60:02d}] {message}", file=sys.stderr,
              flush=True)

    return show


@contextlib.contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Turn the client's errors into one-line :class:`LabUnavailable` messages about ``what``."""
    ApiException = client("client.exceptions").ApiException
    DynamicApiError = client("dynamic.exceptions").DynamicApiError
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        raise LabUnavailable(f"{what}: the API server answered {exc.status} {exc.reason}"
                             f"{_status_message(exc.body)}") from exc
    except DynamicApiError as exc:
        raise LabUnavailable(f"{what}: the API server answered {exc.status} "
                             f"{exc.reason}{_status_message(exc.body)}") from exc
    except (HTTPError, OSError) as exc:
        raise LabUnavailable(f"{what}: cannot reach the cluster's API server ({exc})",
                             hint="is the cluster up? `labkit status --lab kind`") from exc


def _status_message(body: Any) -> str:
    try:
        message = yaml.safe_load(body).get("message") if body else None
    except (yaml.YAMLError, AttributeError):
        message = None
    return f": {message}" if message else ""


class _Websocket:
    """An exec websocket of the kubernetes client as a :class:`~.commands.FrameSource`."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.protocol = str(getattr(client, "subprotocol", "") or "")

    def recv(self) -> tuple[int, bytes]:
        opcode, frame = self._client.sock.recv_data_frame(True)
        return int(opcode), bytes(frame.data or b"")

    def abort(self) -> None:
        sock = self._client.sock
        if sock is not None:
            sock.abort()  # wakes a thread blocked in recv
            sock.shutdown()


class Api:
    """The parts of the Kubernetes API the kind lab uses, with JSON (dicts) in and out."""

    def __init__(self, kubeconfig: str) -> None:
        config, models = client("config"), client("client")
        try:
            self.client = config.new_client_from_config_dict(yaml.safe_load(kubeconfig))
        except (config.ConfigException, yaml.YAMLError, TypeError, ValueError) as exc:
            raise LabUnavailable(f"kind's kubeconfig for the cluster is not usable ({exc})",
                                 hint="`labkit down --lab kind` deletes the cluster; then "
                                      "start again") from exc
        self.core = models.CoreV1Api(self.client)
        self.apps = models.AppsV1Api(self.client)
        self.custom = models.CustomObjectsApi(self.client)
        # The client's stream() swaps the ApiClient's transport while it connects: one at a time.
        self._connecting = threading.Lock()

    def to_dict(self, obj: Any) -> dict[str, Any]:
        data: dict[str, Any] = self.client.sanitize_for_serialization(obj)
        return data

    def items(self, listing: Any) -> list[dict[str, Any]]:
        return list(self.to_dict(listing).get("items", []))

    def pod_exec(self, namespace: str, pod: str, container: str,
                 argv: list[str]) -> FrameSource:
        stream = client("stream").stream
        with self._connecting, api_errors(f"cannot exec in pod {namespace}/{pod}"):
            try:
                ws = stream(self.core.connect_get_namespaced_pod_exec, pod, namespace,
                            command=argv, container=container, stdin=False, stdout=True,
                            stderr=True, tty=False, _preload_content=False, binary=True)
            except Exception as exc:
                if type(exc).__name__ == "ApiException":
                    raise
                raise LabUnavailable(f"cannot exec in pod {namespace}/{pod}: {exc}") from exc
        return _Websocket(ws)

    def watch(self) -> Any:
        return client("watch").Watch()

    def wait(self, lister: Callable[..., Any], check: readiness.Check, *, what: str,
             timeout: float, progress: Progress,
             expect: Callable[[list[dict[str, Any]]], list[str]] | None = None,
             **kwargs: Any) -> list[dict[str, Any]]:
        with api_errors(f"while waiting for {what}"):
            return readiness.wait(lister, check, what=what, timeout=timeout,
                                  to_dict=self.to_dict, watch=self.watch, progress=progress,
                                  expect=expect, **kwargs)

    def apply(self, objects: list[dict[str, Any]], progress: Progress) -> None:
        """Server-side apply, so that applying again to a cluster that has them changes nothing."""
        with api_errors("cannot apply the manifests"):
            dynamic = client("dynamic").DynamicClient(self.client)
            for obj in objects:
                kind, name = obj["kind"], obj["metadata"]["name"]
                with api_errors(f"cannot apply {kind} {name}"):
                    resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=kind)
                    resource.server_side_apply(body=obj, field_manager="labkit",
                                               force_conflicts=True)
            progress(f"applied {len(objects)} objects")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


@dataclass(frozen=True)
class Where:
    """Where a target's commands run: a node container, or a pod's container."""

    name: str
    prompt: str
    pod: bool
    namespace: str = ""
    container: str = ""


@dataclass
class KindBackend:
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

    def run(self, target: str, command: str, timeout: float) -> Result:
        job = self._launch(target, command)
        if not job.wait(timeout):
            job.timed_out = True
            self._end(job, "KILL", KILL_WAIT)
            raise CommandTimeout(job.result(), timeout)
        if job.error is not None:
            raise job.error
        return job.result()

    def start(self, target: str, command: str, ready: str | None, timeout: float) -> str:
        job = self._launch(target, command)
        if ready and not job.wait_for(ready, timeout):
            if not job.done:
                job.timed_out = True
                self._end(job, "KILL", KILL_WAIT)
                raise CommandTimeout(job.result(), timeout)
            if job.error is not None:
                raise job.error
            result = job.result()
            raise LabError(f"`{command}` on {target} exited with {result.rc} before printing "
                           f"{ready!r}\n  output: {result.output.strip() or '(none)'}")
        self._jobs[job.id] = job
        return job.id

    def stop(self, handle: str, signal: str, timeout: float) -> Result:
        name = commands.signal_name(signal) if signal else ""
        job = self._jobs.pop(handle, None)
        if job is None:
            raise LabError(f"no background command with handle {handle!r} (already stopped?)")
        if name and not job.done:
            self._signal(job, name)
        if not job.wait(timeout):
            # As in the netns lab: killed after a signal's grace, it was stopped; still running
            # when it was only waited for, it took too long (Background.wait raises for that).
            job.timed_out = not name
            self._end(job, "KILL", KILL_WAIT)
        if job.error is not None and job.rc is None and not job.chunks:
            raise job.error
        return job.result()

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

    def _launch(self, target: str, command: str) -> Exec:
        where = self._target(target)
        with self._lock:
            number = next(self._ids)
            self._used.add(target)
        pidfile = f"/tmp/labkit-{self._session}-{number}.pid"
        job = Exec(id=str(number), target=target, prompt=where.prompt, command=command,
                  pidfile=pidfile)
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

    def _end(self, job: Exec, name: str, wait: float) -> None:
        """Signal the job and wait for its stream to end; drop the stream if it does not."""
        if not job.done:
            with contextlib.suppress(LabError):
                self._signal(job, name)
        if not job.wait(wait):
            job.abort()
            job.wait(2.0)


# -- bringing the cluster up ------------------------------------------------------------------


def _expected_nodes(settings: Settings) -> Callable[[list[dict[str, Any]]], list[str]]:
    return lambda nodes: readiness.missing(nodes, settings.node_names, "node")


def _app_pods(settings: Settings) -> Callable[[list[dict[str, Any]]], list[str]]:
    def expect(pods: list[dict[str, Any]]) -> list[str]:
        live = [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]
        if len(live) < settings.replicas:
            return [f"{settings.replicas - len(live)} of the Deployment's {settings.replicas} "
                    "pods not created yet"]
        return []

    return expect


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def problems_now(api: Api, settings: Settings) -> list[str]:
    """What keeps an existing cluster from being the seed's, without waiting (for reuse)."""
    with api_errors("cannot read the cluster's state"):
        nodes = api.items(api.core.list_node())
        pods = api.items(api.core.list_pod_for_all_namespaces())
        try:
            deployment = api.to_dict(api.apps.read_namespaced_deployment(
                settings.app, settings.namespace))
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
            return [f"deployment {settings.namespace}/{settings.app} not there"]
    found = readiness.problems(nodes, readiness.node_problem)
    found += readiness.missing(nodes, settings.node_names, "node")
    found += readiness.problems(pods, readiness.pod_problem)
    agent, cni = (("kube-flannel-ds-", "Flannel") if settings.cni == "flannel"
                  else ("calico-node-", "Calico"))
    if not any(p["metadata"]["name"].startswith(agent) for p in pods):
        found.append(f"{cni} is not installed")
    problem = readiness.deployment_problem(deployment)
    return found + ([problem] if problem else [])


def remove_control_plane_taint(api: Api, progress: Progress) -> None:
    """What the seed's ``kubectl taint nodes ... node-role.kubernetes.io/master:NoSchedule-`` does.

    Kubernetes 1.23 taints the control-plane with ``.../master``; 1.24+ with
    ``.../control-plane`` too: both go, so pods may run on every node.
    """
    keys = {"node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane"}
    with api_errors("cannot remove the control-plane taint"):
        for node in api.items(api.core.list_node()):
            taints = node.get("spec", {}).get("taints") or []
            kept = [t for t in taints if not (t.get("key") in keys
                                              and t.get("effect") == "NoSchedule")]
            if len(kept) != len(taints):
                api.core.patch_node(node["metadata"]["name"],
                                    [{"op": "replace", "path": "/spec/taints", "value": kept}],
                                    _content_type="application/json-patch+json")
                progress(f"removed the NoSchedule taint from {node['metadata']['name']}")


def prepare_nodes(settings: Settings, progress: Progress) -> dict[str, str]:
    """Tools on every node (in parallel: apt takes a while), kubectl config on the control-plane.

    Returns the problems, by node; a node without tcpdump is worth a warning, not a failure:
    the command that needs it will say it is missing.
    """
    with ThreadPoolExecutor(max_workers=len(settings.node_names)) as pool:
        outcomes = dict(zip(settings.node_names,
                            pool.map(cluster.install_tools, settings.node_names), strict=True))
    problems = {node: why for node, why in outcomes.items() if why}
    for why in problems.values():
        progress(f"warning: {why}")
    control_plane = settings.node_names[0]
    code, _, err = cluster.node_sh(control_plane, KUBECTL_SETUP)
    if code != 0:
        progress(f"warning: kubectl on {control_plane} will need --kubeconfig "
                 f"/etc/kubernetes/admin.conf ({err.strip()})")
    return problems


def install_calicoctl(settings: Settings, progress: Progress) -> str:
    """calicoctl on the control-plane, if calico.yaml pins one for its architecture."""
    control_plane = settings.node_names[0]
    arch = cluster.node_architecture(control_plane)
    pinned = settings.calicoctl.get(arch)
    if pinned is None or pinned.sha256 is None:
        progress(f"calicoctl not installed: manifests/calico.yaml pins no calicoctl for {arch} "
                 "(`labkit pin calicoctl` does)")
        return "not installed (not pinned)"
    data = download.get(pinned, progress=progress)
    path = download.cached_path(pinned)
    if not path.exists():
        path.write_bytes(data)
    cluster.copy_to_node(control_plane, path, "/usr/local/bin/calicoctl")
    script = (f"chmod 755 /usr/local/bin/calicoctl && mkdir -p /etc/calico && "
              f"cat > /etc/calico/calicoctl.cfg <<'EOF'\n{CALICOCTL_CONFIG}EOF")
    code, _, err = cluster.node_sh(control_plane, script)
    if code != 0:
        raise LabUnavailable(f"cannot set up calicoctl on {control_plane}: {err.strip()}")
    return f"{settings.calico_version} ({arch})"


def bridge_plugin(settings: Settings) -> Path:
    """The ``bridge`` binary flannel.yaml names; a clear error, naming the package, if missing."""
    assert settings.bridge is not None
    if not settings.bridge.is_file():
        raise LabUnavailable(
            f"the Flannel lab copies the `bridge` CNI plugin onto every kind node, and "
            f"{settings.bridge} (`bridge` in {settings.manifest.file}) is not there",
            hint=f"install the Debian package {BRIDGE_PACKAGE} (apt-get install "
                 f"{BRIDGE_PACKAGE}), or point `bridge` at another copy of the plugin")
    return settings.bridge


def install_bridge(settings: Settings, progress: Progress) -> None:
    """``docker cp`` the bridge plugin into every node's /opt/cni/bin (see kind's docs)."""
    source = bridge_plugin(settings)
    for node in settings.node_names:
        cluster.copy_to_node(node, source, BRIDGE_ON_NODE)
    progress(f"copied {source} to {BRIDGE_ON_NODE} on {', '.join(settings.node_names)}")


def _install_cni(api: Api, settings: Settings, manifest: bytes, progress: Progress) -> None:
    """Apply the lab's CNI and wait for its DaemonSet (before the nodes can be Ready)."""
    text = manifest.decode("utf-8", "replace")
    if settings.cni == "flannel":
        install_bridge(settings, progress)
        progress(f"installing Flannel {settings.flannel_version} (vxlan, {settings.network})")
        api.apply(flannel_objects(text, settings), progress)
        return
    progress(f"installing Calico {settings.calico_version} (IPIP {settings.ipip_mode}, "
             f"VXLAN {settings.vxlan_mode})")
    api.apply(calico_objects(text, settings), progress)


def _flannel_daemonset(daemonsets: list[dict[str, Any]]) -> list[str]:
    names = [d.get("metadata", {}).get("name") for d in daemonsets]
    return [] if FLANNEL_DAEMONSET in names else [
        f"DaemonSet {FLANNEL_NAMESPACE}/{FLANNEL_DAEMONSET} not created yet"]


def set_up(api: Api, settings: Settings, manifest: bytes, progress: Progress,
           timeout: float) -> dict[str, Any]:
    """Steps 2-4 of the seed's setup script, then its Deployment; each safe to repeat."""
    notes: dict[str, Any] = {}
    remove_control_plane_taint(api, progress)
    _install_cni(api, settings, manifest, progress)
    progress("installing net-tools, tcpdump and ping on the nodes")
    missing = prepare_nodes(settings, progress)
    if missing:
        notes["missing_tools"] = missing
    if settings.cni == "flannel":
        api.wait(api.apps.list_namespaced_daemon_set, readiness.daemonset_problem,
                 what=f"the DaemonSet {FLANNEL_NAMESPACE}/{FLANNEL_DAEMONSET}", timeout=timeout,
                 progress=progress, expect=_flannel_daemonset, namespace=FLANNEL_NAMESPACE)
        api.wait(api.core.list_namespaced_pod, readiness.pod_problem,
                 what="the kube-flannel pods", timeout=timeout, progress=progress,
                 namespace=FLANNEL_NAMESPACE)
    else:
        notes["calicoctl"] = install_calicoctl(settings, progress)
    return _wait_and_deploy(api, settings, progress, timeout, notes)


def _wait_and_deploy(api: Api, settings: Settings, progress: Progress, timeout: float,
                     notes: dict[str, Any]) -> dict[str, Any]:
    """Nodes, DaemonSets, Deployments and pods Ready; then the seed's Deployment and its pods."""
    agents = "kube-flannel-ds" if settings.cni == "flannel" else "calico-node"
    controllers = "coredns" if settings.cni == "flannel" else "calico-kube-controllers, coredns"
    api.wait(api.core.list_node, readiness.node_problem, what="the nodes to be Ready",
             timeout=timeout, progress=progress, expect=_expected_nodes(settings))
    api.wait(api.apps.list_daemon_set_for_all_namespaces, readiness.daemonset_problem,
             what=f"the DaemonSets ({agents})", timeout=timeout, progress=progress)
    api.wait(api.apps.list_deployment_for_all_namespaces, readiness.deployment_problem,
             what=f"the Deployments ({controllers})", timeout=timeout, progress=progress)
    api.wait(api.core.list_pod_for_all_namespaces, readiness.pod_problem,
             what="every pod to be Ready", timeout=timeout, progress=progress)
    progress(f"applying the seed's Deployment {settings.namespace}/{settings.app}")
    api.apply([settings.deployment], progress)
    api.wait(api.apps.list_namespaced_deployment, readiness.deployment_problem,
             what=f"deployment {settings.app}", timeout=timeout, progress=progress,
             namespace=settings.namespace, field_selector=f"metadata.name={settings.app}")
    api.wait(api.core.list_namespaced_pod, readiness.pod_problem,
             what=f"the pods of {settings.app}", timeout=timeout, progress=progress,
             expect=_app_pods(settings), namespace=settings.namespace,
             label_selector=_selector(settings.app_labels))
    return notes


def gather(api: Api, settings: Settings, extra: dict[str, Any]) -> dict[str, Any]:
    """The inventory of a ready cluster."""
    if settings.cni == "flannel":
        return gather_flannel(api, settings, extra)
    with api_errors("cannot read the cluster's nodes and pods"):
        nodes = api.items(api.core.list_node())
        # Every pod with an address of its own: the Deployment's and the cluster's (coredns...).
        pods = api.items(api.core.list_pod_for_all_namespaces())
        try:
            affinities = api.to_dict(api.custom.list_cluster_custom_object(
                CALICO_GROUP, "v1", "blockaffinities")).get("items", [])
            pool = api.to_dict(api.custom.get_cluster_custom_object(
                CALICO_GROUP, "v1", "ippools", "default-ipv4-ippool"))
        except Exception as exc:
            if getattr(exc, "status", None) not in (403, 404):
                raise
            affinities, pool = [], None  # fall back on the tunnel address and the manifests
        daemonset = api.to_dict(api.apps.read_namespaced_daemon_set("calico-node",
                                                                    "kube-system"))
    images = [c.get("image", "") for c in daemonset["spec"]["template"]["spec"]["containers"]]
    version = next((i.rsplit(":", 1)[-1] for i in images if "calico/node" in i),
                   settings.calico_version)
    links: dict[str, str] = {}
    for node in settings.node_names:
        code, out, _ = cluster.node_sh(node, "ip -o link show", timeout=30)
        if code == 0:
            links.update(inventory.link_netns(out))
    info = {"calico": version, "kind": cluster.kind_version(), "started": time.time(), **extra}
    return inventory.build(settings, nodes=nodes, pods=pods, affinities=affinities, pool=pool,
                           links=links, info=info)


def gather_flannel(api: Api, settings: Settings, extra: dict[str, Any]) -> dict[str, Any]:
    """A ready Flannel cluster's inventory: podCIDRs from the API, veths from the nodes."""
    with api_errors("cannot read the cluster's nodes and pods"):
        nodes = api.items(api.core.list_node())
        pods = api.items(api.core.list_pod_for_all_namespaces())
        daemonset = api.to_dict(api.apps.read_namespaced_daemon_set(FLANNEL_DAEMONSET,
                                                                    FLANNEL_NAMESPACE))
    images = [c.get("image", "") for c in daemonset["spec"]["template"]["spec"]["containers"]]
    version = next((i.rsplit(":", 1)[-1] for i in images if "flannel/flannel:" in i),
                   settings.flannel_version)
    links: dict[str, tuple[str, str]] = {}
    for node in settings.node_names:
        code, out, _ = cluster.node_sh(node, inventory.FLANNEL_LINKS_SCRIPT, timeout=30)
        if code == 0:
            links.update(inventory.flannel_links(out))
    info = {"flannel": version, "kind": cluster.kind_version(), "started": time.time(), **extra}
    return inventory.build_flannel(settings, nodes=nodes, pods=pods, links=links, info=info)


def cni_objects(manifest: bytes, settings: Settings) -> list[dict[str, Any]]:
    """The lab's CNI install (Calico's manifest or kube-flannel.yml), checked."""
    text = manifest.decode("utf-8", "replace")
    if settings.cni == "flannel":
        return flannel_objects(text, settings)
    return calico_objects(text, settings)


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
    ``manifests/calico.yaml`` asks for (the pool is set there, for both labs).
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
        raise LabError(f"the kind lab runs the pool of manifests/calico.yaml "
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


# -- the CLI's other verbs ------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterStatus:
    """What ``labkit status --lab kind`` prints."""

    cluster: str
    up: bool
    nodes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        if not self.up:
            return f"kind cluster {self.cluster}: not up (`labkit up --lab kind` creates it)"
        state = "ready" if not self.problems else "not ready: " + "; ".join(self.problems[:5])
        return f"kind cluster {self.cluster} ({', '.join(self.nodes)}): {state}"


def status(manifests: Path | None = None) -> ClusterStatus:
    """Whether the lab's kind cluster exists and is ready; never changes anything."""
    settings = load(manifests)
    cluster.preflight()
    name = settings.cluster
    if name not in cluster.clusters():
        return ClusterStatus(name, up=False)
    nodes = tuple(cluster.nodes(name))
    api = Api(cluster.kubeconfig(name))
    try:
        return ClusterStatus(name, up=True, nodes=nodes,
                             problems=tuple(problems_now(api, settings)))
    finally:
        api.close()


def delete(name: str | None = None, manifests: Path | None = None, *,
           progress: Progress | None = None) -> bool:
    """Delete the lab's kind cluster (``name`` defaults to the manifests'); ``False`` if none."""
    cluster_name = name or load(manifests).cluster
    cluster.preflight()
    if cluster_name not in cluster.clusters():
        return False
    (progress or stderr_progress())(f"deleting kind cluster {cluster_name}")
    cluster.delete(cluster_name)
    return True


def pin(what: str = "manifest", manifests: Path | None = None, *,
        arch: str | None = None, fetch: download.Fetch = download.fetch_url) -> str:
    """Download and record a sha256: ``manifest`` (the lab's CNI install), ``calicoctl``, or
    ``flannel`` (kube-flannel.yml, into ``manifests/flannel/flannel.yaml``)."""
    from ...model.topology import default_manifests

    manifests = manifests or default_manifests()
    if what == "flannel":
        from ...model import labs

        folder = manifests if labs.cni(manifests) == "flannel" else manifests / "flannel"
        flannel = load(folder)
        return download.pin(flannel.manifest, flannel.pin_path, fetch=fetch)
    settings = load(manifests)
    if what == "manifest" and settings.cni == "flannel":
        return download.pin(settings.manifest, settings.pin_path, fetch=fetch)
    if what == "manifest":
        target = settings.manifest
    elif what == "calicoctl":
        if not settings.calicoctl:
            raise LabError("manifests/calico.yaml has no `calicoctl` entry to pin")
        chosen = arch or "amd64"
        if chosen not in settings.calicoctl:
            raise LabError(f"manifests/calico.yaml lists calicoctl for "
                           f"{', '.join(settings.calicoctl)}, not {chosen}")
        target = settings.calicoctl[chosen]
    else:
        raise LabError(f"nothing called {what!r} to pin: choose manifest, calicoctl or "
                       "flannel")
    return download.pin(target, manifests / "calico.yaml", fetch=fetch)
