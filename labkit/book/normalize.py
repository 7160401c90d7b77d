# Normalisers: what may differ between two honest runs of the same command, masked for comparing.
"""Declared normalisers for comparing outputs across runs.

A chapter declares the ones it needs in its front matter (``normalize: [mac,
time]``), a snippet adds more with ``normalize=...``.  They are applied only
to *compare* (drift check, sybil); pages always show the output as printed.

Values that identify the same thing twice in one output (a random MAC, a
uuid) become numbered placeholders in order of first appearance, so two runs
still match when the same MAC shows up in the same places.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

Normalizer = Callable[[str], str]

# MACs that mean something and never vary: Calico's, broadcast, loopback's.
FIXED_MACS = {"ee:ee:ee:ee:ee:ee", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"}
MAC = re.compile(r"\b[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}\b")
# An IPv6 link-local address is derived from the device's MAC (EUI-64).
LINK_LOCAL = re.compile(r"\bfe80::[0-9a-f:]+(?=/64|\b)")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def _numbered(pattern: re.Pattern[str], label: str,
              keep: Callable[[str], bool] = lambda _: False) -> Normalizer:
    def normalize(text: str) -> str:
        seen: dict[str, str] = {}

        def replace(match: re.Match[str]) -> str:
            value = match.group(0)
            if keep(value):
                return value
            key = value.lower()
            if key not in seen:
                seen[key] = f"<{label}{len(seen) + 1}>"
            return seen[key]

        return pattern.sub(replace, text)

    return normalize


def _subs(*pairs: tuple[str, str]) -> Normalizer:
    compiled = [(re.compile(p, re.M), r) for p, r in pairs]

    def normalize(text: str) -> str:
        for pattern, replacement in compiled:
            text = pattern.sub(replacement, text)
        return text

    return normalize


_mac = _numbered(MAC, "mac", keep=lambda v: v.lower() in FIXED_MACS)
_link_local = _numbered(LINK_LOCAL, "fe80-")


def _mac_and_link_local(text: str) -> str:
    return _mac(_link_local(text))


NORMALIZERS: dict[str, Normalizer] = {
    # The CNI bridge plugin names each pod's host veth `veth` + 8 random hex digits; a Linux
    # bridge's timers (`gc_timer  289.37`, `"forward_delay_timer":4.08`) count down, and its
    # id is its random MAC, printed unpadded (`8000.5a:a2:0:b6:7a:ba`). First, before `mac`
    # numbers the MACs, so a bridge id reads the same whether or not its MAC has a 0 octet.
    "cni": _subs((r"\bveth[0-9a-f]{8}\b", "veth<hex>"),
                 (r"\b(\w+_timer)(\":| +)\d+\.\d+", r"\1\2<t>"),
                 (r"\b([0-9a-f]{4})\.[0-9a-f]{1,2}(?::[0-9a-f]{1,2}){5}\b", r"\1.<bridge-id>")),
    # Kernel-random MACs (a pod's eth0, a bridge) and the link-local addresses made from them.
    "mac": _mac_and_link_local,
    # Clock readings: tcpdump timestamps, ping/arping round trips, elapsed times.
    "time": _subs(
        (r"\b\d{2}:\d{2}:\d{2}\.\d{6}\b", "<clock>"),
        (r"time[=<]\d+(?:\.\d+)? ?ms", "time=<t> ms"),
        (r"\btime \d+ms\b", "time <t>ms"),
        (r"rtt min/avg/max/mdev = \S+ ms", "rtt min/avg/max/mdev = <t> ms"),
        (r"(?<=\]) +\d+\.\d+ms", "  <t>ms"),
    ),
    # Interface numbers: `7: eth0@if8:` in ip link/addr, `if8` in peers, and the same numbers
    # in `ip -j` (`"ifindex":7`, `"link_index":8`).
    "ifindex": _subs((r"^\d+: ", "<n>: "), (r"@if\d+\b", "@if<n>"),
                     (r'"(ifindex|link_index)":\d+', r'"\1":<n>')),
    # Runtime-generated ids: cni-<uuid> network namespaces, container ids.
    "uuid": _numbered(UUID, "uuid"),
    # Per-run counters: ICMP ids and IP ids in captures, tcpdump's kernel counters.
    "ids": _subs(
        (r"\bid \d+\b", "id <id>"),
        (r"^\d+ packets? (received by filter|dropped by kernel)$", r"<n> packets \1"),
    ),
    # Neighbour states move on a timer (REACHABLE -> STALE -> DELAY ...).
    "neigh": _subs((r"\b(REACHABLE|STALE|DELAY|PROBE|INCOMPLETE)\b", "<state>")),
    # BIRD's `since` column and route ages (`[Mesh_172_18_0_3 19:08:37]`): when it happened.
    "bird": _subs((r"(?<![\d:.])\d{2}:\d{2}:\d{2}(?![\d:.])", "<since>")),
    # VXLAN's outer UDP source port is a hash of the inner flow (RFC 7348 5.), so it changes
    # with the ICMP id; the destination port (4789) and both node addresses are kept.
    "vxlan-port": _subs(
        (r"\b(\d{1,3}(?:\.\d{1,3}){3})\.\d{1,5} > (\d{1,3}(?:\.\d{1,3}){3})\.4789:",
         r"\1.<port> > \2.4789:"),
        (r"\bUDP \d{1,5} → 4789\b", "UDP <port> → 4789"),
    ),
    # kind's pod names end in a ReplicaSet hash and a random suffix.
    "podname": _subs((r"\b([a-z0-9-]+)-[a-z0-9]{8,10}-[a-z0-9]{5}\b", r"\1-<hash>-<id>")),
}


def normalizer(names: Iterable[str]) -> Normalizer:
    """One function applying the named normalisers in the order NORMALIZERS lists them."""
    wanted = set(names)
    unknown = wanted - NORMALIZERS.keys()
    if unknown:
        raise KeyError(f"unknown normaliser(s): {', '.join(sorted(unknown))}")
    chain = [f for name, f in NORMALIZERS.items() if name in wanted]

    def normalize(text: str) -> str:
        for f in chain:
            text = f(text)
        return text

    return normalize
