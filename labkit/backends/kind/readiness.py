# When a kind cluster is ready: waiting on watches (the decisions are shared with native).
"""Readiness of a kind cluster: list, then watch, until nothing is left not ready.

The functions that decide (:func:`pod_problem` and friends) live in
:mod:`labkit.backends.cluster.readiness`, shared with the native lab, and are
re-exported here; :func:`wait` lists, then watches, until no reasons are left
or time runs out, and then says which objects were still not ready and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ...model.errors import LabUnavailable
from ..cluster.readiness import (
    Check,
    Obj,
    daemonset_problem,
    deployment_problem,
    missing,
    node_problem,
    pod_problem,
    problems,
)

__all__ = ["Check", "Lister", "Obj", "daemonset_problem", "deployment_problem", "missing",
           "node_problem", "pod_problem", "problems", "wait"]

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
