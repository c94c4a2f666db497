"""Network faults on demand, for fault tests: a TCP (or TLS) proxy that misbehaves when told.

:class:`FaultProxy` listens on a free 127.0.0.1 port, optionally behind TLS with a certificate
the caller chose (an untrusted one, say), and relays every connection to one target port.
What it does to connections accepted from then on is switched at any time:

* :meth:`FaultProxy.pass_through` (the start): relay both ways untouched.
* :meth:`FaultProxy.reset_connections`: read what the client sends, then reset the connection
  (RST, not FIN): the client's read fails with ECONNRESET and no response at all.
* :meth:`FaultProxy.stall`: read what the client sends and never answer.
* :meth:`FaultProxy.cut_responses_after`: relay, but after the first N bytes of the response
  reset the client's connection: it has a response that started and never ends. The rest of
  the target's answer is read and dropped, so the target sees nothing wrong.

:meth:`FaultProxy.reset_open` resets every connection open now (an upgraded WebSocket, a
kept-alive connection), whatever the mode. :meth:`FaultProxy.stop` closes everything at once,
so no test waits on a stalled peer.

:func:`reserved_port` holds a loopback port that refuses connections until a server binds it:
a service that is "down at start" and comes up later on the address everyone was told.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import TYPE_CHECKING, Final, Self

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator
    from types import TracebackType

LOOPBACK: Final = "127.0.0.1"
READ_SIZE: Final = 65536
_RST_ON_CLOSE: Final = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A 127.0.0.1 port where connections are refused until a server binds it, for the block.

    The port is held by a bound socket that never listens, with SO_REUSEADDR set. On Linux a
    socket that also sets SO_REUSEADDR (asyncio's `create_server` does by default, so aiohttp's
    `TCPSite` and `DevIdp(port=...)` do) may bind the same address and listen while no other
    socket listens on it; anything else that tries to bind it fails. So a server can be started
    on the port later, and until then every connection gets ECONNREFUSED: never "a port that was
    free a moment ago".
    """
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((LOOPBACK, 0))
        port: int = holder.getsockname()[1]
        yield port
    finally:
        holder.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with RST instead of an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_ON_CLOSE)
    writer.transport.abort()


class FaultProxy:
    """A TCP proxy from a free loopback port to `127.0.0.1:<target_port>`, faults on demand.

    With `tls`, clients must speak TLS to the proxy (it presents `tls`'s certificate) and it
    relays the decrypted bytes to the target in clear. Use as ``async with FaultProxy(port)``.
    """

    def __init__(self, target_port: int, *, tls: ssl.SSLContext | None = None) -> None:
        self._target_port = target_port
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._port = 0
        self._mode = "pass"
        self._cut_after = 0
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on a free loopback port; returns once connections are accepted."""
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        self._server = await asyncio.start_server(self._serve, LOOPBACK, 0, ssl=self._tls)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and reset every open connection (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self.reset_open()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port the proxy listens on; only known once started."""
        if not self._port:
            raise RuntimeError("FaultProxy not started")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`, or `https://...` with TLS."""
        return f"{'https' if self._tls else 'http'}://{LOOPBACK}:{self.port}"

    def pass_through(self) -> None:
        """Relay new connections untouched."""
        self._mode = "pass"

    def reset_connections(self) -> None:
        """Reset new connections (RST) once the client has sent something, answering nothing."""
        self._mode = "reset"

    def stall(self) -> None:
        """Accept new connections and read from them, never answering."""
        self._mode = "stall"

    def cut_responses_after(self, size: int) -> None:
        """Relay new connections, but reset the client's side after `size` bytes of response
        (the target's answer is read to its end and dropped)."""
        if size < 1:
            raise ValueError("size: must be at least 1")
        self._mode, self._cut_after = "cut", size

    def reset_open(self) -> None:
        """Reset every connection open now, on both sides of the proxy."""
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._open.add(writer)
        mode, cut_after = self._mode, self._cut_after
        try:
            if mode == "reset":
                await reader.read(READ_SIZE)
                _reset(writer)
            elif mode == "stall":
                while await reader.read(READ_SIZE):
                    pass
            else:
                await self._relay(reader, writer, cut_after if mode == "cut" else 0)
        except (OSError, asyncio.IncompleteReadError):
            pass  # a peer went away: that is what this proxy is for
        finally:
            self._open.discard(writer)
            self._tasks.discard(task)
            writer.transport.abort()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     cut_after: int) -> None:
        target_reader, target_writer = await asyncio.open_connection(LOOPBACK, self._target_port)
        self._open.add(target_writer)
        try:
            up = asyncio.create_task(self._pump(reader, target_writer))
            down = asyncio.create_task(self._pump(target_reader, writer, cut_after))
            done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if cut_after and down not in done:
                await asyncio.gather(down, return_exceptions=True)  # drain the rest
            up.cancel()
            down.cancel()
            # Either side going away ends the connection; how it went is not the proxy's news.
            await asyncio.gather(up, down, return_exceptions=True)
        finally:
            self._open.discard(target_writer)
            target_writer.transport.abort()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    cut_after: int = 0) -> None:
        """Copy until EOF (not passed on: the caller then closes both sides). With `cut_after`,
        reset `sink` after that many bytes, then read the source to its end and drop it (the
        source never learns: a path failed in between)."""
        sent = 0
        while chunk := await source.read(READ_SIZE):
            if cut_after and sent + len(chunk) >= cut_after:
                sink.write(chunk[:cut_after - sent])
                await sink.drain()
                _reset(sink)
                while await source.read(READ_SIZE):
                    pass
                return
            sent += len(chunk)
            sink.write(chunk)
            await sink.drain()
