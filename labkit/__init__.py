# labkit: run a lab book's snippets against a real (or replica) kind + Calico cluster.
"""The public API chapters and tests use.

>>> with labkit.open_lab() as lab:                      # doctest: +SKIP
...     pod = lab.select(node="calico-ipip-worker2", app="app")[0]
...     print(pod.sh("ip route").output)

Everything not listed in ``__all__`` is internal and may change.
"""

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
from .node_diagram import Diagram, diagram
from .packet_walk import PacketWalk, walk
from .result import Result
from .status import status

__version__ = "0.1.0"

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
