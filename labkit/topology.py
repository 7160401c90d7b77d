# The cluster both labs build, read from manifests/ (one source of truth).
"""Load ``manifests/`` into a :class:`Topology`.

``kind-cluster.yaml``, ``calico.yaml`` and ``app-deployment.yaml`` are the
files the kind lab applies; ``replica.yaml`` holds what only the netns replica
must decide.  Every mistake in them is reported with the file and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import calico
from .errors import LabError

FILES = ("kind-cluster.yaml", "calico.yaml", "app-deployment.yaml", "replica.yaml")
UNDERLAY = "172.18.0.0/16"
# kind creates its docker network with this IPv6 subnet (kind v0.12, pkg/cluster/internal/
# providers/docker/network.go: a ULA from the network name's hash, fixed for "kind").
UNDERLAY6 = "fc00:f853:ccd:e793::/64"
UNDERLAY6_GATEWAY = "fc00:f853:ccd:e793::1"


def underlay6_address(ip: str) -> str:
    """docker numbers a container's IPv6 address on the network as its IPv4 one: .4 -> ::4."""
    offset = int(ipaddress.ip_address(ip)) - int(ipaddress.ip_network(UNDERLAY).network_address)
    return str(ipaddress.ip_network(UNDERLAY6).network_address + offset)


def default_manifests() -> Path:
    """Where a lab's spec is when nobody says: ``$LABKIT_MANIFESTS``, else the nearest
    ``manifests/`` at or above the working directory (the project labkit runs in, as
    git finds its repository), else the one beside labkit's own source."""
    if os.environ.get("LABKIT_MANIFESTS"):
        return Path(os.environ["LABKIT_MANIFESTS"])
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "manifests" / FILES[0]).is_file():
            return folder / "manifests"
    return Path(__file__).resolve().parent.parent / "manifests"


MANIFESTS = default_manifests()


class TopologyError(LabError):
    """A manifest is missing, malformed or inconsistent with the others."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str
    image: str
    ip: str
    """The node's address on docker's ``kind`` network (its ``eth0``)."""
    block: str
    """The node's first IPAM block (Calico) or podCIDR (Flannel); its first address is the
    tunnel device's address."""
    vtep_mac: str = ""
    """Flannel only: the MAC of the node's ``flannel.1``."""
    blocks: tuple[str, ...] = ()
    """Calico: every block IPAM gave the node, the first one first (more once one is full)."""
    ip6: str = ""
    """Its IPv6 address on docker's ``kind`` network (a ULA, numbered as the IPv4 one)."""

    @property
    def tunnel_ip(self) -> str:
        return calico.block_addresses(self.block)[0]


@dataclass(frozen=True)
class PodSpec:
    name: str
    namespace: str
    node: str
    ip: str
    labels: dict[str, str] = field(hash=False)
    image: str = ""

    @property
    def veth(self) -> str:
        return calico.veth_name(self.namespace, self.name)


@dataclass(frozen=True)
class Topology:
    cluster: str
    pod_subnet: str
    calico_version: str
    ipip_mode: str
    vxlan_mode: str
    nodes: tuple[NodeSpec, ...]
    pods: tuple[PodSpec, ...]
    gateway: str = "172.18.0.1"
    underlay: str = "172.18.0.0/16"
    # docker's `kind` network is dual stack: this ULA /64 beside the IPv4 /16.
    gateway6: str = UNDERLAY6_GATEWAY
    underlay6: str = UNDERLAY6
    fingerprint: str = ""
    """sha256 over the manifests' content that shapes the lab (not the kind lab's pins)."""
    ipip_fallback: str = ""
    """``replica.yaml``'s ``ipipFallback``: what the replica builds instead of IPIP on a
    kernel without the ``ipip`` module (``VXLAN``); empty: such a lab fails to start."""
    cni: str = "calico"
    """``calico`` or ``flannel``: which file beside kind-cluster.yaml says how pods attach."""
    flannel_version: str = ""
    lab: str = "calico"
    """The lab's name (its manifests folder; see :mod:`labkit.labs`)."""

    @property
    def encapsulation(self) -> str:
        """What the pool asks for: ``IPIP``, ``IPIPCrossSubnet``, ``VXLAN`` or ``None``."""
        return calico.encapsulation(self.ipip_mode, self.vxlan_mode)

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)

    def pod(self, name: str) -> PodSpec:
        return next(p for p in self.pods if p.name == name)


def node_names(cluster: str, roles: list[str]) -> list[str]:
    """kind's node names: ``<cluster>-control-plane``, ``<cluster>-worker``, ``-worker2``..."""
    names, seen = [], {"control-plane": 0, "worker": 0}
    for role in roles:
        seen[role] += 1
        suffix = "" if seen[role] == 1 else str(seen[role])
        names.append(f"{cluster}-{role}{suffix}")
    return names


def read_manifest(directory: Path, name: str,
                  error: type[TopologyError] = TopologyError) -> Any:
    """A manifest's YAML; ``error`` (naming the file, and the line if it can) if it is bad."""
    path = directory / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise error(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc


def manifest_field(doc: Any, path: str, file: str, kind: type = str,
                   error: type[TopologyError] = TopologyError) -> Any:
    """``doc``'s value at the dotted ``path``, of type ``kind``; ``error`` naming both if not."""
    value = doc
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise error(f"manifests/{file}: missing `{path}`")
        value = value[key]
    # YAML's true is an int to isinstance(); a count of `true` replicas is a mistake.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise error(
            f"manifests/{file}: `{path}` should be a {kind.__name__}, not {value!r}"
        )
    return value


def load(directory: Path = MANIFESTS) -> Topology:
    """Read and cross-check the manifests; raise :class:`TopologyError` naming the problem."""
    if (directory / "flannel.yaml").is_file():
        return _load_flannel(directory)
    return dataclasses.replace(_load_calico(directory), lab=_lab_name(directory))


def _lab_name(directory: Path) -> str:
    from . import labs

    if (directory.parent / "kind-cluster.yaml").is_file() and labs.NAME.match(directory.name):
        return directory.name
    return labs.DEFAULT


def _load_calico(directory: Path) -> Topology:
    kind_cfg = read_manifest(directory, "kind-cluster.yaml")
    calico_cfg = read_manifest(directory, "calico.yaml")
    deploy = read_manifest(directory, "app-deployment.yaml")
    replica = read_manifest(directory, "replica.yaml")

    cluster = manifest_field(kind_cfg, "name", "kind-cluster.yaml")
    subnet = manifest_field(kind_cfg, "networking.podSubnet", "kind-cluster.yaml")
    kind_nodes = manifest_field(kind_cfg, "nodes", "kind-cluster.yaml", list)
    roles = [manifest_field(n, "role", "kind-cluster.yaml") for n in kind_nodes]
    images = [n.get("image", "") for n in kind_cfg["nodes"]]
    try:
        pod_net = ipaddress.ip_network(subnet)
    except ValueError as exc:
        raise TopologyError(f"manifests/kind-cluster.yaml: bad podSubnet {subnet!r}") from exc

    wanted = node_names(cluster, roles)
    placed = manifest_field(replica, "nodes", "replica.yaml", dict)
    if sorted(placed) != sorted(wanted):
        raise TopologyError(
            f"manifests/replica.yaml: `nodes` must be exactly kind's node names for "
            f"{cluster!r}: {', '.join(wanted)} (found: {', '.join(placed) or 'none'})"
        )
    nodes = []
    for name, role, image in zip(wanted, roles, images, strict=True):
        ip = manifest_field(placed[name], "ip", "replica.yaml")
        block = manifest_field(placed[name], "block", "replica.yaml")
        try:
            in_underlay = ipaddress.ip_address(ip) in ipaddress.ip_network(UNDERLAY)
            block_net = ipaddress.ip_network(block)
        except ValueError as exc:
            raise TopologyError(f"manifests/replica.yaml: node {name}: {exc}") from exc
        if not in_underlay:
            raise TopologyError(
                f"manifests/replica.yaml: node {name}: {ip} is not in 172.18.0.0/16"
            )
        if not block_net.subnet_of(pod_net):  # type: ignore[arg-type]
            raise TopologyError(
                f"manifests/replica.yaml: node {name}: block {block} is not in {subnet}"
            )
        nodes.append(NodeSpec(name=name, role=role, image=image, ip=ip, block=block,
                              ip6=underlay6_address(ip)))

    namespace = deploy.get("metadata", {}).get("namespace", "default")
    app = "app-deployment.yaml"
    replicas = manifest_field(deploy, "spec.replicas", app, int)
    labels = manifest_field(deploy, "spec.template.metadata.labels", app, dict)
    containers = manifest_field(deploy, "spec.template.spec.containers", app, list)
    listed = manifest_field(replica, "pods", "replica.yaml", list)
    # An entry that names its own namespace is one of the cluster's own pods (coredns...);
    # the others are the Deployment's.
    deployment_pods = [e for e in listed if not (isinstance(e, dict) and "namespace" in e)]
    if len(deployment_pods) != replicas:
        raise TopologyError(
            f"manifests/replica.yaml: lists {len(deployment_pods)} pods of the Deployment "
            f"(entries without a namespace) but manifests/app-deployment.yaml asks for "
            f"{replicas} replicas"
        )
    pool = manifest_field(calico_cfg, "pool", "calico.yaml", dict)
    ipip_mode = manifest_field(pool, "ipipMode", "calico.yaml")
    vxlan_mode = manifest_field(pool, "vxlanMode", "calico.yaml")
    try:
        mode = calico.encapsulation(ipip_mode, vxlan_mode)
    except calico.PoolModeError as exc:
        raise TopologyError(f"manifests/calico.yaml: pool: {exc}") from exc
    fallback = replica.get("ipipFallback") or ""
    if fallback not in ("", "VXLAN"):
        raise TopologyError(
            f"manifests/replica.yaml: `ipipFallback: {fallback}`: the only mode that can stand "
            "in for IPIP here is VXLAN (or leave it out: such a lab then fails to start)"
        )
    # calico-node takes the block's first address for the tunnel device; with no tunnel
    # (a plain BGP pool) there is none, and the first pod gets it.
    ipam = calico.Ipam(subnet, {n.name: n.block for n in nodes},
                       tunnel=bool(calico.tunnel_device(mode)))
    pods = []
    for entry in listed:
        name = manifest_field(entry, "name", "replica.yaml")
        node = manifest_field(entry, "node", "replica.yaml")
        if node not in ipam.free:
            raise TopologyError(
                f"manifests/replica.yaml: pod {name} is on {node!r}, which is not a node "
                f"({', '.join(wanted)})"
            )
        own = "namespace" in entry
        try:
            ip = ipam.assign(node)
        except ValueError as exc:
            raise TopologyError(f"manifests/replica.yaml: pod {name}: {exc}") from exc
        pods.append(
            PodSpec(
                name=name,
                namespace=manifest_field(entry, "namespace", "replica.yaml") if own else namespace,
                node=node,
                ip=ip,
                labels=dict(manifest_field(entry, "labels", "replica.yaml", dict) if own
                            else labels),
                image=str(entry.get("image", "")) if own else containers[0].get("image", ""),
            )
        )
    if len({p.name for p in pods}) != len(pods):
        raise TopologyError("manifests/replica.yaml: two pods share a name")
    nodes = [dataclasses.replace(n, blocks=tuple(ipam.blocks[n.name])) for n in nodes]

    digest = hashlib.sha256()
    for name in FILES:
        if name == "calico.yaml":
            # Only what shapes the cluster: pinning a download's checksum (the kind lab's
            # business) must not make every recorded output look stale.
            shaping = {"version": calico_cfg.get("version"), "pool": pool}
            content = json.dumps(shaping, sort_keys=True).encode()
        else:
            content = (directory / name).read_bytes()
        digest.update(name.encode() + b"\0" + content)
    return Topology(
        cluster=cluster,
        pod_subnet=subnet,
        calico_version=manifest_field(calico_cfg, "version", "calico.yaml"),
        ipip_mode=ipip_mode,
        vxlan_mode=vxlan_mode,
        nodes=tuple(nodes),
        pods=tuple(pods),
        fingerprint=digest.hexdigest(),
        ipip_fallback=fallback,
    )


FLANNEL_FILES = ("kind-cluster.yaml", "flannel.yaml", "app-deployment.yaml", "replica.yaml")


def _load_flannel(directory: Path) -> Topology:
    """The Flannel lab: kind's config, flannel.yaml, the Deployment, and the replica's choices."""
    where = _lab_name(directory)
    shown = f"manifests/{where}"

    def fail(message: str) -> TopologyError:
        return TopologyError(f"{shown}/{message}")

    kind_cfg = read_manifest(directory, "kind-cluster.yaml")
    cfg = read_manifest(directory, "flannel.yaml")
    deploy = read_manifest(directory, "app-deployment.yaml")
    replica = read_manifest(directory, "replica.yaml")

    def field_of(doc: Any, path: str, file: str, kind: type = str) -> Any:
        try:
            return manifest_field(doc, path, file, kind)
        except TopologyError as exc:
            raise fail(str(exc).removeprefix("manifests/")) from None

    cluster = field_of(kind_cfg, "name", "kind-cluster.yaml")
    subnet = field_of(kind_cfg, "networking.podSubnet", "kind-cluster.yaml")
    roles = [field_of(n, "role", "kind-cluster.yaml")
             for n in field_of(kind_cfg, "nodes", "kind-cluster.yaml", list)]
    images = [n.get("image", "") for n in kind_cfg["nodes"]]
    network = field_of(cfg, "netConf.Network", "flannel.yaml")
    backend = field_of(cfg, "netConf.Backend.Type", "flannel.yaml")
    if network != subnet:
        raise fail(f"flannel.yaml: `netConf.Network` {network} must be kind's podSubnet "
                   f"{subnet} (kube-flannel.yml's net-conf.json and kubeadm agree)")
    if backend != "vxlan":
        raise fail(f"flannel.yaml: `netConf.Backend.Type` {backend!r}: the replica builds "
                   "the vxlan backend only")
    try:
        pod_net = ipaddress.ip_network(subnet)
    except ValueError as exc:
        raise fail(f"kind-cluster.yaml: bad podSubnet {subnet!r}") from exc
    wanted = node_names(cluster, roles)
    placed = field_of(replica, "nodes", "replica.yaml", dict)
    if sorted(placed) != sorted(wanted):
        raise fail(f"replica.yaml: `nodes` must be exactly kind's node names for {cluster!r}: "
                   f"{', '.join(wanted)} (found: {', '.join(placed) or 'none'})")
    nodes = []
    for name, role, image in zip(wanted, roles, images, strict=True):
        ip = field_of(placed[name], "ip", "replica.yaml")
        node_subnet = field_of(placed[name], "subnet", "replica.yaml")
        mac = field_of(placed[name], "vtepMAC", "replica.yaml").lower()
        try:
            in_underlay = ipaddress.ip_address(ip) in ipaddress.ip_network("172.18.0.0/16")
            net = ipaddress.ip_network(node_subnet)
        except ValueError as exc:
            raise fail(f"replica.yaml: node {name}: {exc}") from exc
        if not in_underlay:
            raise fail(f"replica.yaml: node {name}: {ip} is not in 172.18.0.0/16")
        if not net.subnet_of(pod_net) or net.prefixlen != 24:  # type: ignore[arg-type]
            raise fail(f"replica.yaml: node {name}: subnet {node_subnet} is not a /24 of "
                       f"{subnet} (kube-controller-manager's --node-cidr-mask-size)")
        octets = mac.split(":")
        if len(octets) != 6 or not all(len(o) == 2 for o in octets) or \
                any(c not in "0123456789abcdef" for o in octets for c in o) or \
                int(octets[0], 16) & 3 != 2:
            raise fail(f"replica.yaml: node {name}: vtepMAC {mac!r} is not a locally "
                       "administered unicast MAC (like the kernel's random ones)")
        nodes.append(NodeSpec(name=name, role=role, image=image, ip=ip, block=node_subnet,
                              vtep_mac=mac, ip6=underlay6_address(ip)))
    if len({n.block for n in nodes}) != len(nodes):
        raise fail("replica.yaml: two nodes share a subnet")

    namespace = deploy.get("metadata", {}).get("namespace", "default")
    replicas = field_of(deploy, "spec.replicas", "app-deployment.yaml", int)
    labels = field_of(deploy, "spec.template.metadata.labels", "app-deployment.yaml", dict)
    containers = field_of(deploy, "spec.template.spec.containers", "app-deployment.yaml", list)
    listed = field_of(replica, "pods", "replica.yaml", list)
    if len(listed) != replicas:
        raise fail(f"replica.yaml: lists {len(listed)} pods but the Deployment in "
                   f"{shown}/app-deployment.yaml asks for {replicas} replicas")
    # host-local hands out addresses in order from .2 (.1 is cni0's): what the plugin will
    # give, written down so a test can tell if it gives something else.
    next_free = {n.name: iter(list(ipaddress.ip_network(n.block).hosts())[1:]) for n in nodes}
    pods = []
    for entry in listed:
        name = field_of(entry, "name", "replica.yaml")
        node = field_of(entry, "node", "replica.yaml")
        if node not in next_free:
            raise fail(f"replica.yaml: pod {name} is on {node!r}, which is not a node "
                       f"({', '.join(wanted)})")
        pods.append(PodSpec(name=name, namespace=namespace, node=node,
                            ip=str(next(next_free[node])), labels=dict(labels),
                            image=containers[0].get("image", "")))
    if len({p.name for p in pods}) != len(pods):
        raise fail("replica.yaml: two pods share a name")
    digest = hashlib.sha256()
    for file in FLANNEL_FILES:
        if file == "flannel.yaml":
            shaping = {"version": cfg.get("version"), "netConf": cfg.get("netConf")}
            content = json.dumps(shaping, sort_keys=True).encode()
        else:
            content = (directory / file).read_bytes()
        digest.update(file.encode() + b"\0" + content)
    return Topology(
        cluster=cluster, pod_subnet=subnet, calico_version="", ipip_mode="", vxlan_mode="",
        nodes=tuple(nodes), pods=tuple(pods), fingerprint=digest.hexdigest(), cni="flannel",
        flannel_version=field_of(cfg, "version", "flannel.yaml"), lab=where,
    )
