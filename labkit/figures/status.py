# What `labkit status` prints: the lab's own inventory, under its own name (not kubectl's).
"""The replica's inventory as text and JSON, for the CLI and for chapters."""

from __future__ import annotations

from typing import Any

from ..api.lab import Lab
from . import console
from .markdown import fence


def status_document(inventory: dict[str, Any]) -> dict[str, Any]:
    """What ``labkit status --json`` prints: the documented keys first, then the rest."""
    info = inventory["info"]
    return {
        "lab": info.get("lab", "calico"),
        "backend": info["backend"],
        "cni": cni_name(info),
        "encapsulation": info["encapsulation"],
        "pool": info.get("pool"),
        "nodes": [{"name": n["name"], "ip": n["ip"], "block": n["block"]}
                  for n in inventory["nodes"]],
        "pods": [{"name": p["name"], "namespace": p["namespace"], "node": p["node"],
                  "ip": p["ip"], "veth": p["veth"]} for p in inventory["pods"]],
        "info": info,
        **({"damaged": inventory["damaged"]} if inventory.get("damaged") else {}),
    }


def status_text(inventory: dict[str, Any]) -> str:
    """The lab as a reader wants to see it: like `kubectl get nodes,pods -o wide`, but labkit's."""
    info = inventory["info"]
    pool = info.get("pool") or {}
    mode = "".join(f"  {key}: {pool[key]}" for key in ("ipipMode", "vxlanMode") if key in pool)
    lines = [
        f"lab: {info.get('lab', 'calico')}  backend: {info['backend']}  "
        f"cluster: {info.get('cluster', '?')}  cni: {cni_name(info)}  "
        f"encapsulation: {info['encapsulation']}{mode}",
        "",
        _table(["NODE", "IP", "SUBNET" if info.get("cni") == "flannel" else "BLOCK", "TUNNEL"],
               [[n["name"], n["ip"], n["block"],
                 f"{n['tunnel_device']} {n['tunnel_ip']}" if n["tunnel_device"] else "-"]
                for n in inventory["nodes"]]),
        "",
        _table(["POD", "NAMESPACE", "NODE", "IP", "VETH"],
               [[p["name"], p["namespace"], p["node"], p["ip"], p["veth"]]
                for p in inventory["pods"]]),
    ]
    if info.get("bird"):
        lines += ["", "routing: BIRD in every node (node-to-node BGP mesh, AS 64512)"]
    elif info.get("bird") is False and info["encapsulation"] != "VXLAN":
        lines += ["", "routing: none (started without BIRD: no node has a route to another's "
                      "block)"]
    if info.get("mode_note"):
        lines += ["", f"note: {info['mode_note']}"]
    for note in info.get("limitations", []):
        lines += ["", f"note: {note}"]
    damaged = inventory.get("damaged")
    if damaged:
        lines += ["", f"DAMAGED: {damaged['message']}"]
    missing = info.get("missing_tools") or {}
    if missing:
        lines += ["", "missing: " + ", ".join(f"{t} (package {p})" for t, p in missing.items())]
    return "\n".join(lines) + "\n"


def cni_name(info: dict[str, Any]) -> str:
    """``calico v3.23.5`` or ``flannel v0.22.0``: the CNI the lab's cluster runs."""
    cni = str(info.get("cni", "calico"))
    return f"{cni} {info.get(cni, '?')}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [header, *rows])


class Status:
    """``show(labkit.status(lab))``: what `labkit status` prints for this lab, on the page."""

    def __init__(self, lab: Lab) -> None:
        self.text = status_text({"info": lab.info,
                                 "nodes": [_public(n) for n in lab.nodes],
                                 "pods": [_public(p) for p in lab.pods]})

    def markdown(self) -> str:
        # What the command prints, as a terminal shows it (the renderer puts it in a tab).
        return fence(console.body([console.Entry("$", "labkit status", self.text)]),
                     console.LANGUAGE)


def _public(target: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(target).items() if not k.startswith("_")}


def status(lab: Lab) -> Status:
    return Status(lab)
