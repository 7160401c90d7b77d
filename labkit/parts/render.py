# The manifests the real cluster applies, rendered or copied from the verified modules.
"""Manifests as parts.

Calico v3.23's ``calico.yaml`` was never a file of its source tree: Calico's docs site
rendered its Helm chart (``calico/_includes/charts/calico``) with values computed by the
site's own Ruby (``_plugins/values.rb``). Here the same chart, from the verified Calico
module, is rendered by helm with values computed by that same Ruby: the default page
(``calico.yaml``: IPIP, ``calico_backend: bird``) and its VXLAN sibling
(``calico-vxlan.yaml``: ``vxlan: true``, ``calico_backend: vxlan``, no BIRD).
kube-flannel.yml is a file of the Flannel module, copied as it is.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from .gobuild import module_folder
from .recipe import MODULES
from .run import Log

if TYPE_CHECKING:
    from .recipe import AssembleWork

VALUES_RB = Path(__file__).resolve().parent / "data" / "calico_values.rb"
CHART = "calico/_includes/charts/calico"
CRDS = "libcalico-go/config/crd"
"""The chart's ``crds`` is a symlink to this folder; module zips drop symlinks."""
PAGES = {
    "calico.yaml": "datastore: kubernetes\nnetwork: calico\n",
    "calico-vxlan.yaml": "datastore: kubernetes\nnetwork: calico\nvxlan: true\n",
}
"""Each published manifest's page front matter: the values it added to the site's."""


def render_calico(helm: Path, module: Path, work: Path, out: Path, log: Log) -> None:
    """Render ``PAGES`` from the chart in the Calico ``module`` into ``out``."""
    ruby = shutil.which("ruby")
    if ruby is None:
        raise FileNotFoundError("`ruby` is not installed (it runs Calico's docs site's "
                                "values.rb): apt-get install ruby")
    chart = work / "chart" / "calico"
    shutil.copytree(module / CHART, chart)
    shutil.copytree(module / CRDS, chart / "crds")
    for path in [chart, *chart.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    values = work / "values.yaml"
    log.run([ruby, VALUES_RB, module / "calico"], cwd=work, into=values)
    for name, page in PAGES.items():
        page_values = work / f"page-{name}"
        page_values.write_text(page, encoding="utf-8")
        # The site's helm.rb passed the etcd endpoint placeholder on the command line.
        log.run([helm, "template", chart, "-f", values, "-f", page_values,
                 "--set", "etcd.endpoints=http://<ETCD_IP>:<ETCD_PORT>"],
                cwd=work, into=out / name)


def calico_manifests(work: AssembleWork) -> None:
    """The ``calico-manifests`` part: calico.yaml and calico-vxlan.yaml."""
    module = module_folder(MODULES / "calico", "github.com/projectcalico/calico")
    render_calico(work.part("helm") / "helm", module, work.work, work.out, work.log)


FLANNEL_MANIFEST = "Documentation/kube-flannel.yml"


def flannel_manifest(work: AssembleWork) -> None:
    """The ``flannel-manifests`` part: kube-flannel.yml of the Flannel module, as it is."""
    module = module_folder(MODULES / "flannel", "github.com/flannel-io/flannel")
    shutil.copyfile(module / FLANNEL_MANIFEST, work.out / "kube-flannel.yml")


KIND_STORAGE = "pkg/build/nodeimage/const_storage.go"
_STORAGE = re.compile(r"^const defaultStorageManifest = `(.*?)`", re.MULTILINE | re.DOTALL)


def kind_storage_manifest(work: AssembleWork) -> None:
    """The ``kind-manifests`` part: ``default-storage.yaml``, the local-path-provisioner
    manifest kind v0.12.0's node image carries (/kind/manifests/default-storage.yaml): a Go
    raw string in its source, written out byte for byte as ``kind build node-image`` does."""
    module = module_folder(MODULES / "kind", "sigs.k8s.io/kind")
    found = _STORAGE.search((module / KIND_STORAGE).read_text(encoding="utf-8"))
    if found is None:
        raise ValueError(f"sigs.k8s.io/kind: no defaultStorageManifest in {KIND_STORAGE}")
    (work.out / "default-storage.yaml").write_text(found.group(1), encoding="utf-8")
