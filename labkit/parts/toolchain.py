# The compilers the recipes need: which `go` and `gcc`, and what version each is.
"""Finding the toolchains and naming them.

A toolchain's version is part of every cache key (a new Go builds the parts again) and of
every ``part.json`` (which toolchain built what), so it is asked once per process.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import ToolchainMissing

GO_URL = "https://go.dev/dl/"


def go_environment(extra: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    """The environment every ``go`` command of a build runs in.

    ``GOTOOLCHAIN=local``: the wrappers' ``go`` lines are old, and Go must not fetch another
    toolchain behind the cache key's back. ``-mod=mod``: a prepare step edits the work
    copy of go.mod (a ``replace``), and Go may then complete the work copy of go.sum; the
    committed go.sum still verifies every module it names. ``-buildvcs=false``: the work
    folder is no repository.
    """
    env = dict(os.environ)
    env.update(GOTOOLCHAIN="local", GOFLAGS="-mod=mod -buildvcs=false")
    env.update(extra)
    return env


def find_go(needed: str) -> Path:
    """The ``go`` on PATH, if it is at least ``needed`` (``"1.22"``); else ToolchainMissing."""
    found = shutil.which("go")
    how = (f"install Go {needed} or newer from {GO_URL} and put its bin/ on PATH "
           f"(Debian 12's golang package is Go 1.19, too old)")
    if found is None:
        raise ToolchainMissing(f"`go` is not installed: the parts are built with Go "
                               f"(go1.26 here): {how}")
    go = Path(found)
    have = go_version(go)
    if _numbers(have) < _numbers(needed):
        raise ToolchainMissing(f"{go} is {have}, the parts need Go {needed} or newer: {how}")
    return go


@functools.cache
def go_version(go: Path) -> str:
    """``go version``'s answer without its prefix: ``go1.26.8 linux/amd64``."""
    try:
        done = subprocess.run([str(go), "version"], capture_output=True, text=True,
                              env=go_environment(), timeout=60)
    except OSError as exc:
        raise ToolchainMissing(f"{go} does not run: {exc}") from exc
    if done.returncode != 0:
        raise ToolchainMissing(f"`{go} version` failed: {done.stderr.strip()}")
    return done.stdout.strip().removeprefix("go version ")


@functools.cache
def gcc_version() -> str:
    """``gcc --version``'s first line; ToolchainMissing names the package if there is none."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ToolchainMissing("`gcc` is not installed (pause is a static C program): "
                               "apt-get install gcc libc6-dev")
    done = subprocess.run([gcc, "--version"], capture_output=True, text=True, timeout=60)
    return done.stdout.splitlines()[0].strip() if done.stdout else "gcc"


def _numbers(version: str) -> tuple[int, ...]:
    """``go1.26.8 linux/amd64`` or ``1.22`` as (1, 26, 8) or (1, 22)."""
    match = re.search(r"(\d+(?:\.\d+)*)", version)
    return tuple(int(n) for n in match.group(1).split(".")) if match else ()
