# When a kind cluster is ready: which nodes, pods and workloads are not, and waiting on watches.
"""Readiness, decided on the objects' JSON and waited for with watches.

The functions that decide (:func:`pod_problem` and friends) take the objects
as the API server sends them (camelCase JSON as dicts) and return a short
reason naming what is not ready, or ``None``; :func:`wait` lists, then
watches, until no reasons are left or time runs out, and then says which
objects were still not ready and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ...model.errors import LabUnavailable

Obj = dict[str, Any]
Check = Callable[[Obj], "str | None"]


def _name(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


def _condition(obj: Obj, kind: str) -> Obj | None:
    return next((c for c in obj.get("status", {}).get("conditions") or []
                 if c.get("type") == kind), None)


def node_problem(node: Obj) -> str | None:
    ready = _condition(node, "Ready")
    if ready is not None and ready.get("status") == "True":
        return None
    why = (ready or {}).get("reason") or "no Ready condition yet"
    message = (ready or {}).get("message") or ""
    # Before a CNI is in, the kubelet says so here ("cni plugin not initialized").
    detail = f": {message}" if message and len(message) < 120 else ""
    return f"node {_name(node)} not Ready ({why}{detail})"


def pod_problem(pod: Obj) -> str | None:
    """Why a pod is not Ready: its containers' waiting reasons, or its scheduling, or its phase."""
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    phase = status.get("phase", "Pending")
    if phase == "Succeeded":
        return None  # a finished Job's pod is done, not unready
    if meta.get("deletionTimestamp"):
        return f"pod {_name(pod)} is terminating"
    ready = _condition(pod, "Ready")
    if ready is not None and ready.get("status") == "True":
        return None
    reasons = []
    for container in [*(status.get("initContainerStatuses") or []),
                      *(status.get("containerStatuses") or [])]:
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reasons.append(f"{container.get('name')}: {waiting['reason']}")
        elif terminated and terminated.get("exitCode") not in (0, None):
            reasons.append(f"{container.get('name')}: exited {terminated['exitCode']}")
        elif not container.get("ready") and state.get("running"):
            reasons.append(f"{container.get('name')}: running, not ready")
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        reasons.append(scheduled.get("reason") or "not scheduled")
    if not reasons:
        reasons.append(phase)
    return f"pod {_name(pod)} ({'; '.join(dict.fromkeys(reasons))})"


def deployment_problem(deployment: Obj) -> str | None:
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    wanted = int(spec.get("replicas", 1))
    generation = deployment.get("metadata", {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return f"deployment {_name(deployment)} (rollout not observed yet)"
    ready, updated = status.get("readyReplicas", 0) or 0, status.get("updatedReplicas", 0) or 0
    if ready >= wanted and updated >= wanted:
        return None
    return f"deployment {_name(deployment)} ({ready}/{wanted} ready)"


def daemonset_problem(daemonset: Obj) -> str | None:
    status = daemonset.get("status", {})
    wanted = status.get("desiredNumberScheduled", 0) or 0
    ready = status.get("numberReady", 0) or 0
    if wanted > 0 and ready >= wanted and (status.get("updatedNumberScheduled", 0) or 0) >= wanted:
        return None
    return f"daemonset {_name(daemonset)} ({ready}/{wanted} ready)"


def problems(objects: Iterable[Obj], check: Check) -> list[str]:
    return sorted(p for p in (check(o) for o in objects) if p is not None)


def missing(objects: Iterable[Obj], names: Iterable[str], what: str) -> list[str]:
    """A reason for each of ``names`` that no object has yet (``node X not registered yet``)."""
    have = {o.get("metadata", {}).get("name") for o in objects}
    return [f"{what} {n} not there yet" for n in names if n not in have]


Lister = Callable[..., Any]
"""A list call of the kubernetes client (``CoreV1Api.list_node``...)."""


def wait(lister: Lister, check: Check, *, what: str, timeout: float,
         to_dict: Callable[[Any], Obj], watch: Callable[[], Any],
         progress: Callable[[str], None],
         expect: Callable[[list[Obj]], list[str]] | None = None, **kwargs: Any) -> list[Obj]:
    """List then watch until ``check`` finds nothing wrong with any object; return the objects.

    ``expect`` adds reasons about the set as a whole (a node not registered
    yet).  On timeout, raise :class:`LabUnavailable` naming what is not ready.
    """
    from kubernetes.client.exceptions import ApiException  # only the kind lab needs it

    deadline = time.monotonic() + timeout
    objects: dict[str, Obj] = {}
    version: str | None = None
    shown: list[str] = []

    def report() -> list[str]:
        items = list(objects.values())
        found = problems(items, check) + (expect(items) if expect else [])
        if found and found != shown:
            shown[:] = found
            more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
            progress(f"waiting for {what}: {'; '.join(found[:3])}{more}")
        return found

    while True:
        if version is None:
            listing = to_dict(lister(**kwargs))
            objects = {o["metadata"]["uid"]: o for o in listing.get("items", [])}
            version = listing.get("metadata", {}).get("resourceVersion")
        found = report()
        if not found:
            return list(objects.values())
        left = deadline - time.monotonic()
        if left <= 0:
            more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
            raise LabUnavailable(
                f"timed out after {timeout:g}s waiting for {what}; not ready: "
                f"{'; '.join(found[:5])}{more}",
                hint="images may still be pulling (slow network): run the same command again "
                     "to keep waiting, or look with `kubectl get pods -A` on the control-plane "
                     "node",
            )
        watcher = watch()
        try:
            for event in watcher.stream(lister, resource_version=version,
                                        timeout_seconds=max(1, int(min(left, 60))), **kwargs):
                obj = event["raw_object"]
                uid = obj.get("metadata", {}).get("uid")
                if event["type"] == "DELETED":
                    objects.pop(uid, None)
                elif event["type"] in ("ADDED", "MODIFIED") and uid:
                    objects[uid] = obj
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if not report():
                    watcher.stop()
                    return list(objects.values())
        except ApiException as exc:
            if exc.status != 410:
                raise
            version = None  # the watch fell too far behind: list again
