# Putting a built site in place in one atomic step, and clearing what killed builds left.
"""``site/`` is swapped, never rewritten: readers see the old site or the new one."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from pathlib import Path

from ..model.leftovers import left_by_dead_process

RENAME_EXCHANGE = 2


def publish(built: Path, site: Path) -> None:
    """Put ``built`` where ``site`` is in one step: readers see the old site or the new one."""
    try:
        os.rename(built, site)  # the first site: there is nothing to swap with
        return
    except OSError as exc:
        # There is a site, perhaps one that another build published a moment ago (checking
        # first and renaming after would race it): swap with it.
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # not Linux (a replay): two renames, the old site gone for an instant
        previous = built.with_name(built.name + ".previous")
        os.rename(site, previous)
        os.rename(built, site)
        shutil.rmtree(previous)
        return
    at_fdcwd = -100
    if renameat2(at_fdcwd, str(built).encode(), at_fdcwd, str(site).encode(),
                 RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"cannot swap {built} into {site}: {os.strerror(code)}")
    shutil.rmtree(built)  # now holds the previous site


def _clean_stale(state: Path) -> None:
    """Remove private build folders of builds that were killed (their pid is gone)."""
    for folder in state.glob("site-*"):
        pid = folder.name.removeprefix("site-")
        if left_by_dead_process(pid):
            shutil.rmtree(folder, ignore_errors=True)
    for report in state.glob("failures-*.txt"):
        pid = report.name.removeprefix("failures-").removesuffix(".txt")
        if left_by_dead_process(pid):
            report.unlink(missing_ok=True)
