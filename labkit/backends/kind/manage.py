# `labkit status|down|pin --lab kind`: look at, delete, or pin what the kind lab downloads.
"""The kind lab's commands other than starting it; none of them creates a cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...model.errors import LabError
from ..cluster.settings import load
from . import cluster, download
from .client import Api
from .cluster import Progress
from .provision import problems_now, stderr_progress


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
    if what == "manifest":
        target = settings.manifest
    elif what == "calicoctl":
        file = settings.manifest.file
        if not settings.calicoctl:
            raise LabError(f"{file} has no `calicoctl` entry to pin")
        chosen = arch or "amd64"
        if chosen not in settings.calicoctl:
            raise LabError(f"{file} lists calicoctl for "
                           f"{', '.join(settings.calicoctl)}, not {chosen}")
        target = settings.calicoctl[chosen]
    else:
        raise LabError(f"nothing called {what!r} to pin: choose manifest, calicoctl or "
                       "flannel")
    return download.pin(target, settings.pin_path, fetch=fetch)
