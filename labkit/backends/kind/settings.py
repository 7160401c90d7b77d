# What the kind lab reads from a lab's manifests: kind config, CNI install, Deployment.
"""Load and check the three manifests the kind lab applies.

The netns replica reads the same files through :mod:`labkit.model.topology`; this
module checks what only a real cluster depends on (no default CNI, a pinned
Calico or Flannel manifest, a Deployment the API server will accept) and
reports every mistake with the file and the key, before anything is created.
A lab's CNI is the file beside its ``kind-cluster.yaml`` (:func:`labkit.model.labs.cni`):
``calico.yaml`` or ``flannel.yaml``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ...model import calico, labs, manifests
from ...model.topology import (
    MANIFESTS,
    TopologyError,
    default_manifests,
    manifest_field,
    node_names,
    read_manifest,
)

SHA256 = re.compile(r"[0-9a-f]{64}")
MODES = ("Always", "CrossSubnet", "Never")
CALICO_GROUP = "crd.projectcalico.org"
FLANNEL_NAMESPACE = "kube-flannel"
"""Where kube-flannel.yml (v0.20+) puts its DaemonSet ``kube-flannel-ds``."""
FLANNEL_DAEMONSET = "kube-flannel-ds"
FLANNEL_CONFIGMAP = "kube-flannel-cfg"


class SettingsError(TopologyError):
    """A manifest the kind lab needs is missing, malformed, or asks for something it cannot do."""


@dataclass(frozen=True)
class Download:
    """A file fetched from the internet and trusted only if its sha256 is the pinned one."""

    name: str
    """What it is, in the words of the messages (``the Calico manifest``)."""
    url: str
    sha256: str | None
    """Lowercase hex; ``None`` until someone pins it (``labkit pin``)."""
    key: str
    """Where the pin lives in its manifest (``manifest.sha256``)."""
    file: str = "manifests/calico.yaml"
    """The manifest that holds the pin, as messages name it."""
    pin_command: str = "labkit pin"
    """What records the pin (``labkit pin flannel`` for Flannel's)."""


@dataclass(frozen=True)
class Settings:
    """Everything the kind lab takes from ``manifests/``."""

    directory: Path
    cluster: str
    """The kind cluster's name, and the prefix of its node names."""
    kind_config: dict[str, Any]
    """``kind-cluster.yaml`` as parsed; the file itself is what ``kind create`` gets."""
    node_names: tuple[str, ...]
    node_images: tuple[str, ...]
    pod_subnet: str
    calico_version: str
    manifest: Download
    calicoctl: dict[str, Download] = field(default_factory=dict)
    """By architecture (``amd64``, ``arm64``); empty when calico.yaml does not ask for it."""
    ipip_mode: str = "Always"
    vxlan_mode: str = "Never"
    block_size: int = 26
    deployment: dict[str, Any] = field(default_factory=dict)
    cni: str = "calico"
    """``calico`` or ``flannel``: which of the two the lab installs."""
    flannel_version: str = ""
    network: str = ""
    """Flannel's net-conf.json ``Network`` (``flannel.yaml``'s ``netConf.Network``)."""
    bridge: Path | None = None
    """The ``bridge`` CNI plugin copied onto every node of a Flannel lab."""

    @property
    def kind_config_path(self) -> Path:
        return self.directory / "kind-cluster.yaml"

    @property
    def pin_path(self) -> Path:
        """The file ``labkit pin`` writes the manifest's sha256 into."""
        return self.directory / f"{self.cni}.yaml"

    @property
    def encapsulation(self) -> str:
        """``IPIP``, ``IPIPCrossSubnet``, ``VXLAN`` or ``None``, as Calico's operator says it.

        A Flannel lab's backend is vxlan (checked by :func:`load`).
        """
        if self.cni == "flannel":
            return "VXLAN"
        return calico.encapsulation(self.ipip_mode, self.vxlan_mode)

    @property
    def namespace(self) -> str:
        return str(self.deployment["metadata"].get("namespace", "default"))

    @property
    def app(self) -> str:
        return str(self.deployment["metadata"]["name"])

    @property
    def app_labels(self) -> dict[str, str]:
        labels = self.deployment["spec"]["selector"]["matchLabels"]
        return {str(k): str(v) for k, v in labels.items()}

    @property
    def replicas(self) -> int:
        return int(self.deployment["spec"]["replicas"])

    @property
    def container(self) -> str:
        """The Deployment's (first) container: where commands in a pod run."""
        return str(self.deployment["spec"]["template"]["spec"]["containers"][0]["name"])


def _read(directory: Path, name: str) -> Any:
    return read_manifest(directory, name, SettingsError)


def _get(doc: Any, path: str, file: str, kind: type = str) -> Any:
    return manifest_field(doc, path, file, kind, SettingsError)


def _pin(value: Any, key: str, file: str = "manifests/calico.yaml") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not SHA256.fullmatch(value.lower()):
        raise SettingsError(
            f"{file}: `{key}` should be 64 hex digits (a sha256) or null, "
            f"not {value!r}"
        )
    return value.lower()


def _kind_config(doc: Any) -> tuple[str, list[str], list[str], str]:
    file = "kind-cluster.yaml"
    if _get(doc, "kind", file) != "Cluster" or not str(
        _get(doc, "apiVersion", file)
    ).startswith("kind.x-k8s.io/"):
        raise SettingsError(
            f"manifests/{file}: not a kind cluster config (want `kind: Cluster`, "
            "`apiVersion: kind.x-k8s.io/v1alpha4`)"
        )
    cluster = _get(doc, "name", file)
    if _get(doc, "networking.disableDefaultCNI", file, bool) is not True:
        # kind's own CNI (kindnet) would fight Calico for the pods' interfaces and routes.
        raise SettingsError(
            f"manifests/{file}: `networking.disableDefaultCNI` must be true, so that Calico "
            "is the only CNI (as in the seed's setup script)"
        )
    subnet = _get(doc, "networking.podSubnet", file)
    nodes = _get(doc, "nodes", file, list)
    roles = []
    for node in nodes:
        role = _get(node, "role", file)
        if role not in ("control-plane", "worker"):
            raise SettingsError(f"manifests/{file}: node role {role!r} is not control-plane/worker")
        roles.append(role)
    if roles.count("control-plane") != 1:
        raise SettingsError(f"manifests/{file}: the lab needs exactly one control-plane node")
    images = [str(n.get("image", "")) for n in nodes]
    if not all(images):
        raise SettingsError(
            f"manifests/{file}: give every node an `image` (the seed pins kindest/node:v1.23.4), "
            "so that the cluster does not change with the installed kind version"
        )
    return cluster, roles, images, subnet


def _deployment(doc: Any) -> dict[str, Any]:
    file = "app-deployment.yaml"
    if _get(doc, "kind", file) != "Deployment" or _get(doc, "apiVersion", file) != "apps/v1":
        raise SettingsError(f"manifests/{file}: should be an apps/v1 Deployment")
    _get(doc, "metadata.name", file)
    replicas = _get(doc, "spec.replicas", file, int)
    if replicas < 1:
        raise SettingsError(f"manifests/{file}: `spec.replicas` should be at least 1")
    selector = _get(doc, "spec.selector.matchLabels", file, dict)
    labels = _get(doc, "spec.template.metadata.labels", file, dict)
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        # The API server rejects a Deployment whose selector does not match its template.
        raise SettingsError(
            f"manifests/{file}: `spec.selector.matchLabels` {selector} must be among the "
            f"template's labels {labels}"
        )
    containers = _get(doc, "spec.template.spec.containers", file, list)
    if not containers or not all(isinstance(c, dict) and c.get("name") and c.get("image")
                                 for c in containers):
        raise SettingsError(f"manifests/{file}: every container needs a `name` and an `image`")
    return dict(doc)


def _calicoctl(doc: dict[str, Any]) -> dict[str, Download]:
    entry = doc.get("calicoctl")
    if entry is None:
        return {}
    url = _get(entry, "url", "calico.yaml")
    pins = _get(entry, "sha256", "calico.yaml", dict)
    return {
        arch: Download(f"calicoctl ({arch})", url.format(arch=arch),
                       _pin(value, f"calicoctl.sha256.{arch}"), f"calicoctl.sha256.{arch}")
        for arch, value in pins.items()
    }


def load(directory: Path | None = None) -> Settings:
    """Read and check the manifests; raise :class:`~labkit.model.errors.ManifestError` naming the
    file, line and key (the schema both labs share, :mod:`labkit.model.manifests`), then what only
    the kind lab needs, as :class:`SettingsError`."""
    directory = directory or default_manifests()
    manifests.load(directory)
    if labs.cni(directory) == "flannel":
        return _load_flannel(directory)
    kind_config = _read(directory, "kind-cluster.yaml")
    cluster, roles, images, subnet = _kind_config(kind_config)
    calico = _read(directory, "calico.yaml")
    version = _get(calico, "version", "calico.yaml")
    if not re.fullmatch(r"v\d+\.\d+\.\d+", version):
        raise SettingsError(f"manifests/calico.yaml: `version` should look like v3.23.5, "
                            f"not {version!r}")
    url = _get(calico, "manifest.url", "calico.yaml")
    if not url.startswith("https://"):
        raise SettingsError("manifests/calico.yaml: `manifest.url` should be an https:// address")
    if "sha256" not in calico["manifest"]:
        raise SettingsError("manifests/calico.yaml: missing `manifest.sha256` (null until pinned)")
    manifest = Download("the Calico manifest", url,
                        _pin(calico["manifest"]["sha256"], "manifest.sha256"), "manifest.sha256")
    ipip = _get(calico, "pool.ipipMode", "calico.yaml")
    vxlan = _get(calico, "pool.vxlanMode", "calico.yaml")
    for key, mode in (("ipipMode", ipip), ("vxlanMode", vxlan)):
        if mode not in MODES:
            raise SettingsError(f"manifests/calico.yaml: `pool.{key}` should be one of "
                                f"{', '.join(MODES)}, not {mode!r}")
    if ipip != "Never" and vxlan != "Never":
        raise SettingsError("manifests/calico.yaml: a pool cannot use IPIP and VXLAN at once")
    block = _get(calico, "pool.blockSize", "calico.yaml", int)
    return Settings(
        directory=directory,
        cluster=cluster,
        kind_config=kind_config,
        node_names=tuple(node_names(cluster, roles)),
        node_images=tuple(images),
        pod_subnet=subnet,
        calico_version=version,
        manifest=manifest,
        calicoctl=_calicoctl(calico),
        ipip_mode=ipip,
        vxlan_mode=vxlan,
        block_size=block,
        deployment=_deployment(_read(directory, "app-deployment.yaml")),
    )


def calico_objects(text: str, settings: Settings) -> list[dict[str, Any]]:
    """The Calico manifest's objects, with the pool set as ``calico.yaml`` asks.

    The manifest is checked for what the lab relies on (a calico-node DaemonSet
    running the pinned version) so that a wrong file fails here, with a
    message, rather than as a cluster that never becomes ready.
    """
    try:
        objects = [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as exc:
        raise SettingsError(f"{settings.manifest.name} is not valid YAML ({exc})") from exc
    node = next((o for o in objects if o.get("kind") == "DaemonSet"
                 and o.get("metadata", {}).get("name") == "calico-node"), None)
    if node is None:
        raise SettingsError(f"{settings.manifest.name} ({settings.manifest.url}) has no "
                            "calico-node DaemonSet: it is not Calico's manifest install")
    images = [c.get("image", "") for o in objects if o.get("kind") in ("DaemonSet", "Deployment")
              for c in (*o["spec"]["template"]["spec"].get("initContainers", []),
                        *o["spec"]["template"]["spec"]["containers"])]
    wrong = sorted({i for i in images if "calico/" in i and not i.endswith(":" +
                                                                          settings.calico_version)})
    if wrong:
        raise SettingsError(
            f"{settings.manifest.name} runs {', '.join(wrong)}, but manifests/calico.yaml says "
            f"{settings.calico_version}"
        )
    wanted = {
        "CALICO_IPV4POOL_IPIP": settings.ipip_mode,
        "CALICO_IPV4POOL_VXLAN": settings.vxlan_mode,
        "CALICO_IPV4POOL_BLOCK_SIZE": str(settings.block_size),
    }
    container = next(c for c in node["spec"]["template"]["spec"]["containers"]
                     if c.get("name") == "calico-node")
    env = container.setdefault("env", [])
    for name, value in wanted.items():
        entry = next((e for e in env if e.get("name") == name), None)
        if entry is None:
            env.append({"name": name, "value": value})
        else:
            entry.pop("valueFrom", None)
            entry["value"] = value
    return objects


def _shown(directory: Path, name: str) -> str:
    """``manifests/flannel/flannel.yaml``: a manifest as messages name it."""
    try:
        return str((directory / name).relative_to(MANIFESTS.parent))
    except ValueError:
        return str(directory / name)


def _load_flannel(directory: Path) -> Settings:
    """A Flannel lab: kind-cluster.yaml, flannel.yaml (kube-flannel.yml's pin, bridge), the app."""
    kind_config = _read(directory, "kind-cluster.yaml")
    cluster, roles, images, subnet = _kind_config(kind_config)
    file = "flannel.yaml"
    shown = _shown(directory, file)
    flannel = _read(directory, file)
    version = _get(flannel, "version", file)
    if not re.fullmatch(r"v\d+\.\d+\.\d+", version):
        raise SettingsError(f"{shown}: `version` should look like v0.22.0, not {version!r}")
    url = _get(flannel, "manifest.url", file)
    if not url.startswith("https://"):
        raise SettingsError(f"{shown}: `manifest.url` should be an https:// address")
    if "sha256" not in flannel["manifest"]:
        raise SettingsError(f"{shown}: missing `manifest.sha256` (null until pinned)")
    manifest = Download("kube-flannel.yml", url,
                        _pin(flannel["manifest"]["sha256"], "manifest.sha256", shown),
                        "manifest.sha256", file=shown, pin_command="labkit pin flannel")
    network = _get(flannel, "netConf.Network", file)
    backend = _get(flannel, "netConf.Backend.Type", file)
    if backend != "vxlan":
        raise SettingsError(f"{shown}: `netConf.Backend.Type` is {backend!r}; the lab is "
                            "Flannel's vxlan backend (FIDELITY.md)")
    if network != subnet:
        # flanneld hands out the podCIDRs kube-controller-manager allocated from podSubnet.
        raise SettingsError(f"{shown}: `netConf.Network` {network} differs from "
                            f"kind-cluster.yaml's `networking.podSubnet` {subnet}")
    return Settings(
        directory=directory,
        cluster=cluster,
        kind_config=kind_config,
        node_names=tuple(node_names(cluster, roles)),
        node_images=tuple(images),
        pod_subnet=subnet,
        calico_version="",
        manifest=manifest,
        deployment=_deployment(_read(directory, "app-deployment.yaml")),
        cni="flannel",
        flannel_version=version,
        network=network,
        bridge=Path(_get(flannel, "bridge", file)),
    )


def flannel_objects(text: str, settings: Settings) -> list[dict[str, Any]]:
    """kube-flannel.yml's objects, checked for what the lab relies on.

    A kube-flannel DaemonSet in namespace kube-flannel running the pinned
    flannel version, and a net-conf.json whose Network and backend are the
    lab's, so that a wrong file fails here, before kind runs.
    """
    name = settings.manifest.name
    try:
        objects = [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as exc:
        raise SettingsError(f"{name} is not valid YAML ({exc})") from exc
    daemonset = next((o for o in objects if o.get("kind") == "DaemonSet"
                      and o.get("metadata", {}).get("name") == FLANNEL_DAEMONSET), None)
    if daemonset is None or daemonset["metadata"].get("namespace") != FLANNEL_NAMESPACE:
        raise SettingsError(f"{name} ({settings.manifest.url}) has no {FLANNEL_DAEMONSET} "
                            f"DaemonSet in namespace {FLANNEL_NAMESPACE}: it is not "
                            "kube-flannel.yml (v0.20 or later)")
    spec = daemonset["spec"]["template"]["spec"]
    images = [c.get("image", "") for c in (*spec.get("initContainers", []),
                                           *spec["containers"])]
    wrong = sorted({i for i in images if "flannel/flannel:" in i
                    and not i.endswith(":" + settings.flannel_version)})
    if wrong:
        raise SettingsError(f"{name} runs {', '.join(wrong)}, but {settings.manifest.file} "
                            f"says {settings.flannel_version}")
    config = next((o for o in objects if o.get("kind") == "ConfigMap"
                   and o.get("metadata", {}).get("name") == FLANNEL_CONFIGMAP), None)
    try:
        net_conf = json.loads(((config or {}).get("data") or {})["net-conf.json"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SettingsError(f"{name} has no readable net-conf.json in ConfigMap "
                            f"{FLANNEL_CONFIGMAP} ({exc!r})") from exc
    have = (net_conf.get("Network"), (net_conf.get("Backend") or {}).get("Type"))
    if have != (settings.network, "vxlan"):
        raise SettingsError(f"{name}'s net-conf.json is Network {have[0]}, backend {have[1]}; "
                            f"{settings.manifest.file} says {settings.network}, vxlan")
    return objects
