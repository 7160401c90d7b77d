# A command's output as it arrives: at most a limit of each stream kept, in the order written.
"""What the labs keep of what a command prints (:class:`Output`).

Memory stays bounded whatever a command prints: of each of stdout and stderr at most
``keep`` bytes are kept (the first ones), and the bytes past that are only counted.  The
two streams are kept in the order they were written, as a terminal would have shown them,
with as few pieces as that order needs (one per switch between the streams), so a command
that writes a byte at a time costs no more than one that writes a megabyte at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_KEEP = 16 << 20
"""How many bytes of each of stdout and stderr a command keeps unless it says otherwise."""
MAX_KEEP = 128 << 20
"""The most a command may ask to keep of one stream (the lab's agent sends each in one frame)."""
MAX_PIECES = 1 << 16
"""Switches between stdout and stderr kept; output past that many is counted, not kept."""
STREAMS = {1: "stdout", 2: "stderr"}


def check_keep(keep: int) -> int:
    """``keep`` if it is a limit a command may ask for; ValueError saying why otherwise."""
    if isinstance(keep, bool) or not isinstance(keep, int) or not 0 <= keep <= MAX_KEEP:
        raise ValueError(f"keep={keep!r}: the bytes to keep of each of stdout and stderr must "
                         f"be a whole number from 0 to {MAX_KEEP} ({MAX_KEEP >> 20} MiB)")
    return keep


@dataclass
class Output:
    """stdout and stderr of one command, each kept up to ``keep`` bytes, in written order.

    :meth:`add` takes each write with the time it was made (any clock that orders the
    writes of both streams); pieces stay unordered until :meth:`settle` is told a time
    before which every write of both streams has been added.
    """

    keep: int = DEFAULT_KEEP
    pieces: list[tuple[int, bytearray]] = field(default_factory=list)
    """(stream, bytes) in the order written; consecutive pieces are of different streams."""
    pending: list[tuple[int, int, bytes]] = field(default_factory=list)
    """(time of the write, stream, bytes) not yet put in order, in arrival order."""
    kept: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0})
    dropped: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0})

    def add(self, stream: int, data: bytes, stamp: int = 0) -> None:
        room = self.keep - self.kept[stream]
        if len(data) > room:
            self.dropped[stream] += len(data) - max(room, 0)
            data = data[:max(room, 0)]
        if data:
            self.kept[stream] += len(data)
            self.pending.append((stamp, stream, data))

    def settle(self, before: int | None = None) -> None:
        """Put in order the writes made up to ``before`` (all of them if None)."""
        if before is None:
            ready, self.pending = self.pending, []
        else:
            ready = [p for p in self.pending if p[0] <= before]
            self.pending = [p for p in self.pending if p[0] > before]
        # A stable sort: writes with the same time stay in the order they arrived.
        for _, stream, data in sorted(ready, key=lambda p: p[0]):
            if self.pieces and self.pieces[-1][0] == stream:
                self.pieces[-1][1].extend(data)
            elif len(self.pieces) < MAX_PIECES:
                self.pieces.append((stream, bytearray(data)))
            else:  # only a pathological interleaving gets here: count it, keep nothing more
                self.kept[stream] -= len(data)
                self.dropped[stream] += len(data)

    def stream(self, number: int) -> bytes:
        """Everything kept of stdout (1) or stderr (2); call :meth:`settle` first."""
        return b"".join(data for stream, data in self.pieces if stream == number)

    def order(self) -> list[int]:
        """The pieces as ``[stream, length, stream, length, ...]``: how to interleave
        :meth:`stream` 1 and 2 into what a terminal showed."""
        return [n for stream, data in self.pieces for n in (stream, len(data))]

    def lost(self) -> dict[str, dict[str, int]]:
        """Per stream that lost bytes: how many were ``kept`` and how many ``dropped``."""
        return {STREAMS[n]: {"kept": self.kept[n], "dropped": self.dropped[n]}
                for n in (1, 2) if self.dropped[n]}


def interleave(stdout: bytes, stderr: bytes, order: list[int]) -> bytes:
    """The bytes of both streams in the order :meth:`Output.order` says they were written."""
    offsets = {1: 0, 2: 0}
    streams = {1: memoryview(stdout), 2: memoryview(stderr)}  # slices without copies
    parts = []
    for stream, length in zip(order[::2], order[1::2], strict=True):
        start = offsets[stream]
        parts.append(streams[stream][start:start + length])
        offsets[stream] = start + length
    return b"".join(parts)
