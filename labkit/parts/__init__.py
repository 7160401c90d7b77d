# The real cluster's parts (Kubernetes, pause, Debian's containerd...) built and cached.
"""The real cluster's software, built from pinned modules into a cache: ``labkit parts``."""

from __future__ import annotations

from .cache import root
from .catalog import RECIPES
from .errors import (
    BuildFailed,
    DiskFull,
    NotBuilt,
    NotInstalled,
    PartsError,
    ProxyUnreachable,
    ToolchainMissing,
    UnknownPart,
)
from .gobuild import module_folder
from .make import Listed, Outcome, Plan, binary, build, check, listing, path, plan, recipes
from .recipe import MODULES, CBuild, Debian, GoBuild, Recipe

__all__ = [
    "MODULES", "RECIPES", "BuildFailed", "CBuild", "Debian", "DiskFull", "GoBuild", "Listed",
    "NotBuilt", "NotInstalled", "Outcome", "PartsError", "Plan", "ProxyUnreachable",
    "Recipe", "ToolchainMissing", "UnknownPart", "binary", "build", "check", "listing",
    "module_folder", "path", "plan", "recipes", "root",
]
