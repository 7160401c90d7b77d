# What the real-cluster labs (kind, native) take from a lab's manifests: cluster, CNI, Deployment.
"""The kind and native labs' view of a manifests folder, read through the schema all labs share.

:func:`load` checks the folder with :mod:`labkit.model.manifests` (the pydantic schema
the netns replica reads too: a mistake stops here with the file as read, the line and
the key path) and wraps the checked objects in :class:`Settings`, which only names what
the kind lab uses from them; nothing here reads a manifest again.  What the schema
cannot see is the file each lab downloads (Calico's manifest, kube-flannel.yml):
:func:`calico_objects` and :func:`flannel_objects` check those against the manifests.
A lab's CNI is the file beside its ``kind-cluster.yaml``: ``calico.yaml`` or
``flannel.yaml``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...model import calico, manifests
from ...model.errors import LabError
from ...model.topology import MANIFESTS, default_manifests

CALICO_GROUP = "crd.projectcalico.org"
FLANNEL_NAMESPACE = "kube-flannel"
"""Where kube-flannel.yml (v0.20+) puts its DaemonSet ``kube-flannel-ds``."""
FLANNEL_DAEMONSET = "kube-flannel-ds"
FLANNEL_CONFIGMAP = "kube-flannel-cfg"


class SettingsError(LabError):
    """A file the kind lab downloads is not what the lab's manifests say it should be."""


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
    file: str
    """The manifest that holds the pin, as it was read (:func:`shown`)."""
    pin_command: str = "labkit pin"
    """What records the pin (``labkit pin flannel`` for Flannel's)."""


def shown(path: Path) -> str:
    """A manifest as messages name it: ``manifests/flannel/flannel.yaml`` for this checkout's
    own, else the path that was read (``$LABKIT_MANIFESTS/calico.yaml``...)."""
    try:
        return str(path.relative_to(MANIFESTS.parent))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Settings:
    """What the kind lab uses of a lab's manifests, all of it from the checked schema."""

    spec: manifests.Manifests

    @property
    def directory(self) -> Path:
        return self.spec.directory

    @property
    def cni(self) -> str:
        """``calico`` or ``flannel``: which of the two the lab installs."""
        return self.spec.cni

    @property
    def cluster(self) -> str:
        """The kind cluster's name, and the prefix of its node names."""
        return self.spec.kind_cluster.name

    @property
    def kind_config(self) -> dict[str, Any]:
        """``kind-cluster.yaml`` as parsed; the file itself is what ``kind create`` gets."""
        return dict(self.spec.raw("kind_cluster"))

    @property
    def kind_config_path(self) -> Path:
        return self.spec.documents["kind_cluster"].path

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(self.spec.kind_cluster.node_names())

    @property
    def node_images(self) -> tuple[str, ...]:
        return tuple(node.image for node in self.spec.kind_cluster.nodes)

    @property
    def pod_subnet(self) -> str:
        return self.spec.kind_cluster.networking.podSubnet

    @property
    def pin_path(self) -> Path:
        """The file ``labkit pin`` writes the CNI manifest's sha256 into (and calicoctl's)."""
        return self.spec.documents["calico"].path

    @property
    def manifest(self) -> Download:
        """The CNI's install: Calico's manifest, or kube-flannel.yml."""
        config = self.spec.calico
        if isinstance(config, manifests.FlannelConfig):
            return Download("kube-flannel.yml", config.manifest.url, config.manifest.sha256,
                            "manifest.sha256", shown(self.pin_path), "labkit pin flannel")
        return Download("the Calico manifest", config.manifest.url, config.manifest.sha256,
                        "manifest.sha256", shown(self.pin_path))

    @property
    def calicoctl(self) -> dict[str, Download]:
        """By architecture (``amd64``, ``arm64``); empty when calico.yaml does not ask for it."""
        config = self.spec.calico
        if isinstance(config, manifests.FlannelConfig) or config.calicoctl is None:
            return {}
        return {arch: Download(f"calicoctl ({arch})", config.calicoctl.url.format(arch=arch),
                               pin, f"calicoctl.sha256.{arch}", shown(self.pin_path))
                for arch, pin in config.calicoctl.sha256.items()}

    @property
    def _calico(self) -> manifests.CalicoConfig:
        config = self.spec.calico
        if isinstance(config, manifests.FlannelConfig):
            raise LabError(f"{shown(self.pin_path)}: a Flannel lab has no Calico pool")
        return config

    @property
    def _flannel(self) -> manifests.FlannelConfig | None:
        config = self.spec.calico
        return config if isinstance(config, manifests.FlannelConfig) else None

    @property
    def calico_version(self) -> str:
        """``v3.23.5``; empty for a Flannel lab."""
        return "" if self._flannel else self._calico.version

    @property
    def ipip_mode(self) -> str:
        return self._calico.pool.ipipMode

    @property
    def vxlan_mode(self) -> str:
        return self._calico.pool.vxlanMode

    @property
    def block_size(self) -> int:
        return self._calico.pool.blockSize

    @property
    def flannel_version(self) -> str:
        """``v0.22.0``; empty for a Calico lab."""
        flannel = self._flannel
        return flannel.version if flannel else ""

    @property
    def network(self) -> str:
        """Flannel's net-conf.json ``Network`` (``flannel.yaml``'s ``netConf.Network``)."""
        flannel = self._flannel
        return flannel.netConf.Network if flannel else ""

    @property
    def bridge(self) -> Path:
        """The ``bridge`` CNI plugin copied onto every node of a Flannel lab."""
        flannel = self._flannel
        if flannel is None:
            raise LabError(f"{shown(self.pin_path)}: only a Flannel lab copies `bridge`")
        return Path(flannel.bridge)

    @property
    def encapsulation(self) -> str:
        """``IPIP``, ``IPIPCrossSubnet``, ``VXLAN`` or ``None``, as Calico's operator says it.

        A Flannel lab's backend is vxlan (the schema allows no other).
        """
        if self._flannel:
            return "VXLAN"
        return calico.encapsulation(self.ipip_mode, self.vxlan_mode)

    @property
    def deployment(self) -> dict[str, Any]:
        """``app-deployment.yaml`` as parsed: what the API server gets."""
        return dict(self.spec.raw("deployment"))

    @property
    def namespace(self) -> str:
        return self.spec.deployment.metadata.namespace

    @property
    def app(self) -> str:
        return self.spec.deployment.metadata.name

    @property
    def app_labels(self) -> dict[str, str]:
        return dict(self.spec.deployment.spec.selector.matchLabels)

    @property
    def replicas(self) -> int:
        return self.spec.deployment.spec.replicas

    @property
    def container(self) -> str:
        """The Deployment's (first) container: where commands in a pod run."""
        return self.spec.deployment.spec.template.spec.containers[0].name


def load(directory: Path | None = None) -> Settings:
    """The lab in ``directory`` (default :func:`~labkit.model.topology.default_manifests`),
    checked by the schema both labs share; :class:`~labkit.model.errors.ManifestError`
    naming the file as read, the line and the key if it is bad."""
    return Settings(manifests.load(directory or default_manifests()))


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
            f"{settings.manifest.name} runs {', '.join(wrong)}, but {settings.manifest.file} "
            f"says {settings.calico_version}"
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
