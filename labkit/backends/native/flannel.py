# Flannel's half of the native lab: kube-flannel.yml v0.22.0 applied to the kubeadm cluster.
"""What the native lab does for a Flannel lab (``manifests/flannel/``) after ``kubeadm join``.

As the kind lab does for the same cluster: the control plane's taint removed, the
``bridge`` CNI plugin copied onto every node (``docker cp`` there), kube-flannel.yml
applied as Flannel's module has it, unchanged.  Then the real flanneld DaemonSet
writes ``/run/flannel/subnet.env``, makes ``flannel.1`` and programs the other nodes'
neighbours, fdb entries and routes; the flannel CNI plugin its init container copies
hands each pod to ``bridge`` and ``host-local``.

kind's node image keeps only the host-local, ptp, portmap and loopback plugins, while a
native node's ``/opt/cni/bin`` starts as Debian's whole set (an overlay over
``/usr/lib/cni``): the other plugins are removed from the node's overlay first (the host's
files stay), so the node lacks ``bridge`` as kind's does, and the copy is what gives it.

What differs from the seed's Flannel cluster, and why (also in ``info["notes"]``): see
:data:`NOTES`.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ... import parts
from ..cluster import inventory
from ..cluster.settings import FLANNEL_DAEMONSET, FLANNEL_NAMESPACE, Settings, flannel_objects
from .bringup import (
    NO_LOCAL_PATH,
    Progress,
    Step,
    kubectl,
    kubectl_json,
    listing_order,
    must,
    sh,
)
from .nodes import Lab

IMAGES = ("pause", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
          "kube-proxy", "coredns", "flannel", "flannel-cni-plugin", "nettool")
"""The image parts a Flannel lab's containerd holds (``image-NAME``): no Calico."""
NEEDED_PARTS = ("flannel-manifests", *(f"image-{name}" for name in IMAGES))
MANIFEST = "kube-flannel.yml"
KIND_PLUGINS = ("host-local", "ptp", "portmap", "loopback")
"""What kind v0.12.0's node image keeps of the CNI plugins (its base image's Dockerfile)."""
NOTES = [
    "kube-flannel.yml v0.22.0 from Flannel's module, applied unchanged; flanneld v0.22.0 "
    "built from github.com/flannel-io/flannel@v0.22.0",
    "the flannel CNI plugin is containernetworking/plugins v0.9.1's plugins/meta/flannel, in "
    "an image tagged docker.io/flannel/flannel-cni-plugin:v1.1.2 as the manifest names it: "
    "the Go module proxy refuses flannel-io/cni-plugin, which forked from that code",
    "the images are labkit's, assembled from those binaries and Debian's iptables (this "
    "machine's alternative, as kube-proxy's), iproute2, net-tools and coreutils, not "
    "Alpine's; preloaded into containerd, so the manifest's default pull policy "
    "(IfNotPresent) pulls nothing",
    "each node's /opt/cni/bin is trimmed to kind's host-local, ptp, portmap and loopback, "
    "and the bridge plugin (Debian's containernetworking-plugins, /usr/lib/cni/bridge) is "
    "copied onto every node, as `docker cp` does for kind: flannel's CNI plugin delegates "
    "to bridge, which kind's node image lacks",
    NO_LOCAL_PATH,
    "the Deployment's image is labkit's stand-in for burlyluo/nettool, with imagePullPolicy "
    "IfNotPresent: there is no registry",
]


def _as_kind_node(lab: Lab, node: str, bridge: Path) -> None:
    """kind's /opt/cni/bin, then ``docker cp bridge NODE:/opt/cni/bin/``."""
    keep = "|".join(KIND_PLUGINS)
    # The removals are whiteouts in the node's own overlay: the host's /usr/lib/cni stays.
    must(lab, node, f'cd /opt/cni/bin && for f in *; do case "$f" in {keep}) ;; '
                    '*) rm -f "./$f" ;; esac; done', "keeping kind's CNI plugins")
    shutil.copy(bridge, lab.node_dir(node) / "kind" / "bridge")
    must(lab, node, "cp /kind/bridge /opt/cni/bin/bridge && chmod 755 /opt/cni/bin/bridge "
                    "&& rm /kind/bridge", "copying the bridge plugin")


def install(lab: Lab, settings: Settings, progress: Progress) -> None:
    """The taint removed, ``bridge`` copied onto every node, kube-flannel.yml applied."""
    cp = settings.node_names[0]
    kubectl(lab, settings, "taint nodes --all node-role.kubernetes.io/master-")
    bridge = settings.bridge
    if not bridge.is_file():
        raise Step(f"the Flannel lab copies the `bridge` CNI plugin ({bridge}, named in "
                   f"{settings.manifest.file}) onto every node, and it is missing: apt-get "
                   "install containernetworking-plugins")
    with ThreadPoolExecutor(len(settings.node_names)) as pool:
        list(pool.map(lambda node: _as_kind_node(lab, node, bridge), settings.node_names))
    progress(f"copied {bridge} to /opt/cni/bin/ on every node (kind's nodes keep only "
             f"{', '.join(KIND_PLUGINS)})")
    manifest = parts.path("flannel-manifests") / MANIFEST
    flannel_objects(manifest.read_text(), settings)  # the lab's version, Network and vxlan
    shutil.copy(manifest, lab.node_dir(cp) / "kind" / MANIFEST)
    rc, out, err = kubectl(lab, settings, f"apply -f /kind/{MANIFEST}", timeout=120)
    if rc != 0:
        raise Step(f"kubectl apply -f {MANIFEST}: {err.strip()}")
    progress(f"applied {MANIFEST} ({len(out.splitlines())} objects)")


def lab_name(settings: Settings) -> str:
    """The lab's name as the replica gives it: its folder's, under a folder of labs."""
    folder = settings.directory
    return folder.name if (folder.parent / "kind-cluster.yaml").is_file() else "calico"


def gather(lab: Lab, settings: Settings, extra: dict[str, Any]) -> dict[str, Any]:
    """The inventory, in the kind lab's Flannel shape: blocks from each node's podCIDR,
    each pod's ``veth`` read from its node."""
    nodes = kubectl_json(lab, settings, "get nodes").get("items", [])
    pods = kubectl_json(lab, settings, "get pods -A").get("items", [])
    version = settings.flannel_version
    with contextlib.suppress(Step, ValueError, KeyError):
        daemonset = kubectl_json(lab, settings, f"-n {FLANNEL_NAMESPACE} get daemonset "
                                                f"{FLANNEL_DAEMONSET}")
        images = [c.get("image", "")
                  for c in daemonset["spec"]["template"]["spec"]["containers"]]
        version = next((i.rsplit(":", 1)[-1] for i in images if "flannel/flannel:" in i),
                       version)
    links: dict[str, inventory.Link] = {}
    lock = threading.Lock()

    def read(node: str) -> None:
        rc, out, _ = sh(lab, node, inventory.FLANNEL_LINKS_SCRIPT, timeout=30)
        if rc == 0:
            with lock:
                links.update(inventory.flannel_links(out))

    with ThreadPoolExecutor(len(settings.node_names)) as pool:
        list(pool.map(read, settings.node_names))
    info = {"backend": "native", "lab": lab_name(settings), "flannel": version,
            "flannel_wanted": settings.flannel_version, "notes": NOTES,
            "started": time.time(), **extra}
    found = inventory.build_flannel(settings, nodes=nodes, pods=pods, links=links, info=info)
    found["pods"].sort(key=lambda p: listing_order(settings, p))
    return found
