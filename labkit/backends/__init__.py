# The backends: the labs that really run the commands.
"""The netns replica, the kind cluster and the native cluster; ``open_lab`` starts one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model.errors import LabError

if TYPE_CHECKING:
    from ..api.lab import Lab


def open_lab(kind: str = "netns", *, lab: str | None = None, **options: Any) -> Lab:
    """Start a lab and return it.

    ``kind`` is the backend: ``netns`` (the replica, the default), ``kind`` (the real
    cluster in Docker) or ``native`` (the real cluster in Linux namespaces, as root).
    ``lab`` names the cluster (see :mod:`labkit.model.labs`): ``calico`` (the default) or
    another folder of ``manifests/``, such as ``flannel``.
    """
    # Imported here, not above: the netns lab's agent lives under this package and imports
    # it first, and it needs no Lab.
    from ..api.lab import Lab

    if lab is not None:
        from ..model import labs

        if "manifests" in options:
            raise LabError("open_lab: give the lab's name or its manifests, not both")
        options["manifests"] = labs.manifests(lab)
    if kind == "netns":
        from .netns import launcher

        return Lab(launcher.start(**options))
    if kind == "kind":
        from .kind import backend as kind_backend

        return Lab(kind_backend.start(**options))
    if kind == "native":
        from .native import backend as native_backend

        return Lab(native_backend.start(**options))
    raise LabError(f"unknown lab {kind!r}: choose netns, kind or native")
