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
# Calico's MTU autodetection: the underlay's MTU less the encapsulation's header, if any.
MTU = {"IPIP": UNDERLAY_MTU - 20, "IPIPCrossSubnet": UNDERLAY_MTU - 20,
       "VXLAN": UNDERLAY_MTU - 50, "None": UNDERLAY_MTU}
POOL_MODES = ("Always", "CrossSubnet", "Never")


class PoolModeError(ValueError):
    """An IP pool's ``ipipMode``/``vxlanMode`` pair that Calico (or the replica) rejects."""


def encapsulation(ipip_mode: str, vxlan_mode: str) -> str:
    """What a pool's two settings mean, in the words of Calico's operator (``encapsulation:``).

    ``IPIP``, ``IPIPCrossSubnet``, ``VXLAN`` or ``None`` (plain BGP routing over the
    node's ``eth0``).  Calico refuses a pool with both IPIP and VXLAN on.
    """
    for key, value in (("ipipMode", ipip_mode), ("vxlanMode", vxlan_mode)):
        if value not in POOL_MODES:
            raise PoolModeError(f"`{key}: {value}` is not one of {', '.join(POOL_MODES)}")
    if ipip_mode != "Never" and vxlan_mode != "Never":
        raise PoolModeError(
            f"`ipipMode: {ipip_mode}` with `vxlanMode: {vxlan_mode}`: Calico does not allow "
            "IPIP and VXLAN on the same pool; set one of them to Never"
        )
    if vxlan_mode == "CrossSubnet":
        raise PoolModeError(
            "`vxlanMode: CrossSubnet` is not built by the netns replica; with every node on "
            "one subnet it routes as `vxlanMode: Never` does: use that (with `ipipMode: Never`)"
        )
    if ipip_mode == "Always":
        return "IPIP"
    if ipip_mode == "CrossSubnet":
        return "IPIPCrossSubnet"
    if vxlan_mode == "Always":
        return "VXLAN"
    return "None"


def tunnel_device(encapsulation: str) -> str:
    """The device Felix creates for the pool's encapsulation; ``""`` when there is none."""
    if encapsulation.startswith("IPIP"):
        return IPIP_DEVICE
    return VXLAN_DEVICE if encapsulation == "VXLAN" else ""


def runs_bird(encapsulation: str) -> bool:
    """Whether Calico's routes between nodes come from BGP: in IPIP and plain BGP pools."""
    return encapsulation != "VXLAN"


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


def next_block(pool: str, first: str, claimed: set[str]) -> str:
    """The block IPAM claims for a node once its blocks are full.

    Calico walks the pool's blocks from the node's first one (the index its
    fnv32-seeded random generator picked), one block after the other, wrapping
    at the pool's end, and claims the first block no node has claimed yet
    (libcalico-go ``randomBlockGenerator`` and ``findUnclaimedBlock``).
    """
    pool_net, start = ipaddress.ip_network(pool), ipaddress.ip_network(first)
    size = start.num_addresses
    count = pool_net.num_addresses // size
    index = (int(start.network_address) - int(pool_net.network_address)) // size
    for step in range(count):
        base = int(pool_net.network_address) + ((index + step) % count) * size
        block = f"{ipaddress.ip_address(base)}/{start.prefixlen}"
        if block not in claimed:
            return block
    raise ValueError(f"no free block left in {pool}")


class Ipam:
    """Addresses as Calico's IPAM hands them out: from the node's blocks, in order; the
    first address of a node's first block is its tunnel address, where it has a tunnel."""

    def __init__(self, pool: str, first_blocks: dict[str, str], tunnel: bool = True) -> None:
        self.pool = pool
        self.blocks = {node: [block] for node, block in first_blocks.items()}
        skip = 1 if tunnel else 0
        self.free = {node: block_addresses(block)[skip:] for node, block in first_blocks.items()}

    def take(self, node: str, address: str) -> None:
        """Hand out ``address`` (one a real cluster gave out of line): ValueError if it is
        not free in the node's block."""
        if address not in self.free[node]:
            raise ValueError(f"{address} is not free in {node}'s block {self.blocks[node][0]} "
                             "(its first address is the tunnel's where there is one)")
        self.free[node].remove(address)

    def assign(self, node: str) -> str:
        if not self.free[node]:
            claimed = {b for blocks in self.blocks.values() for b in blocks}
            block = next_block(self.pool, self.blocks[node][0], claimed)
            self.blocks[node].append(block)
            self.free[node] = block_addresses(block)
        return self.free[node].pop(0)
