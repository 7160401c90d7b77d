# The container images the real cluster's manifests name, assembled from built parts and Debian.
"""What each image holds, and under which name it is imported.

No registry is reachable, so every image the cluster pulls is made here: the binaries of
built parts (:mod:`.catalog`), files the upstream image takes from its own source tree
(read from the verified module, as calico/node's runit scripts), and the files of Debian
packages installed on this machine where the upstream image has its distribution's.
Each is tagged with **the name the manifest uses** (``k8s.gcr.io/pause:3.6``,
``docker.io/calico/node:v3.23.2``), so the manifests apply unchanged and nothing is ever
pulled; its labels and annotations record what every file came from.

An image is an :class:`ImageSpec`: its name, the parts it reads, the Debian packages of
its base layer (built here, so their versions are part of the image's key), and a compose
function that gets :class:`Inputs` and returns the :class:`~.oci.Image`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .gobuild import module_folder
from .oci import Image, ImageConfig, Layer, write_archive
from .recipe import MODULES
from .rootfs import RootFS

if TYPE_CHECKING:
    from .recipe import AssembleWork


@dataclass(frozen=True)
class Inputs:
    """What a compose function may read."""

    part: Callable[[str], Path]
    """The folder of a built part: ``part("kubernetes") / "kubelet"``."""
    source: Callable[[str], str]
    """A built part's source as recorded: ``k8s.io/kubernetes@v1.23.4``."""
    module: Callable[[str, str], Path]
    """``module(wrapper, path)``: the folder of a module the wrapper requires, downloaded
    and verified against the wrapper's go.sum."""
    base: RootFS | None = None
    """The Debian layer the spec asks for (``ImageSpec.debian``), if any."""


def _binaries(root: RootFS, inputs: Inputs, part: str, where: str,
              names: Sequence[str], mode: int = 0o755) -> None:
    for name in names:
        root.add_file(f"{where}/{name}", inputs.part(part) / name,
                      source=inputs.source(part), mode=mode)


def _image(name: str, layers: Sequence[tuple[RootFS, str]], version: str, url: str,
           **config: object) -> Image:
    top = layers[-1][0]
    labels = {**top.labels(), "org.opencontainers.image.version": version,
              "org.opencontainers.image.source": url,
              "labkit.image": "assembled by labkit from built parts and Debian packages, "
                              "not the registry's image"}
    return Image(name, [Layer(root.entries(), comment) for root, comment in layers],
                 ImageConfig(labels=labels, **config),  # type: ignore[arg-type]
                 annotations=top.annotations())


def _static(inputs: Inputs, name: str, part: str, binary: str, where: str,
            version: str, url: str, **config: object) -> Image:
    """One static binary on an empty root (the distroless images of Kubernetes)."""
    root = RootFS()
    root.add_base_files()
    _binaries(root, inputs, part, where, [binary])
    return _image(name, [(root, f"{binary} ({inputs.source(part)})")], version, url,
                  **config)


def debian_layer(packages: Sequence[str], alternatives: Sequence[str] = ()) -> RootFS:
    """A layer of Debian packages as installed here, with their libraries."""
    root = RootFS()
    root.add_base_files()
    for package in packages:
        root.add_debian_package(package)
    for name in alternatives:
        root.add_alternative(name)
    return root


def _base(inputs: Inputs) -> RootFS:
    assert inputs.base is not None, "the spec names no Debian packages"
    return inputs.base


K8S = "https://github.com/kubernetes/kubernetes"
# iptables as this machine's Debian chooses it (nft on Debian 12): kube-proxy and Felix
# must agree with the kubelet, which runs the node's own iptables.
IPTABLES_ALTERNATIVES = ("iptables", "ip6tables")


def pause(inputs: Inputs) -> Image:
    return _static(inputs, "k8s.gcr.io/pause:3.6", "pause", "pause", "", "3.6",
                   K8S + "/tree/master/build/pause", entrypoint=("/pause",),
                   user="65535:65535")


def _control_plane(binary: str) -> Callable[[Inputs], Image]:
    def compose(inputs: Inputs) -> Image:
        return _static(inputs, f"k8s.gcr.io/{binary}:v1.23.4", "kubernetes", binary,
                       "/usr/local/bin", "v1.23.4", K8S,
                       entrypoint=(f"/usr/local/bin/{binary}",))
    compose.__qualname__ = compose.__name__ = binary.replace("-", "_")
    return compose


def etcd(inputs: Inputs) -> Image:
    root = RootFS()
    root.add_base_files()
    _binaries(root, inputs, "etcd", "/usr/local/bin", ["etcd", "etcdctl"])
    root.add_directory("/var/lib/etcd", mode=0o700)
    return _image("k8s.gcr.io/etcd:3.5.1-0", [(root, "etcd, etcdctl")], "3.5.1",
                  "https://github.com/etcd-io/etcd", entrypoint=("/usr/local/bin/etcd",))


def coredns(inputs: Inputs) -> Image:
    return _static(inputs, "k8s.gcr.io/coredns/coredns:v1.8.6", "coredns", "coredns", "",
                   "v1.8.6", "https://github.com/coredns/coredns", entrypoint=("/coredns",),
                   cmd=("-conf", "/etc/coredns/Corefile"))


def kube_proxy(inputs: Inputs) -> Image:
    base = _base(inputs)
    top = RootFS(below=base)
    _binaries(top, inputs, "kubernetes", "/usr/local/bin", ["kube-proxy"])
    return _image("k8s.gcr.io/kube-proxy:v1.23.4",
                  [(base, "debian: iptables ipset conntrack kmod"), (top, "kube-proxy")],
                  "v1.23.4", K8S, entrypoint=("/usr/local/bin/kube-proxy",))


CALICO = "github.com/projectcalico/calico"
CALICO_URL = "https://github.com/projectcalico/calico"
CALICO_VERSION = "v3.23.2"
# calico/node's runit services that a VXLAN or BIRD cluster enables (rc.local picks).
NODE_SERVICES = ("felix", "monitor-addresses", "allocate-tunnel-addrs",
                 "node-status-reporter", "cni", "confd", "bird", "bird6", "calico-bgp-daemon")


def _module_tree(root: RootFS, folder: Path, into: str, source: str,
                 executable: bool = False) -> None:
    """Every file under ``folder`` at ``into``; module zips keep no exec bits, so the
    scripts the upstream image runs get them back (``executable``)."""
    for here, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name == ".gitkeep":
                continue
            path = Path(here, name)
            relative = path.relative_to(folder).as_posix()
            root.add_file(f"{into}/{relative}", path, source=source,
                          mode=0o755 if executable else 0o644)


def calico_node(inputs: Inputs) -> Image:
    """calico/node without BIRD (not a Go module; Debian's BIRD rejects confd's
    configuration), bpftool and the eBPF objects: what a VXLAN cluster runs."""
    base = _base(inputs)
    module = inputs.module("calico", CALICO)
    source = f"{CALICO}@{inputs.source('calico').rsplit('@', 1)[-1]}"
    top = RootFS(below=base)
    _binaries(top, inputs, "calico", "/bin", ["calico-node"], mode=0o4755)
    filesystem = module / "node" / "filesystem"
    _module_tree(top, filesystem / "sbin", "/usr/sbin", source, executable=True)
    top.add_file("/etc/rc.local", filesystem / "etc" / "rc.local", source=source, mode=0o755)
    for name in ("calico/felix.cfg", "nsswitch.conf"):
        top.add_file(f"/etc/{name}", filesystem / "etc" / name, source=source)
    for service in NODE_SERVICES:
        _module_tree(top, filesystem / "etc" / "service" / "available" / service,
                     f"/etc/service/available/{service}", source, executable=True)
    confd = module / "confd" / "etc" / "calico" / "confd"
    for sub in ("conf.d", "templates"):
        _module_tree(top, confd / sub, f"/etc/calico/confd/{sub}", source)
    top.add_directory("/etc/calico/confd/config")
    for mount in ("/var/lib/calico", "/var/run/calico", "/var/log/calico/cni",
                  "/host/etc/cni/net.d", "/lib/modules", "/sys/fs"):
        top.add_directory(mount)
    return _image(f"docker.io/calico/node:{CALICO_VERSION}",
                  [(base, "debian: shell, runit, iptables, ipset, conntrack, iproute2, "
                          "net-tools, kmod"), (top, "calico-node and its runit tree")],
                  CALICO_VERSION, CALICO_URL, cmd=("start_runit",),
                  env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                       "SVDIR=/etc/service/enabled"))


# The reference plugins calico/cni carries (its Makefile's CNI_VERSION v1.1.1 = Debian's).
CNI_IN_CALICO = ("loopback", "host-local", "portmap", "tuning", "bandwidth")


def calico_cni(inputs: Inputs) -> Image:
    root = RootFS()
    root.add_base_files()
    for name in ("install", "calico", "calico-ipam"):
        # One binary that acts by its name, copied three times as the upstream image does.
        root.add_file(f"/opt/cni/bin/{name}", inputs.part("calico") / "calico",
                      source=inputs.source("calico"), mode=0o755)
    for name in CNI_IN_CALICO:
        root.add_file(f"/opt/cni/bin/{name}", inputs.part("cni-plugins") / name,
                      source=inputs.source("cni-plugins"), mode=0o755)
    return _image(f"docker.io/calico/cni:{CALICO_VERSION}",
                  [(root, "calico CNI plugin and the reference plugins it ships")],
                  CALICO_VERSION, CALICO_URL, cmd=("/opt/cni/bin/install",),
                  working_dir="/opt/cni/bin",
                  env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                       ":/opt/cni/bin",))


def calico_kube_controllers(inputs: Inputs) -> Image:
    root = RootFS()
    root.add_base_files()
    _binaries(root, inputs, "calico", "/usr/bin", ["kube-controllers", "check-status"])
    for path in ("/status/status.json", "/profiles/mem.pprof", "/profiles/cpu.pprof"):
        root.add_bytes(path, b"", source="calico kube-controllers/Dockerfile.amd64")
    return _image(f"docker.io/calico/kube-controllers:{CALICO_VERSION}",
                  [(root, "kube-controllers, check-status")], CALICO_VERSION, CALICO_URL,
                  entrypoint=("/usr/bin/kube-controllers",))


NETTOOL_USERS = {
    "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n"
                   "tcpdump:x:103:106::/nonexistent:/usr/sbin/nologin\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "/etc/group": "root:x:0:\ntcpdump:x:106:\nnogroup:x:65534:\n",
}


def nettool(inputs: Inputs) -> Image:
    """A stand-in for the seed's ``burlyluo/nettool`` (Docker Hub, not reachable): the
    tools the seed types in its pods, from Debian's packages."""
    base = _base(inputs)
    users = RootFS(below=base, libraries=False)
    # tcpdump drops to its own user, which Debian's package makes in its postinst.
    for name, text in NETTOOL_USERS.items():
        users.add_bytes(name, text.encode(), source="debian: tcpdump's postinst (adduser)")
    return _image("docker.io/burlyluo/nettool:latest",
                  [(base, "debian: bash iproute2 ping arping tcpdump curl net-tools"),
                   (users, "the tcpdump user")],
                  "stand-in", "https://hub.docker.com/r/burlyluo/nettool",
                  cmd=("/bin/sleep", "infinity"))


@dataclass(frozen=True)
class ImageSpec:
    """One image: what it is called, which parts it reads, how it is composed."""

    ref: str
    needs: tuple[str, ...]
    compose: Callable[[Inputs], Image]
    debian: tuple[str, ...] = ()
    """The packages of its Debian layer, as installed on this machine."""
    alternatives: tuple[str, ...] = ()
    """Debian alternatives made in that layer, as this machine chose them."""


IMAGES: dict[str, ImageSpec] = {
    "pause": ImageSpec("k8s.gcr.io/pause:3.6", ("pause",), pause),
    "etcd": ImageSpec("k8s.gcr.io/etcd:3.5.1-0", ("etcd",), etcd),
    "kube-apiserver": ImageSpec("k8s.gcr.io/kube-apiserver:v1.23.4", ("kubernetes",),
                                _control_plane("kube-apiserver")),
    "kube-controller-manager": ImageSpec("k8s.gcr.io/kube-controller-manager:v1.23.4",
                                         ("kubernetes",),
                                         _control_plane("kube-controller-manager")),
    "kube-scheduler": ImageSpec("k8s.gcr.io/kube-scheduler:v1.23.4", ("kubernetes",),
                                _control_plane("kube-scheduler")),
    "kube-proxy": ImageSpec("k8s.gcr.io/kube-proxy:v1.23.4", ("kubernetes",), kube_proxy,
                            ("iptables", "ipset", "conntrack", "kmod"), IPTABLES_ALTERNATIVES),
    "coredns": ImageSpec("k8s.gcr.io/coredns/coredns:v1.8.6", ("coredns",), coredns),
    "calico-node": ImageSpec(f"docker.io/calico/node:{CALICO_VERSION}", ("calico",),
                             calico_node,
                             ("bash", "dash", "coreutils", "sed", "grep", "findutils",
                              "debianutils", "hostname", "runit", "iptables", "ipset",
                              "conntrack", "iproute2", "net-tools", "kmod", "procps"),
                             # start_runit runs `which runsvdir`: Debian's `which` is an
                             # alternative of debianutils' which.debianutils.
                             (*IPTABLES_ALTERNATIVES, "which")),
    "calico-cni": ImageSpec(f"docker.io/calico/cni:{CALICO_VERSION}",
                            ("calico", "cni-plugins"), calico_cni),
    "calico-kube-controllers": ImageSpec(f"docker.io/calico/kube-controllers:{CALICO_VERSION}",
                                         ("calico",), calico_kube_controllers),
    "nettool": ImageSpec("docker.io/burlyluo/nettool:latest", (), nettool,
                         ("bash", "dash", "coreutils", "iproute2", "iputils-ping",
                          "iputils-arping", "tcpdump", "curl", "net-tools", "procps", "grep",
                          "sed", "hostname")),
}
"""Every image of the Calico cluster, by the part name it is cached under (``image-NAME``)."""


def maker(spec: ImageSpec) -> Callable[[AssembleWork], None]:
    """The ``make`` of the part holding ``spec``'s image: ``image.tar`` (an OCI archive
    ``ctr images import`` takes) and ``image.json`` (its name and digests)."""

    def make(work: AssembleWork) -> None:
        base = debian_layer(spec.debian, spec.alternatives) if spec.debian else None
        inputs = Inputs(part=work.part, source=work.source,
                        module=lambda wrapper, path: module_folder(MODULES / wrapper, path),
                        base=base)
        written = write_archive(work.out / "image.tar", [spec.compose(inputs)])[0]
        (work.out / "image.json").write_text(json.dumps({
            "name": written.name, "id": written.config_digest,
            "manifest": written.manifest_digest, "layers": list(written.layer_digests),
        }, indent=2) + "\n", encoding="utf-8")

    make.__qualname__ = make.__name__ = f"image_{spec.compose.__name__}"
    return make
