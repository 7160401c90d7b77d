# When a cluster is ready: which nodes, pods and workloads are not, decided on their JSON.
"""Readiness, decided on the objects' JSON, for the kind and the native lab.

The functions that decide (:func:`pod_problem` and friends) take the objects
as the API server sends them (camelCase JSON as dicts, from the kind lab's
client or from ``kubectl get -o json`` in a native node) and return a short
reason naming what is not ready, or ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

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
