# The replica follows the real cluster: what it picked at random, as the replica's replica.yaml.
"""The replica follows the real cluster: each chapter's labs as its recording on one picked them.

A real cluster decides some things at run time: which node each pod lands on
(the scheduler), the pods' random names, the order their veths are made in
(and so the interface numbers), their addresses (the CNI plugin runs for
several pods at once, so the two orders can cross), each node's IPAM block or
podCIDR.  The replica fixes them in
``manifests/<lab>/replica.yaml``.  Following the real cluster means writing
there, for the replica that runs a chapter, what the real cluster that
recorded the chapter picked (every chapter brings up a cluster of its own), so
both labs print the same names and addresses and the fidelity comparison is
about how they behave, not about dice.  The committed ``replica.yaml`` keeps
the seed's run, for ``labkit up`` and a chapter with no recording.  What the
native lab's inventory does not hold (a Flannel node's ``flannel.1`` MAC, the
IPIP fallback) is kept as it was.
"""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path
from typing import Any

import yaml

from ..model import labs
from ..model.errors import LabError

HEADER = """\
# Only the netns replica reads this file: what a real cluster decides at run time (docker's
# node addresses, each node's {block}, the scheduler's placement, the pods' random names, the
# order their veths were made in (their interface numbers) and the addresses they got), as
# the real cluster picked it when it recorded {source} (labkit/book/follow.py).
# Entries with a namespace are the cluster's own pods; the others are the Deployment's.
"""


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
    made = inventory.get("veth_ifindex") or {}
    for pod in sorted(inventory["pods"], key=lambda p: _made(p, made)):
        entry: dict[str, Any] = {"name": pod["name"]}
        if pod["namespace"] != app_namespace:
            labels = {k: v for k, v in (pod.get("labels") or {}).items()
                      if k != "pod-template-hash"}
            entry.update(namespace=pod["namespace"], labels=labels)
        entry.update(node=pod["node"], ip=pod["ip"])
        pods.append(entry)
    text = HEADER.format(block="podCIDR" if flannel else "Calico IPAM block", source=source)
    text += _flow({"nodes": nodes})
    if old.get("ipipFallback"):
        text += ("# The pool asks for IPIP; on a kernel without the ipip module (no tunl0) the "
                 "replica runs it\n# in Calico's VXLAN mode instead, and its pages say so.\n")
        text += _flow({"ipipFallback": old["ipipFallback"]})
    text += _flow({"pods": pods})
    return text


def _made(pod: dict[str, Any], made: dict[str, int]) -> tuple[int, ipaddress.IPv4Address]:
    """The order the pods' veths were made in: their interface numbers on their node, as
    the real cluster's inventory read them (``veth_ifindex``, by pod name; a recording from
    before it kept them: their addresses, IPAM's order)."""
    return made.get(pod["name"], 0), ipaddress.IPv4Address(pod["ip"])


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


def followed(manifests: Path, inventories: dict[str, dict[str, Any]], where: Path,
             source: str) -> Path:
    """A copy of ``manifests`` in ``where`` whose labs named in ``inventories`` have the
    ``replica.yaml`` that makes the replica pick what that real cluster picked."""
    if where.exists():
        shutil.rmtree(where)
    shutil.copytree(manifests, where, ignore=shutil.ignore_patterns(".*"))
    for name, inventory in inventories.items():
        path = labs.manifests(name, where) / "replica.yaml"
        old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        path.write_text(replica_file(inventory, old, source), encoding="utf-8")
    return where
