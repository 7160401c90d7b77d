# Bringing the seed's kind cluster up: the steps of its 1-setup-env.sh, each safe to repeat.
"""Taint, Calico, node tools, calicoctl, readiness, the Deployment, and the inventory of a
ready cluster."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ...model.errors import LabUnavailable
from ..cluster import inventory
from ..cluster.settings import (
    CALICO_GROUP,
    FLANNEL_DAEMONSET,
    FLANNEL_NAMESPACE,
    Settings,
    calico_objects,
    flannel_objects,
)
from . import cluster, download, readiness
from .client import Api, api_errors
from .cluster import Progress

BRIDGE_ON_NODE = "/opt/cni/bin/bridge"
"""Where the kubelet's CNI_PATH finds plugins on a kind node."""
BRIDGE_PACKAGE = "containernetworking-plugins"
READY_TIMEOUT = 900.0
"""Seconds to wait for the CNI and the Deployment: first pulls of the images take minutes."""


KUBECTL_SETUP = "mkdir -p /root/.kube && cp /etc/kubernetes/admin.conf /root/.kube/config"
CALICOCTL_CONFIG = """apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata:
spec:
  datastoreType: kubernetes
  kubeconfig: /etc/kubernetes/admin.conf
"""


def stderr_progress() -> Progress:
    """Progress lines on stderr with the time since start: creating a cluster takes minutes."""
    t0 = time.monotonic()

    def show(message: str) -> None:
        elapsed = int(time.monotonic() - t0)
        print(f"[kind {elapsed // 60:d}:{elapsed % 60:02d}] {message}", file=sys.stderr,
              flush=True)

    return show


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
        progress(f"calicoctl not installed: {settings.manifest.file} pins no calicoctl for "
                 f"{arch} (`labkit pin calicoctl` does)")
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
    links: dict[str, inventory.Link] = {}
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
    links: dict[str, inventory.Link] = {}
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
