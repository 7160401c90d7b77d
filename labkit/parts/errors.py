# What can go wrong building the parts: each a LabError whose message is printed as is.
"""The parts' errors.

A missing toolchain, an unreachable module proxy, a full disk and a failed build are
different problems with different fixes, so each has its own class; all are
:class:`~labkit.model.errors.LabError`, so ``labkit`` prints them as ``labkit: ...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..model.errors import LabError


class PartsError(LabError):
    """Base of the parts' errors."""


class UnknownPart(PartsError):
    """A name that is not one of the recipes; the message lists the names there are."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        super().__init__(f"no part named {name!r}; the parts are: {', '.join(known)}")


class NotBuilt(PartsError):
    """A part asked for by path that is not in the cache (or not for today's toolchain)."""

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        what = f"the part {name!r} is not built here" + (f" ({detail})" if detail else "")
        super().__init__(f"{what}: run `labkit parts build {name}`")


class ToolchainMissing(PartsError):
    """The compiler a recipe needs is not installed, or too old; says which one and how to
    get it."""


class NotInstalled(PartsError):
    """A part that comes from a Debian package whose package (or one of its files) is not
    installed; names the ``apt-get`` command."""

    def __init__(self, name: str, package: str, missing: str = "") -> None:
        self.name = name
        self.package = package
        what = f"{missing} (from the Debian package `{package}`) is missing" if missing \
            else f"the Debian package `{package}` is not installed"
        super().__init__(f"{name}: {what}: apt-get install {package}")


class ProxyUnreachable(PartsError):
    """Go could not download a module: the proxy did not answer, or refused the version.

    The module proxy here is a curated mirror, so "refused" is its own case: the
    version must change, not the network.
    """

    def __init__(self, name: str, line: str, log: Path, refused: bool = False) -> None:
        self.name = name
        self.log = log
        what = "refused a module this part needs" if refused else "is unreachable"
        super().__init__(f"{name}: the Go module proxy {what}: {line.strip()} (log: {log})")


class DiskFull(PartsError):
    """No space left on the device that holds the cache or Go's caches."""

    def __init__(self, name: str, where: str, log: Path | None) -> None:
        self.name = name
        self.log = log
        suffix = f" (log: {log})" if log else ""
        super().__init__(f"{name}: no space left on the device while building it, in "
                         f"{where}: free some space and run `labkit parts build` again{suffix}")


class BuildFailed(PartsError):
    """A build command exited non-zero: the part, the command, its last lines, the log."""

    def __init__(self, name: str, command: Sequence[str], rc: int, last: Sequence[str],
                 log: Path) -> None:
        self.name = name
        self.command = list(command)
        self.rc = rc
        self.last = list(last)
        self.log = log
        shown = " ".join(command)
        lines = "".join(f"\n  | {line}" for line in last) or "\n  | (it printed nothing)"
        super().__init__(f"{name}: `{shown}` failed (exit {rc}); its last {len(last)} "
                         f"lines:{lines}\n  log: {log}")
