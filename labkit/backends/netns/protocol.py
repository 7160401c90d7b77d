# How the host and the lab's agent talk: length-prefixed JSON frames over a unix socket.
"""Frame format: a 4-byte big-endian length, then that many bytes of UTF-8 JSON."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


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
    """Block until one whole frame arrives; ConnectionError if the peer went away."""
    header = _recv_exactly(sock, HEADER.size)
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes is larger than {MAX_FRAME}")
    message: dict[str, Any] = json.loads(_recv_exactly(sock, size))
    return message


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionError("the lab's agent closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
