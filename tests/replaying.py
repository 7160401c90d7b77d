# A lab that answers from a recording (tests/samples/*.json): the figures' tests replay one.
"""The walk and diagram tests run labkit's figures against what a real lab printed."""

from __future__ import annotations

from typing import Any

from labkit import Lab
from labkit.api.recording import Replayer


def replay(data: dict[str, Any]) -> tuple[Lab, Replayer]:
    """A lab over ``data`` (``inventory``, ``calls``), and its replayer (to check it is used up)."""
    replayer = Replayer(data["inventory"], "sample")
    replayer.load(data["calls"], "sample")
    return Lab(replayer), replayer
