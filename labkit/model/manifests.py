# The manifests both labs are built from, described once as a pydantic schema.
"""One schema for a lab's manifests folder, read by the netns replica and the kind lab.

Each file has its model (:class:`KindCluster`, :class:`CalicoConfig`,
:class:`Deployment`, :class:`Replica`); :class:`Manifests` holds the four and
checks what they must agree on (kind's node names are the replica's, every
block lies in the pod subnet, a cluster would give no two nodes one address).
:func:`load` reads a folder with :mod:`labkit.model.yamlfile` (no duplicate keys) and
raises one :class:`~labkit.model.errors.ManifestError` naming the file as read, the
line, the key path and the problem.

To add a field, add it to its model with a type (and a default if older
folders lack it); a rule between files goes in :meth:`Manifests._agree`.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from . import flannel
from .errors import ManifestError
from .kind import UNDERLAY, UNDERLAY_GATEWAY, node_names
from .yamlfile import Document, read

FILES = {
    "kind_cluster": "kind-cluster.yaml",
    "calico": "calico.yaml",
    "deployment": "app-deployment.yaml",
    "replica": "replica.yaml",
}
"""Which file each part of :class:`Manifests` is read from, for a Calico lab."""
FLANNEL_FILES = {**FILES, "calico": "flannel.yaml"}
"""The same for a Flannel lab, whose CNI file is ``flannel.yaml`` (its part is ``cni``)."""

Mode = Literal["Always", "CrossSubnet", "Never"]
"""An IP pool's ``ipipMode`` / ``vxlanMode``, as Calico's IPPool resource spells them."""

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _dns_label(value: str) -> str:
    # What the API server demands of a pod's (and a node's) name: it becomes a hostname.
    if len(value) > 63:
        raise ValueError(f"{value!r} is {len(value)} characters long; a Kubernetes name "
                         "(a DNS-1123 label) has at most 63")
    if not _DNS_LABEL.fullmatch(value):
        raise ValueError(f"{value!r} is not a DNS-1123 label (lowercase letters, digits and "
                         "'-', starting and ending with a letter or digit)")
    return value


def _ipv4_address(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None


def _ipv4_network(value: str) -> str:
    try:
        network = ipaddress.ip_network(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network (address/prefix): {exc}") from None
    if network.version != 4:
        raise ValueError(f"{value} is IPv6; this lab's pool and blocks are IPv4")
    return str(network)


def _sha256(value: str) -> str:
    if not _SHA256.fullmatch(value.lower()):
        raise ValueError(f"should be 64 hex digits (a sha256) or null, not {value!r}")
    return value.lower()


def _https(value: str) -> str:
    if not value.startswith("https://"):
        raise ValueError(f"should be an https:// address, not {value!r}")
    return value


def _version(value: str) -> str:
    if not re.fullmatch(r"v\d+\.\d+\.\d+", value):
        raise ValueError(f"should look like v3.23.5, not {value!r}")
    return value


def _kind_api(value: str) -> str:
    if not value.startswith("kind.x-k8s.io/"):
        raise ValueError(f"should be kind.x-k8s.io/v1alpha4 (a kind cluster config), "
                         f"not {value!r}")
    return value


def _true_cni(value: bool) -> bool:
    if value is not True:
        # kind's own CNI (kindnet) would fight Calico for the pods' interfaces and routes.
        raise ValueError("must be true, so that Calico is the only CNI (as in the seed's "
                         "setup script)")
    return value


Name = Annotated[StrictStr, AfterValidator(_dns_label)]
IPv4 = Annotated[StrictStr, AfterValidator(_ipv4_address)]
IPv4Network = Annotated[StrictStr, AfterValidator(_ipv4_network)]
Sha256 = Annotated[StrictStr, AfterValidator(_sha256)]
Https = Annotated[StrictStr, AfterValidator(_https)]
Labels = dict[StrictStr, StrictStr]


class _Ours(BaseModel):
    """A file only labkit reads: a key it does not know is a typo."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Kubernetes(BaseModel):
    """A file kind or the API server reads too: keys labkit does not use are theirs."""

    model_config = ConfigDict(extra="allow", frozen=True)


# -- kind-cluster.yaml ---------------------------------------------------------------------


class KindNode(_Kubernetes):
    role: Literal["control-plane", "worker"]
    image: StrictStr = Field(min_length=1)
    """Pinned (the seed: kindest/node:v1.23.4) so the cluster does not change with kind."""


class KindNetworking(_Kubernetes):
    disableDefaultCNI: Annotated[StrictBool, AfterValidator(_true_cni)]
    podSubnet: IPv4Network
    """kubeadm's podSubnet, which is Calico's pool."""


class KindCluster(_Kubernetes):
    """``kind-cluster.yaml``: what ``kind create cluster --config`` gets."""

    kind: Literal["Cluster"]
    apiVersion: Annotated[StrictStr, AfterValidator(_kind_api)]
    name: Name
    networking: KindNetworking
    nodes: list[KindNode] = Field(min_length=1)

    @field_validator("nodes")
    @classmethod
    def _one_control_plane(cls, nodes: list[KindNode]) -> list[KindNode]:
        count = sum(n.role == "control-plane" for n in nodes)
        if count != 1:
            raise ValueError(f"the lab needs exactly one control-plane node, not {count}")
        return nodes

    def node_names(self) -> list[str]:
        """kind's names: ``<cluster>-control-plane``, ``<cluster>-worker``, ``-worker2``..."""
        return node_names(self.name, [n.role for n in self.nodes])


# -- calico.yaml ---------------------------------------------------------------------------


class Download(_Ours):
    url: Https
    sha256: Sha256 | None
    """Required, ``null`` until ``labkit pin`` records it."""


class Calicoctl(_Ours):
    url: Https
    """With ``{arch}`` where the architecture goes."""
    sha256: dict[StrictStr, Sha256 | None]


class Pool(_Ours):
    name: StrictStr
    blockSize: StrictInt = Field(ge=20, le=32)
    ipipMode: Mode
    vxlanMode: Mode

    @model_validator(mode="after")
    def _one_encapsulation(self) -> Pool:
        if self.ipipMode != "Never" and self.vxlanMode != "Never":
            raise ValueError(f"`ipipMode: {self.ipipMode}` with `vxlanMode: {self.vxlanMode}`: "
                             "Calico does not allow IPIP and VXLAN on the same pool; set one "
                             "of them to Never")
        return self


class CalicoConfig(_Ours):
    """``calico.yaml``: which Calico, where the kind lab gets it, and the IP pool."""

    version: Annotated[StrictStr, AfterValidator(_version)]
    manifest: Download
    calicoctl: Calicoctl | None = None
    pool: Pool


class FlannelBackend(_Ours):
    Type: Literal["vxlan"]
    """The replica builds flannel's vxlan backend only."""


class NetConf(_Ours):
    Network: IPv4Network
    Backend: FlannelBackend


class FlannelConfig(_Ours):
    """``flannel.yaml``: which Flannel, where the kind lab gets it, and its net-conf.json."""

    version: Annotated[StrictStr, AfterValidator(_version)]
    manifest: Download
    netConf: NetConf
    bridge: StrictStr = Field(default="/usr/lib/cni/bridge", min_length=1)
    """The ``bridge`` CNI plugin the kind lab copies onto every node (kind's node image has
    none); default: Debian's containernetworking-plugins'. The replica runs the plugins of
    the build machine itself."""


# -- app-deployment.yaml -------------------------------------------------------------------


class ObjectMeta(_Kubernetes):
    name: Name
    namespace: Name = "default"


class Container(_Kubernetes):
    name: Name
    image: StrictStr = Field(min_length=1)


class PodSpec(_Kubernetes):
    containers: list[Container] = Field(min_length=1)


class TemplateMeta(_Kubernetes):
    labels: Labels = Field(min_length=1)


class PodTemplate(_Kubernetes):
    metadata: TemplateMeta
    spec: PodSpec


class Selector(_Kubernetes):
    matchLabels: Labels = Field(min_length=1)


class DeploymentSpec(_Kubernetes):
    replicas: StrictInt = Field(ge=1)
    selector: Selector
    template: PodTemplate

    @model_validator(mode="after")
    def _selector_matches(self) -> DeploymentSpec:
        # The API server rejects a Deployment whose selector does not match its template.
        labels = self.template.metadata.labels
        if any(labels.get(k) != v for k, v in self.selector.matchLabels.items()):
            raise ValueError(f"selector.matchLabels {self.selector.matchLabels} must be among "
                             f"the template's labels {labels}")
        return self


class Deployment(_Kubernetes):
    """``app-deployment.yaml``: the seed's Deployment, as the kind lab applies it."""

    apiVersion: Literal["apps/v1"]
    kind: Literal["Deployment"]
    metadata: ObjectMeta
    spec: DeploymentSpec


# -- replica.yaml --------------------------------------------------------------------------


class ReplicaNode(_Ours):
    ip: IPv4
    """The node's ``eth0`` address on docker's network."""
    block: IPv4Network
    """The node's IPAM block; its first address is the tunnel's."""


class ReplicaPod(_Ours):
    name: Name
    node: StrictStr
    namespace: Name | None = None
    """Given only for the cluster's own pods (coredns...); the Deployment's pods are in its
    namespace."""
    labels: Labels | None = None
    """The cluster's own pods' labels (``k8s-app: kube-dns``)."""
    image: StrictStr | None = None
    ip: IPv4 | None = None
    """The address the pod got, where a real cluster gave it one out of line (left out, the
    next free one: IPAM's order).  A real cluster runs the CNI plugin for several pods at
    once, so a pod can make its veth first and still get the later address; the replica
    makes veths in the order pods are listed and gives each its ``ip``."""


class Replica(_Ours):
    """``replica.yaml``: what a real cluster decides at run time, fixed for the replica."""

    nodes: dict[StrictStr, ReplicaNode]
    pods: list[ReplicaPod]
    """The pods, in the order they were started (their veths made)."""
    ipipFallback: Literal["VXLAN"] | None = None
    """What the replica builds instead of IPIP on a kernel without the ``ipip`` module (the
    only mode that can stand in is VXLAN); left out, such a lab fails to start, saying why."""


def _vtep_mac(value: str) -> str:
    octets = value.lower().split(":")
    if len(octets) != 6 or not all(re.fullmatch(r"[0-9a-f]{2}", o) for o in octets) or \
            int(octets[0], 16) & 3 != 2:
        raise ValueError(f"{value!r} is not a locally administered unicast MAC (like the "
                         "kernel's random ones)")
    return value.lower()


class FlannelNode(_Ours):
    ip: IPv4
    subnet: IPv4Network
    """The node's podCIDR, a /24 (kube-controller-manager's --node-cidr-mask-size)."""
    vtepMAC: Annotated[StrictStr, AfterValidator(_vtep_mac)]
    """The MAC of the node's ``flannel.1``."""


class FlannelReplica(_Ours):
    """A Flannel lab's ``replica.yaml``."""

    nodes: dict[StrictStr, FlannelNode]
    pods: list[ReplicaPod]


# -- the folder ----------------------------------------------------------------------------


class Manifests(BaseModel):
    """A manifests folder, each file checked against its model and all four against each other."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    directory: Path
    kind_cluster: KindCluster
    cni: Literal["calico", "flannel"]
    """Which CNI the lab runs: the file beside kind-cluster.yaml says (calico.yaml or
    flannel.yaml)."""
    calico: CalicoConfig | FlannelConfig
    """The CNI's file (for a Flannel lab, :class:`FlannelConfig`; the part keeps its name)."""
    deployment: Deployment
    replica: Replica | FlannelReplica
    documents: dict[str, Document] = Field(repr=False, exclude=True)
    """Each file as read (by part name), for its raw content and its lines."""

    @model_validator(mode="after")
    def _agree(self) -> Manifests:
        replica = self.documents["replica"]
        wanted = self.kind_cluster.node_names()
        placed = list(self.replica.nodes)
        if sorted(placed) != sorted(wanted):
            stray = next((n for n in placed if n not in wanted), None)
            raise replica.error(
                ("nodes", stray) if stray else ("nodes",),
                f"must be exactly kind's node names for {self.kind_cluster.name!r}: "
                f"{', '.join(wanted)} (found: {', '.join(placed) or 'none'})")
        self._check_nodes(replica)
        self._check_pods(replica)
        return self

    def _check_nodes(self, replica: Document) -> None:
        underlay = ipaddress.IPv4Network(UNDERLAY)
        reserved = {str(underlay.network_address): "the network's own address",
                    str(underlay.broadcast_address): "the network's broadcast address",
                    UNDERLAY_GATEWAY: "the network's gateway"}
        pod_subnet = ipaddress.IPv4Network(self.kind_cluster.networking.podSubnet)
        cni_file = self.documents["calico"].path.name
        if isinstance(self.calico, FlannelConfig):
            size, key = 24, "subnet"
            network = self.calico.netConf.Network
            if network != str(pod_subnet):
                raise self.documents["calico"].error(
                    ("netConf", "Network"), f"{network} must be kind's podSubnet {pod_subnet} "
                    "(kube-flannel.yml's net-conf.json and kubeadm agree)")
        else:
            size, key = self.calico.pool.blockSize, "block"
        owner: dict[str, str] = {}
        blocks: dict[str, ipaddress.IPv4Network] = {}
        for name, node in self.replica.nodes.items():
            ip = ipaddress.IPv4Address(node.ip)
            if ip not in underlay:
                raise replica.error(("nodes", name, "ip"), f"{ip} is not in {UNDERLAY}")
            if node.ip in reserved:
                raise replica.error(("nodes", name, "ip"),
                                    f"{ip} is {reserved[node.ip]}, not a node's")
            if node.ip in owner:
                raise replica.error(("nodes", name, "ip"),
                                    f"{ip} is also {owner[node.ip]}'s address")
            owner[node.ip] = name
            block = ipaddress.IPv4Network(getattr(node, key))
            what = "block" if key == "block" else "subnet"
            if not block.subnet_of(pod_subnet):
                raise replica.error(("nodes", name, key),
                                    f"{what} {block} is not in the pod subnet {pod_subnet}")
            if block.prefixlen != size:
                why = (f"the pool's blockSize in {cni_file} is {size}" if key == "block" else
                       "kube-controller-manager's --node-cidr-mask-size is 24")
                raise replica.error(("nodes", name, key),
                                    f"{what} {block} is a /{block.prefixlen}, but {why}")
            other = next((n for n, b in blocks.items() if b.overlaps(block)), None)
            if other:
                raise replica.error(("nodes", name, key),
                                    f"{what} {block} overlaps {other}'s {what} {blocks[other]}")
            blocks[name] = block

    def _check_pods(self, replica: Document) -> None:
        replicas = self.deployment.spec.replicas
        listed = sum(pod.namespace is None for pod in self.replica.pods)
        if listed != replicas:
            raise replica.error(
                ("pods",), f"lists {listed} pods of the Deployment (entries without a "
                f"namespace) but {self.documents['deployment'].path.name} asks for "
                f"{replicas} replicas")
        seen: set[str] = set()
        taken: dict[str, str] = {}
        for index, pod in enumerate(self.replica.pods):
            if pod.node not in self.replica.nodes:
                raise replica.error(("pods", index, "node"),
                                    f"{pod.node!r} is not a node ({', '.join(self.replica.nodes)})")
            if pod.name in self.replica.nodes:
                raise replica.error(("pods", index, "name"),
                                    f"{pod.name!r} is a node's name; a pod needs its own")
            if pod.name in seen:
                raise replica.error(("pods", index, "name"),
                                    f"two pods are named {pod.name!r}")
            seen.add(pod.name)
            if pod.ip is not None:
                self._check_pod_ip(replica, index, pod, taken)
            # A full block is no mistake: the node claims the next free one, as Calico's
            # IPAM does (labkit.model.calico.Ipam); a Flannel node's /24 is all it gets.
            node = self.replica.nodes[pod.node]
            if isinstance(node, FlannelNode):
                room = len(flannel.pod_addresses(node.subnet))
                placed = sum(p.node == pod.node for p in self.replica.pods[:index + 1])
                if placed > room:
                    raise replica.error(
                        ("pods", index, "node"),
                        f"{pod.node}'s subnet {node.subnet} is full: it holds {room} pods "
                        "after flannel.1's, cni0's and the broadcast address")

    def _check_pod_ip(self, replica: Document, index: int, pod: ReplicaPod,
                      taken: dict[str, str]) -> None:
        """An address given: one its node's IPAM could hand out, and nobody else's."""
        address = ipaddress.IPv4Address(pod.ip)
        node = self.replica.nodes[pod.node]
        if isinstance(node, FlannelNode):
            fits = address in flannel.pod_addresses(node.subnet)
            where = f"{pod.node}'s subnet {node.subnet} (from .2, cni0 has .1)"
        else:
            # Whether the first is the tunnel's depends on the pool: Calico's IPAM (the
            # topology's) says so.
            fits = address in ipaddress.IPv4Network(node.block)
            where = f"{pod.node}'s block {node.block}"
        if not fits:
            raise replica.error(("pods", index, "ip"), f"{address} is not in {where}")
        if pod.ip in taken:
            raise replica.error(("pods", index, "ip"), f"{address} is also {taken[pod.ip]}'s")
        taken[str(pod.ip)] = pod.name

    def raw(self, part: str) -> Any:
        """A file's content as parsed (what the kind lab hands to kind or the API server)."""
        return self.documents[part].data


def _problem(error: Any) -> str:
    """A pydantic error in a reader's words."""
    kind, message = error["type"], str(error["msg"])
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "not a key this file has (a typo?)"
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    message = message.replace("Input should", "should")
    if kind in ("value_error", "assertion_error"):
        return message
    found = repr(error.get("input"))
    return f"{message}, not {found if len(found) <= 60 else found[:57] + '...'}"


def validate(model: type[BaseModel], document: Document) -> Any:
    """``document`` checked against ``model``; the first problem as a :class:`ManifestError`."""
    try:
        return model.model_validate({} if document.data is None else document.data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        problem = _problem(first)
        if document.data is None:
            problem += " (the file is empty)"
        elif len(errors) > 1:
            problem += f" (and {len(errors) - 1} more in this file)"
        raise document.error(first["loc"], problem) from None


def load(directory: Path) -> Manifests:
    """Read and check the manifests in ``directory``; raise :class:`ManifestError` if bad."""
    is_flannel = (directory / "flannel.yaml").is_file()
    if is_flannel and (directory / "calico.yaml").is_file():
        raise ManifestError(str(directory), 0, "", "a lab needs exactly one of calico.yaml or "
                            "flannel.yaml beside its kind-cluster.yaml (found 2)")
    files = FLANNEL_FILES if is_flannel else FILES
    documents = {part: read(directory / name) for part, name in files.items()}
    models: dict[str, type[BaseModel]] = {
        "kind_cluster": KindCluster, "calico": FlannelConfig if is_flannel else CalicoConfig,
        "deployment": Deployment, "replica": FlannelReplica if is_flannel else Replica}
    parts = {part: validate(model, documents[part]) for part, model in models.items()}
    return Manifests(directory=directory, documents=documents,
                     cni="flannel" if is_flannel else "calico", **parts)
