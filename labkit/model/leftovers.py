# What a killed build or lab leaves is named with its pid: it may go once that process is gone.
"""Telling a killed process's leftovers (a half-written file, a private site folder, a
temporary folder) from the live work of a build or lab running beside this one.

One rule for every caller: a pid whose process is gone, or is a zombie (its parent was
killed too and nobody reaped it), is dead; a pid that names another user's process is
alive, as far as we may tell, and its leftovers are kept.
"""

from __future__ import annotations

import os
from pathlib import Path


def left_by_dead_process(pid: str) -> bool:
    """True when ``pid`` (as written in a file name) names a process that no longer runs."""
    if not pid.isdigit() or int(pid) <= 0 or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # another user's process with that pid: not ours to judge
    except OverflowError:
        return True  # larger than any pid: no process has it
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        # Gone between the two looks, if /proc works at all; without /proc, keep it.
        return Path("/proc/self/stat").exists()
    return state == "Z"
