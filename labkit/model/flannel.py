# Flannel's (vxlan backend) files and numbers, as flanneld and its CNI plugin write them.
"""Pure functions for what a Flannel cluster derives; both labs share them.

flanneld (``--ip-masq --kube-subnet-mgr``) writes ``/run/flannel/subnet.env``
and creates ``flannel.1``; kube-flannel.yml's ConfigMap puts the CNI conflist in
``/etc/cni/net.d/10-flannel.conflist``.  For each pod the container runtime
runs the ``flannel`` CNI plugin, which reads ``subnet.env``, builds a config for
the ``bridge`` plugin (:func:`delegate`) and hands it over; ``bridge`` and
``host-local`` then do the work.  The values below are read from
flannel-io/flannel v0.22.0 and flannel-io/cni-plugin v1.1.x (see FIDELITY.md).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

DEVICE = "flannel.1"
VNI = 1
PORT = 8472
"""The Linux kernel's historical VXLAN port, which flannel keeps (not IANA's 4789)."""
UNDERLAY_MTU = 1500
MTU = UNDERLAY_MTU - 50
"""VXLAN's 50 bytes of outer headers, on ``flannel.1``, ``cni0`` and every pod."""
BRIDGE = "cni0"
"""The bridge plugin's default name: flannel's delegate config names none."""
NETWORK_NAME = "cbr0"
SUBNET_ENV = "/run/flannel/subnet.env"
CONFLIST = "/etc/cni/net.d/10-flannel.conflist"
CNI_DATA = "/var/lib/cni"
"""host-local keeps its leases in ``networks/cbr0/``; the flannel plugin its delegate
configs in ``flannel/``."""
BACKEND_DATA = "flannel.alpha.coreos.com/backend-data"


def conflist() -> dict[str, Any]:
    """kube-flannel.yml's ``cni-conf.json``, the file the DaemonSet's init container copies."""
    return {
        "name": NETWORK_NAME,
        "cniVersion": "0.3.1",
        "plugins": [
            {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def net_conf(network: str) -> dict[str, Any]:
    """kube-flannel.yml's ``net-conf.json``."""
    return {"Network": network, "Backend": {"Type": "vxlan"}}


def subnet_env(network: str, subnet: str, mtu: int = MTU, ipmasq: bool = True) -> str:
    """What flanneld writes to ``/run/flannel/subnet.env`` for a node whose podCIDR is ``subnet``.

    ``FLANNEL_SUBNET`` is the subnet's first host address with the subnet's length:
    the address the bridge plugin then gives ``cni0``.
    """
    net = ipaddress.ip_network(subnet)
    return (f"FLANNEL_NETWORK={network}\n"
            f"FLANNEL_SUBNET={net.network_address + 1}/{net.prefixlen}\n"
            f"FLANNEL_MTU={mtu}\n"
            f"FLANNEL_IPMASQ={'true' if ipmasq else 'false'}\n")


def read_subnet_env(text: str) -> dict[str, str]:
    """``subnet.env`` as the flannel plugin reads it: ``KEY=value`` lines."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            values[key] = value
    missing = [k for k in ("FLANNEL_NETWORK", "FLANNEL_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ")
               if k not in values]
    if missing:
        raise ValueError(f"{SUBNET_ENV} lacks {', '.join(missing)}")
    return values


def delegate(conf: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """The config the flannel CNI plugin hands the ``bridge`` plugin (its ``doCmdAdd``).

    From the conflist's flannel entry (``conf``: its ``delegate``, the list's ``name`` and
    ``cniVersion``) and ``subnet.env``: a ``host-local`` range of the node's subnet, a
    route to the whole pod network, the MTU, and IP masquerading left to flanneld.
    """
    out: dict[str, Any] = dict(conf.get("delegate") or {})
    out["name"] = conf["name"]
    out.setdefault("type", "bridge")
    if out["type"] == "bridge":
        out.setdefault("isGateway", True)
    out.setdefault("ipMasq", env["FLANNEL_IPMASQ"] != "true")
    out.setdefault("mtu", int(env["FLANNEL_MTU"]))
    subnet = ipaddress.ip_interface(env["FLANNEL_SUBNET"]).network
    out["ipam"] = {
        "type": "host-local",
        "ranges": [[{"subnet": str(subnet)}]],
        "routes": [{"dst": env["FLANNEL_NETWORK"]}],
    }
    out["cniVersion"] = conf.get("cniVersion", "0.3.1")
    return out


def dumps(config: dict[str, Any]) -> str:
    """JSON as Go's encoding/json writes a map: keys sorted, no spaces."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def pod_addresses(subnet: str) -> list[ipaddress.IPv4Address]:
    """What host-local hands a node's pods, in its order: from .2 (the network address is
    ``flannel.1``'s, .1 is ``cni0``'s) to the last before the broadcast address."""
    return list(ipaddress.IPv4Network(subnet).hosts())[1:]


def tunnel_address(subnet: str) -> str:
    """``flannel.1``'s address: the subnet's network address, as a /32."""
    return str(ipaddress.ip_network(subnet).network_address)


def backend_data(vtep_mac: str) -> str:
    """The node annotation flanneld publishes for the other nodes to find its VTEP."""
    return json.dumps({"VNI": VNI, "VtepMAC": vtep_mac}, separators=(",", ":"))
