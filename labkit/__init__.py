# labkit: run a lab book's snippets against a real (or replica) kind + Calico cluster.
"""The public API chapters and tests use.

>>> with labkit.open_lab() as lab:                      # doctest: +SKIP
...     pod = lab.select(node="calico-ipip-worker2", app="app")[0]
...     print(pod.sh("ip route").output)

Everything not listed in ``__all__`` is internal and may change.
"""

from typing import TYPE_CHECKING, Any

from .errors import (
    CommandFailed,
    CommandTimeout,
    LabError,
    LabUnavailable,
    SnippetError,
    ToolMissing,
    TranscriptError,
    UnknownTarget,
)
from .lab import Background, Lab, Node, Pod, Target, open_lab
from .result import Result
from .status import status
from .version import __version__

if TYPE_CHECKING:
    from .node_diagram import Diagram, diagram
    from .packet_walk import PacketWalk, walk

# Imported on first use (no submodule has these names): they pull in jinja2 and the
# renderer, which the lab's agent (a process of its own, started for every lab) never needs.
_LAZY = {"Diagram": "node_diagram", "diagram": "node_diagram", "PacketWalk": "packet_walk",
         "walk": "packet_walk"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Background",
    "CommandFailed",
    "CommandTimeout",
    "Diagram",
    "Lab",
    "LabError",
    "LabUnavailable",
    "Node",
    "PacketWalk",
    "Pod",
    "Result",
    "SnippetError",
    "Target",
    "ToolMissing",
    "TranscriptError",
    "UnknownTarget",
    "__version__",
    "diagram",
    "open_lab",
    "status",
    "walk",
]
