# Calico v3.23's naming and addressing rules, as its CNI plugin and Felix apply them.
"""Pure functions for the names and numbers Calico derives; both labs share them."""

from __future__ import annotations

import hashlib
import ipaddress

# Every host-side cali device gets this MAC (see the chapter on 169.254.1.1 for why).
CALI_MAC = "ee:ee:ee:ee:ee:ee"
# The pod's default gateway: no interface owns it, the node answers ARP for it by proxy.
GATEWAY = "169.254.1.1"
VXLAN_DEVICE = "vxlan.calico"
VXLAN_VNI = 4096
VXLAN_PORT = 4789
IPIP_DEVICE = "tunl0"
# Felix's route protocol number, shown by `ip route` as `proto 80` in VXLAN mode.
FELIX_PROTO = 80
UNDERLAY_MTU = 1500
MTU = {"IPIP": UNDERLAY_MTU - 20, "VXLAN": UNDERLAY_MTU - 50}


def veth_name(namespace: str, pod: str) -> str:
    """The host-side veth name the CNI plugin gives a pod: ``cali`` + 11 hex of sha1."""
    return "cali" + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def vxlan_mac(nodename: str) -> str:
    """The MAC Felix gives ``vxlan.calico``: 0x66 then the first 5 bytes of sha1(nodename)."""
    digest = hashlib.sha1(nodename.encode()).digest()[:5]
    return ":".join(f"{b:02x}" for b in (0x66, *digest))


def block_addresses(block: str) -> list[str]:
    """The addresses IPAM hands out from a block, in order: the tunnel takes the first."""
    return [str(ip) for ip in ipaddress.ip_network(block)]
