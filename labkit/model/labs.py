# The labs a book can use, by name: one folder of manifests each.
"""Named labs.

A lab is a cluster a chapter can ask for by name.  ``manifests/`` itself is the
default lab, ``calico`` (the seed's Calico cluster: its files stay where the
chapters and the kind lab have always read them); every folder under it that
holds a ``kind-cluster.yaml`` is another lab, named after the folder
(``manifests/flannel/`` is the lab ``flannel``).  Which CNI a lab runs follows
from the file beside its ``kind-cluster.yaml``: ``calico.yaml`` or
``flannel.yaml``.

>>> labkit.model.labs.names()                      # doctest: +SKIP
['calico', 'flannel']
>>> labkit.open_lab(lab="flannel")           # doctest: +SKIP
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import LabError

DEFAULT = "calico"
"""The lab a chapter runs on when its front matter names none."""
CNIS = {"calico.yaml": "calico", "flannel.yaml": "flannel"}
"""The file that says which CNI a lab's cluster runs, and that CNI's name."""
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class UnknownLab(LabError):
    """A chapter, a snippet or a command asked for a lab that no manifests folder defines."""


def _root(root: Path | None) -> Path:
    if root is not None:
        return root
    from .topology import default_manifests

    return default_manifests()


def names(root: Path | None = None) -> list[str]:
    """Every lab under ``root`` (default: the project's ``manifests/``), the default first."""
    base = _root(root)
    found = [DEFAULT] if (base / "kind-cluster.yaml").is_file() else []
    if base.is_dir():
        found += sorted(p.name for p in base.iterdir()
                        if p.is_dir() and (p / "kind-cluster.yaml").is_file()
                        and NAME.match(p.name) and p.name != DEFAULT)
    return found


def manifests(name: str = DEFAULT, root: Path | None = None) -> Path:
    """The folder a lab is built from; :class:`UnknownLab` listing the known ones if none."""
    base = _root(root)
    folder = base if name == DEFAULT else base / name
    if not NAME.match(name) or not (folder / "kind-cluster.yaml").is_file():
        known = ", ".join(names(base)) or "none"
        raise UnknownLab(
            f"no lab named {name!r}: a lab is a folder of manifests with a kind-cluster.yaml "
            f"({base}/ is {DEFAULT!r}, {base}/NAME/ is NAME); known: {known}"
        )
    return folder


def cni(folder: Path) -> str:
    """Which CNI the lab in ``folder`` runs: ``calico`` or ``flannel``."""
    present = [cni for file, cni in CNIS.items() if (folder / file).is_file()]
    if len(present) != 1:
        wanted = " or ".join(CNIS)
        raise LabError(f"{folder}: a lab needs exactly one of {wanted} beside its "
                       f"kind-cluster.yaml (found {len(present)})")
    return present[0]
