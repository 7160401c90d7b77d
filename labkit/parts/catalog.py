# The parts of the seed's real cluster: one recipe each, at the versions the seed ran.
"""The recipes, by name, in the order ``labkit parts build`` builds them.

To add a part: a wrapper module under ``modules/<name>/`` (go.mod requiring the module
at the exact version, ``go mod tidy`` with a tools.go naming its mains, go.mod and go.sum
committed), then a :class:`~.recipe.GoBuild` here; a Debian package's binaries are a
:class:`~.recipe.Debian`.
"""

from __future__ import annotations

from .kubernetes import generate_openapi
from .recipe import MODULES, CBuild, Debian, GoBuild, Recipe

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
)}
