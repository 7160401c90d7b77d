# How the host and the lab's agent talk: length-prefixed JSON frames over a unix socket.
"""Frame format: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.

A message may carry raw bytes beside it (a command's stdout and stderr): its ``blobs``
lists their lengths, and each follows the JSON as a frame of its own, so output travels
as it was printed, never inflated by JSON's escapes.  :func:`recv` hands them back as
the message's ``_blobs``.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


def encode(message: dict[str, Any], blobs: list[bytes] | None = None) -> list[bytes]:
    """The frames of ``message`` and its ``blobs``, to send one after the other."""
    if blobs:
        message = {**message, "blobs": [len(b) for b in blobs]}
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    frames = [HEADER.pack(len(body)) + body]
    for blob in blobs or ():
        if len(blob) > MAX_FRAME:
            raise ValueError(f"a blob of {len(blob)} bytes is larger than {MAX_FRAME}")
        frames += [HEADER.pack(len(blob)), blob]
    return frames


def decode_frames(buffer: bytearray) -> list[dict[str, Any]]:
    """Take every complete frame off the front of ``buffer``."""
    frames = []
    while len(buffer) >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer)
        if size > MAX_FRAME:
            raise ValueError(f"frame of {size} bytes is larger than {MAX_FRAME}")
        if len(buffer) < HEADER.size + size:
            break
        frames.append(json.loads(buffer[HEADER.size : HEADER.size + size]))
        del buffer[: HEADER.size + size]
    return frames


def recv(sock: socket.socket) -> dict[str, Any]:
    """Block until one whole message (and its blobs) arrives; ConnectionError if the peer
    went away."""
    message: dict[str, Any] = json.loads(_recv_frame(sock))
    if "blobs" in message:
        message["_blobs"] = [_recv_frame(sock) for _ in message.pop("blobs")]
    return message


def _recv_frame(sock: socket.socket) -> bytearray:
    (size,) = HEADER.unpack(_recv_exactly(sock, HEADER.size))
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes is larger than {MAX_FRAME}")
    return _recv_exactly(sock, size)


def _recv_exactly(sock: socket.socket, size: int) -> bytearray:
    # Into one buffer: a list of chunks joined at the end would hold the frame twice.
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = sock.recv_into(view[got:], min(size - got, 1 << 20))
        if not count:
            raise ConnectionError("the lab's agent closed the connection")
        got += count
    return buffer
