"""The keep-alive pool of connections to the one upstream origin."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections import deque
from typing import TYPE_CHECKING

from gateway.upstream.client._exceptions import ConnectError, ConnectTimeout, PoolTimeout

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.upstream.client._connection import UpstreamConnection


class ConnectionPool:
    """Opens, lends, takes back and expires connections to one origin.

    Idle connections are lent newest first, so the oldest age out; one that is closing, was
    closed by the upstream, or has been idle for `keepalive_timeout` is closed instead of lent,
    and a timer closes idle connections that nobody takes. At most `max_idle` wait idle; with
    `max_connections` set, a request finding every slot busy waits for one (PoolTimeout after
    `connect_timeout`).
    """

    def __init__(self, *, host: str, port: int, ssl_context: ssl.SSLContext | None,
                 connect_timeout: float, keepalive_timeout: float, max_idle: int,
                 max_connections: int | None,
                 new_connection: Callable[[asyncio.AbstractEventLoop], UpstreamConnection],
                 ) -> None:
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._connect_timeout = connect_timeout
        self._keepalive_timeout = keepalive_timeout
        self._max_idle = max_idle
        self._max_connections = max_connections
        self._new_connection = new_connection
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: dict[UpstreamConnection, None] = {}  # insertion order = oldest first
        self._connections: set[UpstreamConnection] = set()
        self._connecting = 0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._expiry: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open or being opened, idle or lent."""
        return len(self._connections) + self._connecting

    @property
    def idle_connections(self) -> int:
        """Connections waiting in the pool to be lent."""
        return len(self._idle)

    async def acquire(self, *, fresh: bool = False) -> UpstreamConnection:
        """An idle connection (unless `fresh`), else a new one."""
        if self._closed:
            raise RuntimeError("the upstream client is closed")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if not fresh:
            connection = self._take_idle(loop)
            if connection is not None:
                return connection
        limit = self._max_connections
        if limit is not None and self.open_connections >= limit:
            deadline = loop.time() + self._connect_timeout
            while self.open_connections >= limit:
                await self._wait_for_slot(deadline)
                connection = None if fresh else self._take_idle(loop)
                if connection is not None:
                    return connection
        return await self._connect(loop)

    def release(self, connection: UpstreamConnection) -> None:
        """Take a connection back: kept idle when it may carry another exchange, else closed."""
        if not connection.reusable or self._closed or self._keepalive_timeout <= 0:
            connection.close()
            return
        assert self._loop is not None
        connection.idle_since = self._loop.time()
        idle = self._idle
        idle[connection] = None
        if len(idle) > self._max_idle:
            next(iter(idle)).close()
        if self._expiry is None:
            self._schedule_expiry()
        self._slot_freed()

    async def aclose(self) -> None:
        """Close every connection, idle or lent; later acquires raise RuntimeError."""
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        for connection in list(self._connections):
            connection.close()
        for waiter in self._slot_waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _take_idle(self, loop: asyncio.AbstractEventLoop) -> UpstreamConnection | None:
        idle = self._idle
        while idle:
            connection, _ = idle.popitem()
            if (connection.usable_when_idle
                    and loop.time() - connection.idle_since < self._keepalive_timeout):
                return connection
            connection.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> UpstreamConnection:
        connection = self._new_connection(loop)
        connection.on_close = self._connection_closed
        self._connecting += 1
        try:
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(
                    lambda: connection, self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None)
        except TimeoutError as exc:
            raise ConnectTimeout(
                f"connecting to the upstream took over {self._connect_timeout:g} s") from exc
        except OSError as exc:  # refused, unreachable, unresolvable, TLS (ssl.SSLError)
            raise ConnectError(f"cannot connect to the upstream: {_reason(exc)}") from exc
        finally:
            self._connecting -= 1
        if self._closed:
            connection.close()
            raise RuntimeError("the upstream client is closed")
        self._connections.add(connection)
        return connection

    def _connection_closed(self, connection: UpstreamConnection) -> None:
        self._connections.discard(connection)
        self._idle.pop(connection, None)
        self._slot_freed()

    async def _wait_for_slot(self, deadline: float) -> None:
        assert self._loop is not None
        waiter = self._loop.create_future()
        self._slot_waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as exc:
            if waiter in self._slot_waiters:
                self._slot_waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self._slot_freed()  # pass on the wake-up this waiter will not use
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(f"no upstream connection slot freed within "
                                  f"{self._connect_timeout:g} s") from exc
            raise
        if self._closed:
            raise RuntimeError("the upstream client is closed")

    def _slot_freed(self) -> None:
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _schedule_expiry(self) -> None:
        assert self._loop is not None
        oldest = next(iter(self._idle))
        self._expiry = self._loop.call_at(
            oldest.idle_since + self._keepalive_timeout, self._expire_idle)

    def _expire_idle(self) -> None:
        self._expiry = None
        assert self._loop is not None
        cutoff = self._loop.time() - self._keepalive_timeout + 0.001
        for connection in list(self._idle):
            if connection.idle_since > cutoff:
                break
            connection.close()
        if self._idle:
            self._schedule_expiry()


def _reason(exc: OSError) -> str:
    """Why a connect failed, in words that never hold the address (they may reach a log)."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, socket.gaierror):
        return exc.strerror or "the name does not resolve"
    return os.strerror(exc.errno) if exc.errno else type(exc).__name__
