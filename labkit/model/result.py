# What one command printed, where, and how it ended: the unit every backend returns.
"""The :class:`Result` of running one command in a lab."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Result:
    """One command's run, exactly as the lab reported it.

    ``output`` is stdout and stderr interleaved in the order they arrived, as a
    terminal would have shown them; ``stdout`` and ``stderr`` are the same
    bytes split by stream.  Text that was not valid UTF-8 is decoded with
    U+FFFD replacement characters and counted in ``invalid_bytes``.
    """

    command: str
    """The shell command line, exactly as a reader would type it."""
    target: str
    """The node or pod it ran in."""
    prompt: str
    """The shell prompt a reader would see there, e.g. ``root@calico-ipip-worker2:/#``."""
    stdout: str
    stderr: str
    output: str
    rc: int
    """Exit status; a command killed by signal N reports 128 + N, as a shell does."""
    started: float
    """Unix time the command started."""
    duration: float
    """Seconds from start to exit."""
    timed_out: bool = False
    invalid_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    """Backend-specific facts worth keeping (e.g. the kind pod's container)."""
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    """Streams that printed more than the command's ``keep`` limit: per stream name
    (``stdout``, ``stderr``), the bytes ``kept`` (the first ones) and those ``dropped``."""
    abridged: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Texts (``output``, ``stdout``, ``stderr``) that a transcript holds only the start of,
    what a page shows: per text, the whole one's ``bytes`` and ``sha256``, its ``lines``, and
    which of those kept were cut (``wide``, ``left_out`` characters); see
    :mod:`labkit.book.excerpt`.  Empty for a live run."""

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown result fields: {', '.join(sorted(unknown))}")
        return cls(**data)

    def __str__(self) -> str:
        return self.output


def decode(data: bytes | bytearray) -> tuple[str, int]:
    """Decode command output as UTF-8, counting the bytes that were not."""
    text = data.decode("utf-8", errors="replace")
    if "\ufffd" not in text:
        return text, 0
    # Count only replacements that came from bad bytes, not a real U+FFFD printed by the command.
    genuine = data.count("\ufffd".encode())
    return text, text.count("\ufffd") - genuine
