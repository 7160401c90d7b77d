# What a part is made from: one frozen dataclass per way of making it (Go, C, Debian).
"""Recipes.

A recipe says what a part is (``name``, the real ``version``, its ``source``) and how it is
made. Every field goes into the part's cache key, so a recipe must be a plain value:
changing any field builds the part again. A new way of making parts (rendered manifests,
OCI images) is a new recipe class here plus a maker registered in :mod:`.make`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .gobuild import GoWork
    from .run import Log

MODULES = Path(__file__).resolve().parent / "modules"
"""The wrapper modules, one folder per part, each with its committed go.mod and go.sum."""


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """What every part has."""

    name: str
    """The part's name, also its folder in the cache: ``kubernetes``, ``containerd``."""
    version: str = ""
    """The real version the part is (``v1.23.4``); a Debian part takes its package's."""
    source: str = ""
    """Where it comes from: ``k8s.io/kubernetes@v1.23.4``, ``debian:containerd``."""


@dataclass(frozen=True, kw_only=True)
class GoBuild(Recipe):
    """Go binaries built from a wrapper module of labkit's own (``modules/<name>/``)."""

    module: Path
    """The wrapper module's folder: go.mod, go.sum and the tools.go that names the mains."""
    mains: tuple[tuple[str, str], ...]
    """Each main package's import path and the name its binary gets."""
    env: tuple[tuple[str, str], ...] = (("CGO_ENABLED", "0"),)
    ldflags: tuple[str, ...] = ("-s", "-w")
    tags: tuple[str, ...] = ()
    prepare: Callable[[GoWork], None] | None = field(default=None, compare=False)
    """Run in the work folder after the modules are downloaded and before the build
    (Kubernetes generates a file its module does not hold)."""
    go_needed: str = "1.22"
    """The oldest Go labkit accepts for it; the wrappers were built with go1.26."""


@dataclass(frozen=True, kw_only=True)
class CBuild(Recipe):
    """One static C program compiled from a file of a module the wrapper requires."""

    module: Path
    """The wrapper module that requires (and go.sum verifies) ``from_module``."""
    from_module: str
    """The module holding the source: ``k8s.io/kubernetes``."""
    file: str
    """The C file inside that module: ``build/pause/linux/pause.c``."""
    output: str
    cflags: tuple[str, ...] = ("-Os", "-Wall", "-Werror", "-static")
    go_needed: str = "1.22"
    """Go only downloads the module here, verified by the wrapper's go.sum."""


@dataclass(frozen=True, kw_only=True)
class Debian(Recipe):
    """Binaries of an installed Debian package, recorded (version, sha256), not built."""

    package: str
    files: tuple[str, ...]
    """Absolute paths of the binaries; each is linked into the part's folder by its name."""


@dataclass(frozen=True, kw_only=True)
class Assembled(Recipe):
    """Files made from other built parts and verified modules, not compiled: an OCI image
    (:mod:`.images`), a rendered manifest (:mod:`.render`). Each part it ``needs`` is
    built first, and its key is part of this one's, so a rebuilt binary rebuilds the
    image that holds it."""

    needs: tuple[str, ...] = ()
    debian: tuple[str, ...] = ()
    """Debian packages it copies files from: their installed versions are in its key."""
    make: Callable[[AssembleWork], None] = field(compare=False)
    """Fills ``work.out``."""


@dataclass(frozen=True)
class AssembleWork:
    """What an :class:`Assembled` part's ``make`` gets."""

    out: Path
    """The part's folder, to fill."""
    work: Path
    """A scratch folder, removed afterwards."""
    log: Log
    part: Callable[[str], Path]
    """The folder of a part it needs."""
    source: Callable[[str], str]
    """A part's source as its part.json records it."""
