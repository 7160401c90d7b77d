# The parts of the seed's real cluster: one recipe each, at the versions the seed ran.
"""The recipes, by name, in the order ``labkit parts build`` builds them.

To add a part: a wrapper module under ``modules/<name>/`` (go.mod requiring the module
at the exact version, ``go mod tidy`` with a tools.go naming its mains, go.mod and go.sum
committed), then a :class:`~.recipe.GoBuild` here; a Debian package's binaries are a
:class:`~.recipe.Debian`.
"""

from __future__ import annotations

from . import flannel_images, images, render
from .kubernetes import generate_openapi
from .recipe import MODULES, Assembled, CBuild, Debian, GoBuild, Recipe

KUBERNETES_VERSION = "v1.23.4"
KUBERNETES_COMMIT = "e6c093d87ea4cbb530a7b2ae91e54c0842d8308a"
KUBERNETES_BUILD_DATE = "2022-02-16T12:38:05Z"
"""The v1.23.4 release's own build date, so the binaries report what the release's do."""


def _kubernetes_version_flags() -> tuple[str, ...]:
    """``-X`` flags that set what ``--version`` prints, as Kubernetes' hack/lib/version.sh
    does; without them kubeadm refuses to run (``v0.0.0-master``)."""
    major, minor = KUBERNETES_VERSION.removeprefix("v").split(".")[:2]
    values = {"gitVersion": KUBERNETES_VERSION, "gitMajor": major, "gitMinor": minor,
              "gitCommit": KUBERNETES_COMMIT, "gitTreeState": "clean",
              "buildDate": KUBERNETES_BUILD_DATE}
    return tuple(f"-X {package}.{key}={value}"
                 for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
                 for key, value in values.items())


KUBERNETES = GoBuild(
    name="kubernetes",
    version=KUBERNETES_VERSION,
    source=f"k8s.io/kubernetes@{KUBERNETES_VERSION}",
    module=MODULES / "kubernetes",
    mains=tuple((f"k8s.io/kubernetes/cmd/{binary}", binary) for binary in (
        "kubectl", "kubeadm", "kubelet", "kube-apiserver", "kube-controller-manager",
        "kube-scheduler", "kube-proxy")),
    ldflags=("-s", "-w", *_kubernetes_version_flags()),
    prepare=generate_openapi,
)

PAUSE = CBuild(
    name="pause",
    version="3.6",
    source=f"k8s.io/kubernetes@{KUBERNETES_VERSION}:build/pause/linux/pause.c",
    module=MODULES / "kubernetes",
    from_module="k8s.io/kubernetes",
    file="build/pause/linux/pause.c",
    output="pause",
    # build/pause/Makefile: TAG 3.6 and REV `git describe --contains --always --match='v*'`,
    # which at the v1.23.4 tag's commit is the tag.
    cflags=("-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v3.6-{KUBERNETES_VERSION}"),
)


ETCD = GoBuild(
    name="etcd",
    version="v3.5.1",
    source="go.etcd.io/etcd/server/v3@v3.5.1",
    module=MODULES / "etcd",
    mains=(("go.etcd.io/etcd/server/v3", "etcd"), ("go.etcd.io/etcd/etcdctl/v3", "etcdctl")),
    # etcd's build.sh: the short hash of the v3.5.1 tag's commit (d42e8589e1305d89...).
    ldflags=("-X", "go.etcd.io/etcd/api/v3/version.GitSHA=d42e8589e"),
)

COREDNS = GoBuild(
    name="coredns",
    version="v1.8.6",
    source="github.com/coredns/coredns@v1.8.6",
    module=MODULES / "coredns",
    mains=(("github.com/coredns/coredns", "coredns"),),
    # CoreDNS's Makefile: `git describe --dirty --always`; v1.8.6 is a lightweight tag, so
    # it is the short hash of 13a9191efb0574cc92ed5ffd55a1f144b840d668.
    ldflags=("-s", "-w", "-X", "github.com/coredns/coredns/coremain.GitCommit=13a9191"),
)

CALICO_MODULE = "github.com/projectcalico/calico"
CALICO_COMMIT = "a52cb86dbaad269c80cbb7d7f17ec9c829e34a8d"
"""Calico v3.23.2's tag: the nearest v3.23 the proxy serves (v3.23.5 is refused)."""


def _calico_version_flags() -> tuple[str, ...]:
    """What Calico's Makefiles set (node, cni-plugin, calicoctl, kube-controllers); an -X
    for a package a binary does not link is ignored, so one set serves every main. The build
    date is the commit's, so the build is reproducible (Calico's was the wall clock)."""
    values = {
        "node/pkg/lifecycle/startup.VERSION": images.CALICO_VERSION,
        "node/buildinfo.GitVersion": images.CALICO_VERSION,
        "node/buildinfo.BuildDate": "2022-06-23T22:26:45+0000",
        "node/buildinfo.GitRevision": CALICO_COMMIT,
        "calicoctl/calicoctl/commands.VERSION": images.CALICO_VERSION,
        # What the released calicoctl prints: nine hex digits.
        "calicoctl/calicoctl/commands.GIT_REVISION": CALICO_COMMIT[:9],
        "calicoctl/calicoctl/commands/common.VERSION": images.CALICO_VERSION,
    }
    return ("-s", "-w", *(f"-X {CALICO_MODULE}/{key}={value}" for key, value in values.items()),
            f"-X main.VERSION={images.CALICO_VERSION}")


CALICO = GoBuild(
    name="calico",
    version=images.CALICO_VERSION,
    source=f"{CALICO_MODULE}@v1.11.0-cni-plugin.0.20220623222645-a52cb86dbaad",
    module=MODULES / "calico",
    mains=((f"{CALICO_MODULE}/node/cmd/calico-node", "calico-node"),
           (f"{CALICO_MODULE}/cni-plugin/cmd/calico", "calico"),
           (f"{CALICO_MODULE}/calicoctl/calicoctl", "calicoctl"),
           (f"{CALICO_MODULE}/kube-controllers/cmd/kube-controllers", "kube-controllers"),
           (f"{CALICO_MODULE}/kube-controllers/cmd/check-status", "check-status")),
    ldflags=_calico_version_flags(),
)

FLANNEL = GoBuild(
    name="flannel",
    version="v0.22.0",
    source="github.com/flannel-io/flannel@v0.22.0",
    module=MODULES / "flannel",
    mains=(("github.com/flannel-io/flannel", "flanneld"),),
    # amd64 builds with cgo (the udp backend), linked static as Flannel's Makefile does.
    env=(("CGO_ENABLED", "1"),),
    ldflags=("-s", "-w", "-X github.com/flannel-io/flannel/pkg/version.Version=v0.22.0",
             "-extldflags", "-static"),
)

FLANNEL_CNI = GoBuild(
    name="flannel-cni",
    version="v0.9.1",
    source="github.com/containernetworking/plugins@v0.9.1#plugins/meta/flannel",
    module=MODULES / "flannel-cni",
    mains=(("github.com/containernetworking/plugins/plugins/meta/flannel", "flannel"),),
    ldflags=("-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion"
             "=v0.9.1",),
)

CRICTL = GoBuild(
    name="crictl",
    version="v1.34.0",
    source="sigs.k8s.io/cri-tools@v1.34.0",
    module=MODULES / "cri-tools",
    mains=(("sigs.k8s.io/cri-tools/cmd/crictl", "crictl"),),
    ldflags=("-X sigs.k8s.io/cri-tools/pkg/version.Version=v1.34.0",),
)

HELM = GoBuild(
    name="helm",
    version="v3.7.0",
    source="helm.sh/helm/v3@v3.7.0",
    module=MODULES / "helm",
    mains=(("helm.sh/helm/v3/cmd/helm", "helm"),),
    ldflags=("-s", "-w", *(f"-X helm.sh/helm/v3/{key}" for key in (
        "internal/version.version=v3.7.0",
        "internal/version.gitCommit=eeac83883cb4014fe60267ec6373570374ce770b",
        "internal/version.gitTreeState=clean",
        "pkg/lint/rules.k8sVersionMajor=1", "pkg/lint/rules.k8sVersionMinor=22",
        "pkg/chartutil.k8sVersionMajor=1", "pkg/chartutil.k8sVersionMinor=22"))),
)

MANIFESTS = (
    Assembled(name="calico-manifests", version=images.CALICO_VERSION,
              source=f"{CALICO_MODULE}@{CALICO_COMMIT[:12]}:calico/_includes/charts/calico "
                     "rendered by helm v3.7.0",
              needs=("helm",), debian=("ruby",), make=render.calico_manifests),
    Assembled(name="flannel-manifests", version="v0.22.0",
              source="github.com/flannel-io/flannel@v0.22.0:" + render.FLANNEL_MANIFEST,
              make=render.flannel_manifest),
    Assembled(name="kind-manifests", version="v0.12.0",
              source="sigs.k8s.io/kind@v0.12.0:" + render.KIND_STORAGE,
              make=render.kind_storage_manifest),
)

IMAGES = (
    *(Assembled(name=f"image-{name}", version=spec.ref.rsplit(":", 1)[1], source=spec.ref,
                needs=spec.needs, debian=spec.debian, make=images.maker(spec))
      for name, spec in images.IMAGES.items()),
    # The Flannel cluster's; the CNI plugin's part records what it holds (v0.9.1), not the tag.
    *(Assembled(name=f"image-{name}",
                version=flannel_images.HOLDS.get(name, spec.ref.rsplit(":", 1)[1]),
                source=spec.ref, needs=spec.needs, debian=spec.debian,
                make=flannel_images.maker(spec))
      for name, spec in flannel_images.IMAGES.items()),
)


def _debian(name: str, package: str, *files: str) -> Debian:
    return Debian(name=name, package=package, files=files)


_IPTABLES = [f"/usr/sbin/{family}{suffix}" for family in ("iptables", "ip6tables")
             for suffix in ("", "-save", "-restore", "-legacy", "-legacy-save",
                            "-legacy-restore", "-nft", "-nft-save", "-nft-restore")]
_CNI = ("bandwidth", "bridge", "dhcp", "firewall", "host-device", "host-local", "ipvlan",
        "loopback", "macvlan", "portmap", "ptp", "sbr", "static", "tuning", "vlan", "vrf")

RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (
    KUBERNETES,
    PAUSE,
    ETCD,
    COREDNS,
    CALICO,
    FLANNEL,
    FLANNEL_CNI,
    CRICTL,
    HELM,
    # What kind's node image installs from its distribution, here from Debian's.
    _debian("containerd", "containerd", "/usr/bin/containerd",
            "/usr/bin/containerd-shim-runc-v2", "/usr/bin/ctr"),
    _debian("runc", "runc", "/usr/sbin/runc"),
    _debian("cni-plugins", "containernetworking-plugins", *(f"/usr/lib/cni/{p}" for p in _CNI)),
    _debian("iptables", "iptables", *_IPTABLES),
    _debian("ipset", "ipset", "/usr/sbin/ipset"),
    _debian("conntrack", "conntrack", "/usr/sbin/conntrack"),
    _debian("bird", "bird", "/usr/sbin/bird", "/usr/sbin/birdc", "/usr/sbin/bird6",
            "/usr/sbin/birdc6"),
    *MANIFESTS,
    *IMAGES,
)}
