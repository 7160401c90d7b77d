# What `ip -j addr`, `ip -j -d link`, `ip -j route` and `sysctl` print, parsed.
"""Devices and routes as iproute2 reports them, read strictly."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..model.errors import LabError

SYSCTL = re.compile(r"^net\.ipv4\.conf\.(?P<device>.+)\.proxy_arp = (?P<value>\S+)$")


class StateError(LabError):
    """``ip -j`` printed something that is not the JSON it documents."""


# -- what `ip -j` prints ----------------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    """A network device as ``ip -j addr`` and ``ip -j -d link`` report it."""

    name: str
    ifindex: int
    mac: str
    """``address``: a MAC for Ethernet-like devices, whatever ``ip`` prints for others."""
    link_type: str
    """``ether``, ``loopback``, ``ipip``..."""
    mtu: int
    state: str
    kind: str | None = None
    """``veth``, ``vxlan``, ``ipip``... (from ``-d``); None for a plain device."""
    peer_ifindex: int | None = None
    """For a veth: the ifindex of its other end, in the namespace it lives in."""
    addresses: tuple[str, ...] = ()
    """Every address with its prefix, as ``10.244.244.65/32``."""
    vni: int | None = None
    """For a VXLAN device: its VNI, UDP port and local (underlay) address."""
    port: int | None = None
    local: str | None = None
    master: str | None = None
    """The bridge this device is a port of (``master cni0``), if any."""

    @property
    def ipv4(self) -> tuple[str, ...]:
        return tuple(a for a in self.addresses if ":" not in a)


@dataclass(frozen=True)
class Route:
    """One route as ``ip -j route`` reports it; ``str()`` gives ``ip route``'s line."""

    dst: str
    dev: str | None = None
    gateway: str | None = None
    type: str | None = None
    protocol: str | None = None
    scope: str | None = None
    prefsrc: str | None = None
    metric: int | None = None
    flags: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [self.type] if self.type and self.type != "unicast" else []
        parts.append(self.dst)
        for word, value in (("via", self.gateway), ("dev", self.dev), ("proto", self.protocol),
                            ("scope", self.scope), ("src", self.prefsrc), ("metric", self.metric)):
            if value is not None:
                parts.append(f"{word} {value}")
        return " ".join([*parts, *self.flags])


def _json(output: str, command: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(output)
    except json.JSONDecodeError as exc:
        raise StateError(f"`{command}` did not print JSON ({exc}): {output[:200]!r}") from exc
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise StateError(f"`{command}` printed JSON that is not a list of objects")
    return data


def read_devices(addr_json: str, link_json: str) -> tuple[Device, ...]:
    """Devices from ``ip -j addr`` (addresses) and ``ip -j -d link`` (kind, peer, VXLAN)."""
    addresses = {
        d["ifindex"]: tuple(f"{a['local']}/{a['prefixlen']}" for a in d.get("addr_info", [])
                            if "local" in a)
        for d in _json(addr_json, "ip -j addr")
    }
    devices = []
    for d in _json(link_json, "ip -j -d link"):
        info = d.get("linkinfo", {})
        details = info.get("info_data", {}) if isinstance(info.get("info_data"), dict) else {}
        devices.append(Device(
            name=str(d["ifname"]), ifindex=int(d["ifindex"]), mac=str(d.get("address", "")),
            link_type=str(d.get("link_type", "")), mtu=int(d.get("mtu", 0)),
            state=str(d.get("operstate", "")), kind=info.get("info_kind"),
            peer_ifindex=d.get("link_index"), addresses=addresses.get(d["ifindex"], ()),
            vni=details.get("id"), port=details.get("port"), local=details.get("local"),
            master=d.get("master"),
        ))
    return tuple(devices)


def read_routes(route_json: str) -> tuple[Route, ...]:
    """Routes from ``ip -j route``, in the order ``ip`` lists them."""
    routes = []
    for r in _json(route_json, "ip -j route"):
        routes.append(Route(
            dst=str(r["dst"]), dev=r.get("dev"), gateway=r.get("gateway"), type=r.get("type"),
            protocol=r.get("protocol"), scope=r.get("scope"), prefsrc=r.get("prefsrc"),
            metric=r.get("metric"), flags=tuple(r.get("flags", ())),
        ))
    return tuple(routes)


def read_proxy_arp(sysctl_output: str) -> dict[str, str]:
    """``{device: value}`` from ``sysctl net.ipv4.conf.<dev>.proxy_arp ...``."""
    values = {}
    for line in sysctl_output.splitlines():
        match = SYSCTL.match(line.strip())
        if match:
            values[match.group("device")] = match.group("value")
    return values
