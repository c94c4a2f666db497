"""Loopback ports with a known behaviour (never "a port free a moment ago").

`refusing_port()` holds a socket bound to 127.0.0.1 that never listens: every connection to it
is refused, and no other process can take the port while the test runs. `listening_socket()`
is a bound, listening socket for a server that must be reachable at a known URL before it
starts (aiohttp's SockSite serves on it).
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connections are refused, for as long as the block runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextmanager
def listening_socket(port: int = 0) -> Iterator[socket.socket]:
    """A socket listening on 127.0.0.1 (at `port`, or one the OS picks), closed after the
    block. Naming the port serves a restarted server at the URL of the one before it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()
