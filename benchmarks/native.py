# The native lab's figures for `nox -s bench`: the real cluster up, by phase, its memory, down.
"""``labkit up --lab native`` timed phase by phase (the owner's own clock), beside the
replica's start-up measured in the same run and kind's published figure; the PSS of every
process of the cluster, in all and per node; and ``labkit down``'s time.

As root, with the parts built (``labkit parts build``); otherwise it says why and prints
nothing else.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import labkit
from labkit import parts
from labkit.backends.native import backend, nodes

KIND_PUBLISHED = "12.5-17 s for `kind create cluster`, before any CNI (kind issue 2893)"


def unavailable() -> str | None:
    """Why the native rows cannot run here, or None."""
    if os.geteuid() != 0:
        return "the native lab needs root"
    try:
        backend.preflight()
    except labkit.LabError as exc:
        return str(exc).splitlines()[0]
    return None


def rounds(count: int, row: Callable[[str], None], pss_kib: Callable[[list[int]], int],
           ) -> None:
    """Start and stop the native lab ``count`` times; print the medians (``pss_kib``: the
    PSS of some processes, summed, as the bench measures the replica's)."""
    phases: dict[str, list[float]] = {}
    totals: list[float] = []
    downs: list[float] = []
    pss: list[int] = []
    per_node: dict[str, list[int]] = {}
    for _ in range(count):
        started = time.monotonic()
        lab = labkit.open_lab("native", name="bench")
        totals.append(time.monotonic() - started)
        native = nodes.Lab(Path(str(lab.info["folder"])))
        for phase, seconds in dict(lab.info["timings"]).items():
            phases.setdefault(phase, []).append(float(seconds))
        pss.append(pss_kib(sorted(nodes.processes(native))))
        for node in lab.nodes:
            per_node.setdefault(node.name, []).append(
                pss_kib(sorted(nodes.processes(native, node.name))))
        started = time.monotonic()
        lab.close()
        downs.append(time.monotonic() - started)
    median = statistics.median
    row(f"the native lab (kubeadm v1.23.4, Calico v3.23.2, the seed's Deployment), "
        f"median of {count}:")
    for phase, values in phases.items():
        row(f"  {phase:<58} {median(values):7.1f} s")
    row(f"  {'open_lab(native): up until every pod Ready (aim < 45 s)':<58} "
        f"{median(totals):7.1f} s  (kind: {KIND_PUBLISHED})")
    row(f"  {'close(): everything removed':<58} {median(downs):7.1f} s")
    row(f"  {'PSS of every process of the cluster':<58} {median(pss) / 1024:7.0f} MiB")
    for name, memory in per_node.items():
        row(f"  {'  of which ' + name:<58} {median(memory) / 1024:7.0f} MiB")
    row(f"  (the parts: {parts.root()})")
