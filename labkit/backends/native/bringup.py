# Bringing the seed's cluster up in a native lab's nodes, as kind and 1-setup-env.sh do.
"""containerd, images, kubelet, ``kubeadm init`` and joins, then the seed's setup script.

Every step runs in a node as ``docker exec`` would (:func:`labkit.backends.native.nodes.
node_argv`); ``kubectl`` and ``calicoctl`` run in the control-plane node with
``/etc/kubernetes/admin.conf``, so this backend needs no Python client.

What differs from the seed's cluster on this machine, and why (also in the lab's
``info["notes"]``, for a page to print):

- Calico is v3.23.2, the nearest release the Go module proxy serves to the seed's v3.23.5.
- The pool is VXLAN, not IPIP: this kernel has no ``ipip`` module, and Calico's confd
  writes a BIRD configuration (``krt_tunnel``) only Calico's own BIRD accepts, not
  Debian's.  So the cluster runs Calico's own VXLAN manifest (``calico_backend: vxlan``,
  no BIRD), and the pool is set to ``vxlanMode: Always`` with ``calicoctl``, so that
  cross-node traffic is VXLAN as in the replica.
- kind's local-path-provisioner is left out.  kind v0.12.0 runs v0.0.14, which the proxy does
  not serve; it serves v0.0.19, v0.0.30, v0.0.33 and v0.0.37 (``go list -m -versions`` names
  only v0.0.30), and none starts with kind's manifest: since v0.0.18 the provisioner reads
  ``helperPod.yaml`` from its ConfigMap through the API at start and exits without it, and
  kind's ConfigMap has only ``config.json`` while kind's ClusterRole may not read
  ``configmaps``; since v0.0.15 it also provisions with the ``setup`` and ``teardown``
  scripts of that ConfigMap, and with kind's ``--helper-image`` (debian-base), which is no
  part here.  Running it would mean changing three of the manifest's objects, not one.
- The Deployment's image (``burlyluo/nettool``) is a stand-in built by ``labkit parts``, and
  its pods are told ``imagePullPolicy: IfNotPresent``: there is no registry to pull from.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ... import parts
from ...model.errors import LabUnavailable
from ...model.leftovers import left_by_dead_process
from ..cluster import inventory, kubeadm, readiness
from ..cluster.settings import CALICO_GROUP, Settings
from .nodes import Lab, node_argv

Progress = Callable[[str], None]
ADMIN = "/etc/kubernetes/admin.conf"
KUBECTL_ENV = {"KUBECONFIG": ADMIN, "DATASTORE_TYPE": "kubernetes"}
IMAGES = ("pause", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
          "kube-proxy", "coredns", "calico-node", "calico-cni", "calico-kube-controllers",
          "nettool")
"""The image parts every node's containerd holds (``image-NAME``)."""
CALICO_MANIFEST = "calico-vxlan.yaml"
POOL = "default-ipv4-ippool"
READY_TIMEOUT = 300.0
SEED_WAIT = 100
"""The seed's ``kubectl wait --timeout=100s``."""
NO_LOCAL_PATH = (
    "no local-path-provisioner: kind v0.12.0's v0.0.14 is not served by the Go module proxy, "
    "and every version it serves (v0.0.19, v0.0.30, v0.0.33, v0.0.37) exits at start with "
    "kind's manifest: it reads helperPod.yaml from its ConfigMap, which kind's has not and "
    "kind's ClusterRole may not read")
"""Why the native lab runs without kind's storage provisioner (both clusters' notes)."""
NOTES = [
    "Calico v3.23.2: the nearest release the Go module proxy serves to the seed's v3.23.5",
    "pool VXLAN Always, not IPIP: this kernel has no ipip module, and Calico's confd writes a "
    "BIRD configuration only Calico's own BIRD accepts, so the cluster runs Calico's VXLAN "
    "manifest (calico_backend: vxlan, no BIRD) and calicoctl sets vxlanMode: Always",
    NO_LOCAL_PATH,
    "the Deployment's image is labkit's stand-in for burlyluo/nettool, with imagePullPolicy "
    "IfNotPresent: there is no registry",
]


class Step(Exception):
    """A bring-up step failed; the message says which and shows its output."""


def sh(lab: Lab, node: str, script: str, *, timeout: float = 60.0,
       env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``script`` in ``node`` through ``/bin/sh -c``; (rc, stdout, stderr)."""
    try:
        done = subprocess.run(node_argv(lab, node, ["/bin/sh", "-c", script], env),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return 124, str(exc.stdout or ""), f"timed out after {timeout:g}s"
    return done.returncode, done.stdout, done.stderr


def must(lab: Lab, node: str, script: str, what: str, **kwargs: Any) -> str:
    rc, out, err = sh(lab, node, script, **kwargs)
    if rc != 0:
        tail = "\n".join((err or out).strip().splitlines()[-15:])
        raise Step(f"{what} failed on {node} (exit {rc}):\n{tail}")
    return out


def kubectl(lab: Lab, settings: Settings, args: str, **kwargs: Any) -> tuple[int, str, str]:
    return sh(lab, settings.node_names[0], f"kubectl {args}", env=KUBECTL_ENV, **kwargs)


def kubectl_json(lab: Lab, settings: Settings, args: str) -> dict[str, Any]:
    rc, out, err = kubectl(lab, settings, f"{args} -o json", timeout=60)
    if rc != 0:
        raise Step(f"kubectl {args}: {err.strip()}")
    data = json.loads(out)
    return data if isinstance(data, dict) else {}


# -- images ----------------------------------------------------------------------------------


def image_archives(images: tuple[str, ...] = IMAGES) -> dict[str, Path]:
    """Each image part's OCI archive, by part name."""
    return {f"image-{name}": parts.path(f"image-{name}") / "image.tar" for name in images}


def containerd_cache(archives: dict[str, Path]) -> Path:
    """Where the containerd root preloaded with exactly these images is kept."""
    digest = hashlib.sha256()
    for name, tar in sorted(archives.items()):
        digest.update(name.encode() + b"\0" + (tar.parent / "image.json").read_bytes())
    return parts.root().parent / "native" / f"containerd-{digest.hexdigest()[:16]}"


def _start_containerd(lab: Lab, node: str) -> None:
    must(lab, node, (
        "mkdir -p /var/log/labkit /run/labkit && "
        "setsid containerd </dev/null >>/var/log/labkit/containerd.log 2>&1 & "
        "echo $! > /run/labkit/containerd.pid; "
        # `ctr version` blocks for seconds while the socket is missing: test the socket first
        "for i in $(seq 500); do [ -S /run/containerd/containerd.sock ] && "
        "ctr version >/dev/null 2>&1 && exit 0; sleep 0.02; done; "
        "tail -5 /var/log/labkit/containerd.log; exit 1"), "starting containerd")


def _stop_containerd(lab: Lab, node: str) -> None:
    must(lab, node, (
        "p=$(cat /run/labkit/containerd.pid); kill -TERM $p; "
        "for i in $(seq 250); do kill -0 $p 2>/dev/null || exit 0; sleep 0.02; done; exit 1"),
        "stopping containerd")


def preload(lab: Lab, settings: Settings, progress: Progress,
            images: tuple[str, ...] = IMAGES) -> None:
    """Give every node's containerd the images, as kind bakes them into its node image.

    The first time, the control plane's containerd imports every archive and its root is
    kept in labkit's cache (one per set of images: Calico's and Flannel's labs differ);
    after that each node gets a copy (0.2 s, not 6 s of gunzip).
    """
    archives = image_archives(images)
    cache = containerd_cache(archives)
    # Half-made copies of labs killed while making one (their maker's pid is dead).
    for stale in cache.parent.glob("containerd-*.part-*"):
        if left_by_dead_process(stale.name.rsplit(".part-", 1)[1].split("-")[0]):
            shutil.rmtree(stale, ignore_errors=True)
    if not cache.is_dir():
        first = settings.node_names[0]
        progress(f"importing {len(archives)} images into containerd (once; kept in {cache})")
        _start_containerd(lab, first)
        root = parts.root()
        for tar in archives.values():
            inside = Path("/opt/labkit/parts") / tar.relative_to(root)
            must(lab, first, f"ctr -n k8s.io images import {inside}",
                 f"importing {tar.parent.parent.name}", timeout=300)
        _stop_containerd(lab, first)
        cache.parent.mkdir(parents=True, exist_ok=True)
        # Named by this process: two labs starting at once must not share a half-made copy.
        work = cache.with_name(f"{cache.name}.part-{os.getpid()}-{threading.get_ident()}")
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["cp", "-a", str(lab.node_dir(first) / "var/lib/containerd"), str(work)],
                       check=True)
        try:
            work.rename(cache)
        except OSError:  # another lab made the same cache first: use its copy
            shutil.rmtree(work, ignore_errors=True)
            if not cache.is_dir():
                raise
    def copy(node: str) -> None:
        target = lab.node_dir(node) / "var/lib/containerd"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cp", "-a", str(cache), str(target)], check=True)

    with ThreadPoolExecutor(len(settings.node_names)) as pool:
        list(pool.map(copy, settings.node_names))


def boot(lab: Lab, settings: Settings, ips: dict[str, str]) -> None:
    """containerd and the kubelet's supervisor in every node; kind's kubeadm.conf in /kind."""
    def one(node: str) -> None:
        conf = kubeadm.render(settings.cluster,
                              kubeadm.Node(node, ips[node], node == settings.node_names[0]),
                              settings.pod_subnet)
        (lab.node_dir(node) / "kind" / "kubeadm.conf").write_text(conf)
        (lab.node_dir(node) / "kind" / "version").write_text(kubeadm.VERSION + "\n")
        _start_containerd(lab, node)
        must(lab, node, "setsid kubelet-loop </dev/null >>/var/log/labkit/kubelet.log 2>&1 & "
                        "echo $! > /run/labkit/kubelet-loop.pid", "starting the kubelet")

    with ThreadPoolExecutor(len(settings.node_names)) as pool:
        list(pool.map(one, settings.node_names))


def kubeadm_init(lab: Lab, settings: Settings) -> None:
    cp = settings.node_names[0]
    must(lab, cp, "kubeadm init --skip-phases=preflight --config=/kind/kubeadm.conf "
                  "--skip-token-print --v=6 >/var/log/labkit/kubeadm-init.log 2>&1 || "
                  "{ rc=$?; tail -30 /var/log/labkit/kubeadm-init.log >&2; exit $rc; }",
         "kubeadm init", timeout=300)
    must(lab, cp, f"mkdir -p /root/.kube && cp {ADMIN} /root/.kube/config", "kubectl's config")


def wait_for_signature(lab: Lab, settings: Settings, timeout: float = 120.0) -> None:
    """Wait until kube-controller-manager's bootstrap signer has signed ``cluster-info`` for
    kind's token: ``kubeadm join`` cannot discover the cluster before, and retries only every
    5 s.  This is most of the joins' time: the controller manager v1.23 starts its
    controllers one by one, the node IPAM controller's first waits 10 s before it lists the
    nodes (``nodePollInterval``, ``wait.Poll``), and the informers, the signer's among them,
    start after the last controller.

    One ``kubectl get --watch`` tells the moment it is signed; polling with a new kubectl
    five times a second took CPU from the controller manager on a two-CPU machine.
    """
    if not settings.node_names[1:]:
        return
    deadline = time.monotonic() + timeout
    token_id = kubeadm.TOKEN.split(".")[0]
    template = "jsonpath={.data.jws-kubeconfig-" + token_id + '}{"\\n"}'  # a line per event
    argv = node_argv(lab, settings.node_names[0],
                     ["kubectl", "-n", "kube-public", "get", "configmap", "cluster-info",
                      "--watch", "-o", template], KUBECTL_ENV)
    while time.monotonic() < deadline:
        # a session of its own: killing its group ends the kubectl behind nsenter too
        watch = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        assert watch.stdout is not None
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(watch.stdout, selectors.EVENT_READ)
                while selector.select(max(0.0, deadline - time.monotonic())):
                    line = watch.stdout.readline()
                    if not line:
                        break  # the watch ended (the API server restarted?): watch again
                    if line.strip():
                        return
        finally:
            with contextlib.suppress(OSError):
                os.killpg(watch.pid, signal.SIGKILL)
            watch.wait()
        time.sleep(0.2)
    raise Step(f"the cluster-info ConfigMap was not signed for kind's token in {timeout:g}s")


def join(lab: Lab, settings: Settings) -> None:
    """``kubeadm join`` on every worker at once, as kind joins its workers, once
    :func:`wait_for_signature` has returned.  Each takes about 5 s: kubeadm looks for the
    kubelet's TLS bootstrap every 5 s, and its first look comes before the kubelet starts
    (which itself spends 5 s at every start in cadvisor v0.43, asking five times, a second
    apart, for a Docker that no kind node has)."""
    workers = settings.node_names[1:]
    if not workers:
        return

    def one(node: str) -> None:
        must(lab, node, "kubeadm join --config /kind/kubeadm.conf --skip-phases=preflight "
                        "--v=6 >/var/log/labkit/kubeadm-join.log 2>&1 || "
                        "{ rc=$?; tail -30 /var/log/labkit/kubeadm-join.log >&2; exit $rc; }",
             "kubeadm join", timeout=300)

    with ThreadPoolExecutor(len(workers)) as pool:
        list(pool.map(one, workers))


def calico(lab: Lab, settings: Settings, progress: Progress) -> None:
    """The seed's taint removal, Calico's VXLAN manifest, and the pool set to VXLAN Always."""
    cp = settings.node_names[0]
    # As the seed: 1.23 taints the control plane with .../master (workers have no taint).
    kubectl(lab, settings, "taint nodes --all node-role.kubernetes.io/master-")
    manifest = parts.path("calico-manifests") / CALICO_MANIFEST
    shutil.copy(manifest, lab.node_dir(cp) / "kind" / CALICO_MANIFEST)
    rc, out, err = kubectl(lab, settings, f"apply -f /kind/{CALICO_MANIFEST}", timeout=120)
    if rc != 0:
        raise Step(f"kubectl apply -f {CALICO_MANIFEST}: {err.strip()}")
    progress(f"applied {CALICO_MANIFEST} ({len(out.splitlines())} objects)")


def vxlan_always(lab: Lab, settings: Settings, timeout: float = 180.0) -> str:
    """``calicoctl patch ippool`` once calico-node has made the pool; returns the pool's line."""
    cp = settings.node_names[0]
    deadline = time.monotonic() + timeout
    while sh(lab, cp, f"calicoctl get ippool {POOL}", env=KUBECTL_ENV, timeout=30)[0] != 0:
        if time.monotonic() > deadline:
            raise Step(f"calico-node did not create the IP pool {POOL} in {timeout:g}s")
        time.sleep(1)
    must(lab, cp, f"calicoctl patch ippool {POOL} -p "
                  "'{\"spec\":{\"vxlanMode\":\"Always\",\"ipipMode\":\"Never\"}}'",
         "calicoctl patch ippool", env=KUBECTL_ENV)
    return must(lab, cp, "calicoctl get ippool -o wide", "calicoctl get ippool",
                env=KUBECTL_ENV)


def deployment(lab: Lab, settings: Settings) -> None:
    """The seed's Deployment, its images taken from the node (there is no registry)."""
    cp = settings.node_names[0]
    document = json.loads(json.dumps(settings.deployment))
    for container in document["spec"]["template"]["spec"]["containers"]:
        container["imagePullPolicy"] = "IfNotPresent"
    (lab.node_dir(cp) / "kind" / "app-deployment.json").write_text(json.dumps(document))
    rc, _, err = kubectl(lab, settings, "apply -f /kind/app-deployment.json")
    if rc != 0:
        raise Step(f"kubectl apply (the seed's Deployment): {err.strip()}")


def _expected(settings: Settings, pods: list[dict[str, Any]], app: bool) -> list[str]:
    system = ({"kube-flannel-ds-": len(settings.node_names)} if settings.cni == "flannel"
              else {"calico-node-": len(settings.node_names), "calico-kube-controllers-": 1})
    wanted = {**system, "coredns-": 2,
              **({f"{settings.app}-": settings.replicas} if app else {})}
    count: dict[str, int] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        for prefix in wanted:
            if name.startswith(prefix):
                count[prefix] = count.get(prefix, 0) + 1
    return [f"{want - count.get(prefix, 0)} {prefix.rstrip('-')} pod(s) not created yet"
            for prefix, want in wanted.items() if count.get(prefix, 0) < want]


def wait_ready(lab: Lab, settings: Settings, progress: Progress, timeout: float, *,
               app: bool = True) -> None:
    """Every node and pod Ready (and every expected pod there, the Deployment's if ``app``);
    then the seed's ``kubectl wait``.  On a timeout, name what is not Ready with its last
    log lines."""
    deadline = time.monotonic() + timeout
    shown: list[str] = []
    found: list[str] = []
    pods: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            nodes = kubectl_json(lab, settings, "get nodes").get("items", [])
            pods = kubectl_json(lab, settings, "get pods -A").get("items", [])
        except (Step, ValueError) as exc:
            found = [str(exc)]
        else:
            found = (readiness.problems(nodes, readiness.node_problem)
                     + readiness.missing(nodes, settings.node_names, "node")
                     + readiness.problems(pods, readiness.pod_problem)
                     + _expected(settings, pods, app))
        if not found:
            break
        crashing = [p for p in pods if _crash_looping(p)]
        if crashing:  # no use waiting out the timeout: say why now
            names = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                              for p in crashing)
            raise LabUnavailable(f"{names} keep crashing (CrashLoopBackOff)"
                                 f"{_logs(lab, settings, crashing)}",
                                 hint="the lab is left up for a look if `labkit up` made it; "
                                      "`labkit down --lab native` removes it")
        if found != shown:
            shown = found
            progress(f"waiting: {'; '.join(found[:3])}"
                     + (f" (and {len(found) - 3} more)" if len(found) > 3 else ""))
        time.sleep(1)
    else:
        raise LabUnavailable(f"timed out after {timeout:g}s; not Ready: {'; '.join(found[:6])}"
                             f"{_logs(lab, settings, pods)}",
                             hint=f"the lab is left up: `labkit sh --lab native "
                                  f"{settings.node_names[0]} -- kubectl get pods -A`; "
                                  "`labkit down --lab native` removes it")
    rc, out, err = kubectl(lab, settings, f"wait --timeout={SEED_WAIT}s "
                           "--for=condition=Ready=true pods --all -A", timeout=SEED_WAIT + 30)
    if rc != 0:
        raise LabUnavailable(f"kubectl wait: {err.strip() or out.strip()}"
                             f"{_logs(lab, settings, pods)}")


CRASHES = 3
"""Restarts in CrashLoopBackOff after which waiting longer is no use."""


def _crash_looping(pod: dict[str, Any]) -> bool:
    return any(((c.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
               and (c.get("restartCount") or 0) >= CRASHES
               for c in (pod.get("status") or {}).get("containerStatuses") or [])


def _logs(lab: Lab, settings: Settings, pods: list[dict[str, Any]]) -> str:
    """The last lines of each unready pod's log (at most three pods)."""
    shown = []
    for pod in pods:
        if readiness.pod_problem(pod) is None:
            continue
        meta = pod["metadata"]
        crashed = [c["name"] for c in (pod.get("status") or {}).get("containerStatuses") or []
                   if (c.get("restartCount") or 0) > 0]
        which = f"-c {crashed[0]} --previous" if crashed else "--all-containers"
        _, out, err = kubectl(lab, settings, f"logs -n {meta['namespace']} {meta['name']} "
                              f"{which} --tail=8", timeout=30)
        text = (out or err).strip() or "(no log)"
        shown.append(f"\n--- {meta['namespace']}/{meta['name']}:\n{text}")
        if len(shown) == 3:
            break
    return "".join(shown)


def is_app(settings: Settings, pod: dict[str, Any]) -> bool:
    """Whether an inventory's pod is one of the seed's Deployment's."""
    labels = pod.get("labels") or {}
    return pod.get("namespace") == settings.namespace and all(
        labels.get(k) == v for k, v in settings.app_labels.items())


def listing_order(settings: Settings, pod: dict[str, Any]) -> tuple[bool, ipaddress.IPv4Address]:
    """The order ``lab.pods`` lists them in, as the replica does: the Deployment's pods first
    (chapters that take ``lab.pods[0]`` get a pod with a shell, not CoreDNS's), each group
    by address, which on one node is the order they started in."""
    return not is_app(settings, pod), ipaddress.IPv4Address(pod["ip"])


def gather(lab: Lab, settings: Settings, extra: dict[str, Any]) -> dict[str, Any]:
    """The inventory from the API server, in the kind lab's shape (chapters work unchanged)."""
    nodes = kubectl_json(lab, settings, "get nodes").get("items", [])
    pods = kubectl_json(lab, settings, "get pods -A").get("items", [])
    affinities: list[dict[str, Any]] = []
    pool: dict[str, Any] | None = None
    with contextlib.suppress(Step, ValueError):
        affinities = kubectl_json(lab, settings,
                                  f"get blockaffinities.{CALICO_GROUP}").get("items", [])
        pool = kubectl_json(lab, settings, f"get ippools.{CALICO_GROUP} {POOL}")
    version = settings.calico_version
    with contextlib.suppress(Step, ValueError, KeyError):
        daemonset = kubectl_json(lab, settings, "-n kube-system get daemonset calico-node")
        images = [c.get("image", "")
                  for c in daemonset["spec"]["template"]["spec"]["containers"]]
        version = next((i.rsplit(":", 1)[-1] for i in images if "calico/node" in i), version)
    links: dict[str, inventory.Link] = {}
    lock = threading.Lock()

    def read(node: str) -> None:
        rc, out, _ = sh(lab, node, "ip -o link show", timeout=30)
        if rc == 0:
            with lock:
                links.update(inventory.link_netns(out))

    with ThreadPoolExecutor(len(settings.node_names)) as pool_:
        list(pool_.map(read, settings.node_names))
    spec = (pool or {}).get("spec") or {}
    info = {"backend": "native", "calico": version, "calico_wanted": settings.calico_version,
            "pool": {"ipipMode": spec.get("ipipMode", "Never"),
                     "vxlanMode": spec.get("vxlanMode", "Never")},
            "notes": NOTES, "started": time.time(), **extra}
    found = inventory.build(settings, nodes=nodes, pods=pods, affinities=affinities,
                            pool=pool, links=links, info=info)
    found["pods"].sort(key=lambda p: listing_order(settings, p))
    return found
