# The API server on the host's 127.0.0.1, as docker publishes a kind control plane's port 6443.
"""``python -m labkit.backends.native.forward FD ADDRESS PORT``: copy each connection
accepted on the listening socket ``FD`` to ``ADDRESS:PORT``, both ways, until either side
closes.

The lab's owner (:mod:`.owner`) opens ``FD`` on ``127.0.0.1`` in the host's network
namespace, then starts this process inside the lab's underlay namespace (``nsenter
--net``): a socket belongs to the namespace it was made in, so connections are accepted on
the host's loopback and made on the ``kind`` bridge, where the control plane is, and the
host needs no route, sysctl or iptables rule.  This is what kind gets from docker's port
publishing (``127.0.0.1:<random port>`` → the control-plane container's 6443).  It is a
process of the owner's PID namespace, so it ends with the lab, even when the owner is
killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys

CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close, as TCP does: the other way may still talk
    except OSError:
        writer.close()


async def _connection(client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter, address: str, port: int) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(address, port)
    except OSError:
        client_writer.close()  # the API server is not up yet: kubectl sees a closed connection
        return
    try:
        await asyncio.gather(_pipe(client_reader, server_writer),
                             _pipe(server_reader, client_writer))
    finally:
        for writer in (client_writer, server_writer):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def serve(listener: socket.socket, address: str, port: int) -> None:
    """Forward every connection accepted on ``listener`` to ``address:port`` until killed."""
    server = await asyncio.start_server(
        lambda r, w: _connection(r, w, address, port), sock=listener)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    fd, address, port = int(argv[0]), argv[1], int(argv[2])
    listener = socket.socket(fileno=fd)
    asyncio.run(serve(listener, address, port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
