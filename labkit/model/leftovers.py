# What a killed build leaves behind is named with its pid: it may go once that process is gone.
"""Telling a killed build's leftovers (a half-written file, a private site folder) from the
live work of a build running beside this one."""

from __future__ import annotations

import os
from pathlib import Path


def left_by_dead_process(pid: str) -> bool:
    """True when ``pid`` (as written in a file name) names a process that no longer runs."""
    return pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists()
