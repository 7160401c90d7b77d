# The two images kube-flannel.yml v0.22.0 names, assembled from built parts and Debian.
"""``docker.io/flannel/flannel:v0.22.0`` and ``docker.io/flannel/flannel-cni-plugin:v1.1.2``.

Tagged with the names kube-flannel.yml uses, so the manifest applies unchanged: it sets no
``imagePullPolicy``, which for a tag other than ``latest`` is ``IfNotPresent``, and the
images are in every node's containerd before it is applied, so nothing is pulled.

A module of its own, not more entries in :mod:`.images`: a part's key covers the source of
the module that makes it, so Calico's images (and the native lab's containerd cache keyed
by them) stay as they were.

What differs from the registry's images, also in each image's labels:

- ``flannel``: upstream is Alpine with iproute2, net-tools, iptables (behind
  kubernetes-sigs' ``iptables-wrapper``, which picks legacy or nft by the rules the host
  already has), strongswan and wireguard-tools.  Here: Debian's iptables, iproute2,
  net-tools and coreutils (the ``install-cni`` init container runs ``cp``), with
  ``iptables`` the alternative this machine chose, as in kube-proxy's image, so flanneld's
  rules land in the same table as kube-proxy's and the kubelet's (the wrapper would pick
  that one too).  No strongswan or wireguard: the vxlan backend uses neither.
- ``flannel-cni-plugin``: the registry's v1.1.2 is flannel-io/cni-plugin, which the Go
  module proxy refuses; it forked from ``plugins/meta/flannel`` of
  containernetworking/plugins, and v0.9.1 of that (the ``flannel-cni`` part) is the binary
  at ``/flannel`` here.  Upstream's base is Alpine; here Debian's coreutils, for the
  ``cp`` its init container runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from . import images
from .images import ImageSpec, Inputs
from .oci import Image
from .recipe import AssembleWork
from .rootfs import RootFS

FLANNEL = "github.com/flannel-io/flannel"
FLANNEL_URL = "https://github.com/flannel-io/flannel"
FLANNEL_VERSION = "v0.22.0"
CNI_PLUGIN_TAG = "v1.1.2"
"""The tag kube-flannel.yml v0.22.0 names: flannel-io/cni-plugin's release."""
CNI_PLUGIN_HOLDS = "v0.9.1"
"""What the image really holds: containernetworking/plugins v0.9.1's flannel plugin."""
CNI_PLUGIN_URL = "https://github.com/containernetworking/plugins/tree/v0.9.1/plugins/meta/flannel"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _differs(image: Image, how: str) -> Image:
    """``image`` with a label saying how it differs from the registry's."""
    labels = {**image.config.labels, "labkit.differs": how}
    return replace(image, config=replace(image.config, labels=labels))


def flannel(inputs: Inputs) -> Image:
    """flanneld at ``/opt/bin/flanneld`` (the manifest's command) and mk-docker-opts.sh, as
    flannel's ``images/Dockerfile.amd64`` places them, over Debian's iptables."""
    base = inputs.base
    assert base is not None, "the spec names Debian packages"
    top = RootFS(below=base)
    top.add_file("/opt/bin/flanneld", inputs.part("flannel") / "flanneld",
                 source=inputs.source("flannel"), mode=0o755)
    module = inputs.module("flannel", FLANNEL)
    top.add_file("/opt/bin/mk-docker-opts.sh", module / "dist" / "mk-docker-opts.sh",
                 source=f"{FLANNEL}@{FLANNEL_VERSION}:dist/mk-docker-opts.sh", mode=0o755)
    image = images._image(  # the same labels as every image of the parts
        f"docker.io/flannel/flannel:{FLANNEL_VERSION}",
        [(base, "debian: coreutils, iptables (this machine's alternative), iproute2, "
                "net-tools"), (top, "flanneld, mk-docker-opts.sh")],
        FLANNEL_VERSION, FLANNEL_URL, entrypoint=("/opt/bin/flanneld",), env=(PATH_ENV,))
    return _differs(image, "Debian's iptables with this machine's alternative instead of "
                           "Alpine's behind iptables-wrapper; no strongswan or wireguard-tools "
                           "(the vxlan backend uses neither)")


def flannel_cni_plugin(inputs: Inputs) -> Image:
    """The flannel CNI plugin at ``/flannel``, which the init container copies with ``cp``."""
    base = inputs.base
    assert base is not None, "the spec names Debian packages"
    top = RootFS(below=base)
    top.add_file("/flannel", inputs.part("flannel-cni") / "flannel",
                 source=inputs.source("flannel-cni"), mode=0o755)
    image = images._image(
        f"docker.io/flannel/flannel-cni-plugin:{CNI_PLUGIN_TAG}",
        [(base, "debian: coreutils (cp)"),
         (top, f"flannel CNI plugin (containernetworking/plugins {CNI_PLUGIN_HOLDS})")],
        CNI_PLUGIN_HOLDS, CNI_PLUGIN_URL, env=(PATH_ENV,))
    return _differs(image, f"tagged {CNI_PLUGIN_TAG} as kube-flannel.yml names it, but "
                           f"/flannel is containernetworking/plugins {CNI_PLUGIN_HOLDS}'s "
                           "plugins/meta/flannel: the Go module proxy refuses "
                           "flannel-io/cni-plugin, which forked from it")


IMAGES: dict[str, ImageSpec] = {
    "flannel": ImageSpec(f"docker.io/flannel/flannel:{FLANNEL_VERSION}", ("flannel",),
                         flannel, ("coreutils", "iptables", "iproute2", "net-tools"),
                         images.IPTABLES_ALTERNATIVES),
    "flannel-cni-plugin": ImageSpec(f"docker.io/flannel/flannel-cni-plugin:{CNI_PLUGIN_TAG}",
                                    ("flannel-cni",), flannel_cni_plugin, ("coreutils",)),
}
"""The Flannel cluster's own images, by part name (``image-NAME``)."""

HOLDS = {"flannel-cni-plugin": CNI_PLUGIN_HOLDS}
"""The version an image's part records when it is not the image's tag."""


def maker(spec: ImageSpec) -> Callable[[AssembleWork], None]:
    """:func:`.images.maker`, defined here so that the part's key covers this module."""
    made = images.maker(spec)

    def make(work: AssembleWork) -> None:
        made(work)

    make.__qualname__ = make.__name__ = f"image_{spec.compose.__name__}"
    return make
