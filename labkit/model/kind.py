# What kind itself decides about a cluster, whatever its manifests say.
"""kind's own rules: its nodes' names and docker's ``kind`` network.

Plain values and functions, with no schema behind them: the netns lab's agent uses them
without importing pydantic (a new Python process per lab pays for every import).
"""

from __future__ import annotations

import ipaddress

UNDERLAY = "172.18.0.0/16"
"""docker's ``kind`` network, where the nodes' ``eth0`` addresses are."""
UNDERLAY_GATEWAY = "172.18.0.1"
"""That network's gateway (the docker host's bridge): no node may have it."""

# kind creates its docker network with this IPv6 subnet (kind v0.12, pkg/cluster/internal/
# providers/docker/network.go: a ULA from the network name's hash, fixed for "kind").
UNDERLAY6 = "fc00:f853:ccd:e793::/64"
UNDERLAY6_GATEWAY = "fc00:f853:ccd:e793::1"


def underlay6_address(ip: str) -> str:
    """docker numbers a container's IPv6 address on the network as its IPv4 one: .4 -> ::4."""
    offset = int(ipaddress.ip_address(ip)) - int(ipaddress.ip_network(UNDERLAY).network_address)
    return str(ipaddress.ip_network(UNDERLAY6).network_address + offset)


def node_names(cluster: str, roles: list[str]) -> list[str]:
    """kind's node names for ``roles``, in order."""
    names, seen = [], {"control-plane": 0, "worker": 0}
    for role in roles:
        seen[role] += 1
        suffix = "" if seen[role] == 1 else str(seen[role])
        names.append(f"{cluster}-{role}{suffix}")
    return names
