# The cluster both labs build, read from manifests/ (one source of truth).
"""Load a lab's manifests folder into a :class:`Topology`, what the netns replica builds.

The files are read and checked by :mod:`labkit.model.manifests` (the one schema both
labs use); this module only turns them into nodes and pods with addresses.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import calico, flannel
from .kind import (
    UNDERLAY,
    UNDERLAY6,
    UNDERLAY6_GATEWAY,
    UNDERLAY_GATEWAY,
    node_names,
    underlay6_address,
)

__all__ = ["NodeSpec", "PodSpec", "Topology", "default_manifests", "from_json", "load",
           "node_names", "to_json"]

CLUSTER_FILE = "kind-cluster.yaml"
"""The file that makes a folder a lab's manifests (kind's own config)."""


def default_manifests(project: Path | None = None) -> Path:
    """Where a lab's spec is when nobody says: ``$LABKIT_MANIFESTS``, else ``project``'s
    ``manifests/``, else the nearest ``manifests/`` at or above the working directory (the
    project labkit runs in, as git finds its repository), else the one beside labkit's own
    source.  Read at each call, so that every command honours the variable."""
    if os.environ.get("LABKIT_MANIFESTS"):
        return Path(os.environ["LABKIT_MANIFESTS"]).absolute()
    if project is not None:
        return project / "manifests"
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "manifests" / CLUSTER_FILE).is_file():
            return folder / "manifests"
    return Path(__file__).resolve().parents[2] / "manifests"


MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
"""This checkout's own manifests (tests copy them); commands use :func:`default_manifests`."""


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
    given_ip: bool = False
    """``ip`` is replica.yaml's, not the next in IPAM's order: the Flannel replica asks
    host-local for it (``CNI_ARGS`` ``IP=``), as it would not hand it out by itself."""

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
    gateway: str = UNDERLAY_GATEWAY
    underlay: str = UNDERLAY
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
    """The lab's name (its manifests folder; see :mod:`labkit.model.labs`)."""
    app_namespace: str = "default"
    """The Deployment's namespace: its pods are the chapters' (the others are the cluster's)."""

    @property
    def encapsulation(self) -> str:
        """What the pool asks for: ``IPIP``, ``IPIPCrossSubnet``, ``VXLAN`` or ``None``."""
        return calico.encapsulation(self.ipip_mode, self.vxlan_mode)

    def node(self, name: str) -> NodeSpec:
        return self._nodes_by_name[name]

    def listed_pods(self) -> list[PodSpec]:
        """The order ``lab.pods`` lists them in, as the real clusters' inventories do: the
        Deployment's pods first (chapters that take ``lab.pods[0]`` get a pod with a shell,
        not CoreDNS's), each group by address, which on one node is their start order."""
        return sorted(self.pods, key=lambda p: (p.namespace != self.app_namespace,
                                                ipaddress.IPv4Address(p.ip)))

    def pod(self, name: str) -> PodSpec:
        return self._pods_by_name[name]

    # Building a lab asks for every node and pod by name: a scan each time made it quadratic.
    @functools.cached_property
    def _nodes_by_name(self) -> dict[str, NodeSpec]:
        return {n.name: n for n in self.nodes}

    @functools.cached_property
    def _pods_by_name(self) -> dict[str, PodSpec]:
        return {p.name: p for p in self.pods}


def _lab_name(directory: Path) -> str:
    from . import labs

    if (directory.parent / CLUSTER_FILE).is_file() and labs.NAME.match(directory.name):
        return directory.name
    return labs.DEFAULT


def load(directory: Path | None = None) -> Topology:
    """The lab ``directory`` (default :func:`default_manifests`) describes; raise
    :class:`~labkit.model.errors.ManifestError` naming the file, line and key if it is bad."""
    # The schema only here: importing pydantic and building its models is most of a netns
    # agent's start-up, and the agent gets the topology already made (:func:`from_json`).
    from . import manifests

    spec = manifests.load(directory or default_manifests())
    cluster = spec.kind_cluster
    lab = _lab_name(spec.directory)
    template = spec.deployment.spec.template
    if isinstance(spec.calico, manifests.FlannelConfig):
        flannel_nodes = {name: node for name, node in spec.replica.nodes.items()
                         if not isinstance(node, manifests.ReplicaNode)}
        nodes = tuple(
            NodeSpec(name=name, role=node.role, image=node.image, ip=flannel_nodes[name].ip,
                     block=flannel_nodes[name].subnet, vtep_mac=flannel_nodes[name].vtepMAC,
                     ip6=underlay6_address(flannel_nodes[name].ip))
            for name, node in zip(cluster.node_names(), cluster.nodes, strict=True))
        # host-local hands out addresses in order from .2 (.1 is cni0's): what the plugin
        # will give, written down so a test can tell if it gives something else. An address
        # replica.yaml gives (`ip`) is the pod's, and the others skip it.
        given = {pod.ip for pod in spec.replica.pods if pod.ip}
        free: dict[str, Iterator[object]] = {
            n.name: iter([a for a in flannel.pod_addresses(n.block) if str(a) not in given])
            for n in nodes}
        shaping = {"version": spec.calico.version,
                   "netConf": spec.calico.netConf.model_dump()}
        settings: dict[str, str] = {"calico_version": "", "ipip_mode": "", "vxlan_mode": "",
                                    "cni": "flannel", "flannel_version": spec.calico.version}
    else:
        calico_nodes = {name: node for name, node in spec.replica.nodes.items()
                        if isinstance(node, manifests.ReplicaNode)}
        firsts = [NodeSpec(name=name, role=node.role, image=node.image,
                           ip=calico_nodes[name].ip, block=calico_nodes[name].block,
                           ip6=underlay6_address(calico_nodes[name].ip))
                  for name, node in zip(cluster.node_names(), cluster.nodes, strict=True)]
        pool = spec.calico.pool
        try:
            mode = calico.encapsulation(pool.ipipMode, pool.vxlanMode)
        except calico.PoolModeError as exc:  # a real pool allows it; the replica cannot build it
            raise spec.documents["calico"].error(("pool",), str(exc)) from None
        # calico-node takes the first block's first address for the tunnel device; with no
        # tunnel (a plain BGP pool) there is none, and the first pod gets it. A full block
        # makes IPAM claim the next free one, as Calico's does.
        ipam = calico.Ipam(cluster.networking.podSubnet, {n.name: n.block for n in firsts},
                           tunnel=bool(calico.tunnel_device(mode)))
        for index, pod in enumerate(spec.replica.pods):  # given addresses first (`ip`)
            if pod.ip:
                try:
                    ipam.take(pod.node, pod.ip)
                except ValueError as exc:
                    raise spec.documents["replica"].error(("pods", index, "ip"),
                                                          str(exc)) from None
        addresses = []
        for index, pod in enumerate(spec.replica.pods):
            if pod.ip:
                addresses.append(pod.ip)
                continue
            try:
                addresses.append(ipam.assign(pod.node))
            except ValueError as exc:
                raise spec.documents["replica"].error(("pods", index, "node"), str(exc)) from None
        nodes = tuple(dataclasses.replace(n, blocks=tuple(ipam.blocks[n.name])) for n in firsts)
        free = {n.name: iter([a for a, p in zip(addresses, spec.replica.pods, strict=True)
                              if p.node == n.name]) for n in nodes}
        shaping = {"version": spec.calico.version, "pool": pool.model_dump()}
        settings = {"calico_version": spec.calico.version, "ipip_mode": pool.ipipMode,
                    "vxlan_mode": pool.vxlanMode, "cni": "calico"}
    container = template.spec.containers[0].image
    pods = tuple(
        # An entry with a namespace of its own is one of the cluster's pods (coredns...).
        PodSpec(name=pod.name, namespace=pod.namespace or spec.deployment.metadata.namespace,
                node=pod.node, ip=pod.ip or str(next(free[pod.node])), given_ip=bool(pod.ip),
                labels=dict(pod.labels or {}) if pod.namespace else
                dict(template.metadata.labels),
                image=(pod.image or "") if pod.namespace else container)
        for pod in spec.replica.pods
    )
    digest = hashlib.sha256()
    files = manifests.FLANNEL_FILES if spec.cni == "flannel" else manifests.FILES
    for part, name in files.items():
        if part == "calico":
            # Only what shapes the cluster: pinning a download's checksum (the kind lab's
            # business) must not make every recorded output look stale.
            content = json.dumps(shaping, sort_keys=True).encode()
        else:
            content = (spec.directory / name).read_bytes()
        digest.update(name.encode() + b"\0" + content)
    replica = spec.replica
    return Topology(
        cluster=cluster.name,
        pod_subnet=cluster.networking.podSubnet,
        nodes=nodes,
        pods=pods,
        fingerprint=digest.hexdigest(),
        ipip_fallback=(replica.ipipFallback or "") if isinstance(replica, manifests.Replica)
        else "",
        lab=lab,
        app_namespace=spec.deployment.metadata.namespace,
        **settings,
    )


def to_json(topo: Topology) -> str:
    """``topo`` as JSON, for a process that must not read and check the manifests again."""
    return json.dumps(dataclasses.asdict(topo))


def from_json(text: str) -> Topology:
    """The :class:`Topology` :func:`to_json` wrote."""
    fields: dict[str, Any] = json.loads(text)
    nodes = tuple(NodeSpec(**{**n, "blocks": tuple(n["blocks"])}) for n in fields.pop("nodes"))
    pods = tuple(PodSpec(**p) for p in fields.pop("pods"))
    return Topology(**fields, nodes=nodes, pods=pods)
