# Making Debian parts: nothing is compiled; the installed package is checked and recorded.
"""The maker of :class:`~.recipe.Debian` parts: the part's folder links each binary by its
name to the installed file, and part.json records the package's version and each file's
sha256, so ``labkit parts check`` notices when Debian replaces them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .errors import NotInstalled, ToolchainMissing
from .recipe import Debian


def installed_version(recipe: Debian) -> str:
    """The installed package's Debian version (``1.6.20~ds1-1+deb12u3``), or NotInstalled."""
    return package_version(recipe.name, recipe.package)


def package_version(part: str, package: str) -> str:
    """The installed Debian version of ``package``, which ``part`` needs, or NotInstalled."""
    if shutil.which("dpkg-query") is None:
        raise ToolchainMissing(f"{part}: `dpkg-query` is not installed: the part "
                               f"comes from Debian's package `{package}`")
    done = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}",
                           package], capture_output=True, text=True, timeout=60)
    status, _, version = done.stdout.strip().partition(" ")
    if done.returncode != 0 or status != "installed" or not version:
        raise NotInstalled(part, package)
    return version


def upstream(version: str) -> str:
    """The upstream release in a Debian version: ``1:1.4.7-1+b2`` → ``1.4.7``."""
    match = re.match(r"(?:\d+:)?([0-9][0-9A-Za-z.]*)", version)
    return match.group(1) if match else version


def make_debian(recipe: Debian, out: Path) -> None:
    """Link each of the package's binaries into ``out`` (NotInstalled names a missing one)."""
    for file in recipe.files:
        path = Path(file)
        if not path.is_file():
            raise NotInstalled(recipe.name, recipe.package, missing=file)
        (out / path.name).symlink_to(path)
