# The replica follows the real cluster: what it picked at random, written into replica.yaml.
"""``labkit follow``: each lab's ``replica.yaml`` from the real cluster's latest recording.

A real cluster decides some things at run time: which node each pod lands on
(the scheduler), the pods' random names, the order they start in (and so their
addresses), each node's IPAM block or podCIDR.  The replica fixes them in
``manifests/<lab>/replica.yaml``.  Following the real cluster means writing
there what the real cluster the book was recorded on picked, so both labs
print the same names and addresses and the fidelity comparison is about how
they behave, not about dice.  What the native lab's inventory does not hold
(a Flannel node's ``flannel.1`` MAC, the IPIP fallback) is kept as it was.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml

from ..model import labs
from ..model.errors import LabError
from .borrow import RECORDED_ON, recordings
from .transcript import Store

HEADER = """\
# Only the netns replica reads this file: what a real cluster decides at run time (docker's
# node addresses, each node's {block}, the scheduler's placement, the pods' random names and
# the order they started in, which decides their addresses), as the real cluster picked it
# when the book was last recorded on it (`labkit follow`, from {source}).
# Entries with a namespace are the cluster's own pods; the others are the Deployment's.
"""


def newest_inventories(source: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each lab's inventory from its newest recording on the real cluster, by lab name, with
    the transcript it came from."""
    store = Store(recordings(source / "transcripts", RECORDED_ON))
    found: dict[str, tuple[float, str, dict[str, Any]]] = {}
    for path in sorted(store.directory.glob("*.yaml")):
        transcript = store.load(path.stem)
        if transcript is None:
            continue
        every = {transcript.inventory["info"].get("lab", labs.DEFAULT): transcript.inventory,
                 **transcript.labs}
        for name, inventory in every.items():
            if inventory["info"].get("backend") != RECORDED_ON:
                continue  # a lab the chapter ran on the replica (front matter `replica`)
            if name not in found or found[name][0] < transcript.recorded:
                found[name] = (transcript.recorded, path.name, inventory)
    return {name: (where, inventory) for name, (_, where, inventory) in found.items()}


def replica_file(inventory: dict[str, Any], old: dict[str, Any], source: str) -> str:
    """The ``replica.yaml`` that makes the replica pick what the real cluster picked."""
    flannel = inventory["info"].get("cni") == "flannel"
    nodes = {}
    for node in inventory["nodes"]:
        before = (old.get("nodes") or {}).get(node["name"]) or {}
        if flannel:
            if "vtepMAC" not in before:
                raise LabError(f"replica.yaml has no vtepMAC for {node['name']}: add one")
            nodes[node["name"]] = {"ip": node["ip"], "subnet": node["block"],
                                   "vtepMAC": before["vtepMAC"]}
        else:
            nodes[node["name"]] = {"ip": node["ip"], "block": node["block"]}
    app_namespace = _app_namespace(inventory)
    pods = []
    for pod in sorted(inventory["pods"], key=lambda p: ipaddress.IPv4Address(p["ip"])):
        entry: dict[str, Any] = {"name": pod["name"]}
        if pod["namespace"] != app_namespace:
            labels = {k: v for k, v in (pod.get("labels") or {}).items()
                      if k != "pod-template-hash"}
            entry.update(namespace=pod["namespace"], labels=labels)
        entry["node"] = pod["node"]
        pods.append(entry)
    text = HEADER.format(block="podCIDR" if flannel else "Calico IPAM block", source=source)
    text += _flow({"nodes": nodes})
    if old.get("ipipFallback"):
        text += ("# The pool asks for IPIP; on a kernel without the ipip module (no tunl0) the "
                 "replica runs it\n# in Calico's VXLAN mode instead, and its pages say so.\n")
        text += _flow({"ipipFallback": old["ipipFallback"]})
    text += _flow({"pods": pods})
    return text


def _app_namespace(inventory: dict[str, Any]) -> str:
    apps = [p["namespace"] for p in inventory["pods"] if (p.get("labels") or {}).get("app")]
    return apps[0] if apps else "default"


def _flow(data: dict[str, Any]) -> str:
    """Top level in block style, each node and pod on one line (as the file was written)."""
    (key, value), = data.items()
    if isinstance(value, dict):
        rows = [f"  {name}: {_inline(v)}" for name, v in value.items()]
    elif isinstance(value, list):
        rows = [f"  - {_inline(v)}" for v in value]
    else:
        return f"{key}: {value}\n"
    return f"{key}:\n" + "\n".join(rows) + "\n"


def _inline(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1000).strip()


def follow(root: Path, manifests: Path) -> list[Path]:
    """Write each recorded lab's ``replica.yaml``; returns the files that changed."""
    changed = []
    for name, (where, inventory) in sorted(newest_inventories(root / "docs_src").items()):
        path = labs.manifests(name, manifests) / "replica.yaml"
        old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        text = replica_file(inventory, old, f"docs_src/transcripts/{RECORDED_ON}/{where}")
        if text != path.read_text(encoding="utf-8"):
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed
