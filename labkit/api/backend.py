# The interface every lab implements (netns replica, kind cluster, transcript replay).
"""What a backend must do, and the plain data it returns.

Everything crossing this boundary is JSON-able (dicts, strings, numbers), so a
recorder can write it to a transcript and a replayer can hand it back.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..model.output import DEFAULT_KEEP
from ..model.result import Result

Inventory = dict[str, Any]
"""``{"info": {...}, "nodes": [{...}], "pods": [{...}]}``; see :class:`labkit.api.lab.Lab`."""


class Backend(Protocol):
    name: str

    def inventory(self) -> Inventory:
        """The lab's nodes and pods, and facts about it (backend, encapsulation, versions)."""

    def run(self, target: str, command: str, timeout: float,
            keep: int = DEFAULT_KEEP) -> Result:
        """Run ``command`` through ``/bin/sh -c`` in a node or pod and wait for it; keep
        at most ``keep`` bytes of each of its stdout and stderr (``Result.dropped`` counts
        the rest)."""

    def start(self, target: str, command: str, ready: str | None, timeout: float,
              keep: int = DEFAULT_KEEP) -> str:
        """Start a command in the background; with ``ready``, return once it printed that."""

    def stop(self, handle: str, signal: str, timeout: float) -> Result:
        """Send ``signal`` (``INT``, ``TERM``; ``""`` to just wait) and collect the output."""

    def close(self) -> None:
        """Let the lab go (or detach from it, if something else owns it)."""
