# labkit: run a lab book's snippets against a real (or replica) kind + Calico cluster.
"""The public API chapters and tests use.

>>> with labkit.open_lab() as lab:                      # doctest: +SKIP
...     pod = lab.select(node="calico-ipip-worker2", app="app")[0]
...     print(pod.sh("ip route").output)

Everything not listed in ``__all__`` is internal and may change.
"""

from typing import TYPE_CHECKING, Any

from .model.version import __version__

if TYPE_CHECKING:
    from .api.lab import Background, Lab, Node, Pod, Target
    from .backends import open_lab
    from .figures.node_diagram import Diagram, diagram
    from .figures.packet_walk import PacketWalk, walk
    from .figures.status import status
    from .model.errors import (
        CommandFailed,
        CommandTimeout,
        LabError,
        LabUnavailable,
        SnippetError,
        ToolMissing,
        TranscriptError,
        UnknownTarget,
    )
    from .model.result import Result

# Each name is imported on first use: every lab's agent is a process of its own that
# imports this package first (it lives under it) and uses none of them, and each import
# here was start-up time for every lab.
_LAZY = {
    **dict.fromkeys(("Background", "Lab", "Node", "Pod", "Target"), "api.lab"),
    "open_lab": "backends",
    **dict.fromkeys(("Diagram", "diagram"), "figures.node_diagram"),
    **dict.fromkeys(("PacketWalk", "walk"), "figures.packet_walk"),
    "status": "figures.status",
    **dict.fromkeys(("CommandFailed", "CommandTimeout", "LabError", "LabUnavailable",
                     "SnippetError", "ToolMissing", "TranscriptError", "UnknownTarget"),
                    "model.errors"),
    "Result": "model.result",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
