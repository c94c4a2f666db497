"""Loopback ports with a known behaviour, for failure tests (never "a port free a moment ago").

`refusing_port()` holds a socket bound to 127.0.0.1 that never listens: every connection to it
is refused, and no other process can take the port while the test runs.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connections are refused, for as long as the block runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()
