# Temporary folders named after the process that made them, so a later run can clear dead ones.
"""A build or a lab killed by SIGKILL cannot remove its temporary folder.  Every
temporary folder labkit makes is ``labkit-<kind>-<pid>-<random>`` in the system's
temporary directory; :func:`sweep` removes those whose process is gone, and only those:
a folder another program made never matches, and a live process keeps its own."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from .leftovers import left_by_dead_process

_NAME = re.compile(r"labkit-(build|lab)-(\d+)-[A-Za-z0-9_]{8}")


def folder(kind: str, parent: Path | None = None) -> Path:
    """A new private folder for ``kind`` (``build`` or ``lab``) of this process."""
    return Path(tempfile.mkdtemp(prefix=f"labkit-{kind}-{os.getpid()}-",
                                 dir=parent or system_tmp()))


def system_tmp() -> Path:
    """The system's temporary directory, even while a build points ``tempfile`` elsewhere."""
    return Path(os.environ.get("TMPDIR") or "/tmp")


def sweep(parent: Path | None = None) -> list[Path]:
    """Remove the folders of dead labkit processes in ``parent``; return what was removed."""
    removed: list[Path] = []
    where = parent or system_tmp()
    try:
        entries = list(where.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.fullmatch(entry.name)
        if not match or entry.is_symlink() or not entry.is_dir():
            continue
        if not left_by_dead_process(match.group(2)):
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue  # someone else's, whatever its name says
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
