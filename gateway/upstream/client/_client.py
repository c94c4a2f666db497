"""The client: one upstream origin, requests in, streamed responses out, one retry at most."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from gateway.upstream.client._connection import UpstreamConnection
from gateway.upstream.client._exceptions import ConnectionClosed
from gateway.upstream.client._pool import ConnectionPool
from gateway.upstream.client._request import (
    IDEMPOTENT_METHODS,
    encode_head,
    framing_header,
    send_streamed_body,
)
from gateway.upstream.client._response import UpstreamResponse

if TYPE_CHECKING:
    import asyncio
    from types import TracebackType

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ONE_WRITE = 65536  # a bytes body up to this size leaves in the same write as the head

RequestBody = bytes | AsyncIterable[bytes] | None


def _origin_parts(origin: str, *, tls_configured: bool) -> tuple[SplitResult, str]:
    """The parts of a scheme://host[:port] origin and its host; ValueError for anything else."""
    parts = urlsplit(origin)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("the upstream origin must be http://host[:port] or https://...")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("pass the origin only (scheme://host[:port]); a base path belongs "
                         "in each request's target")
    if tls_configured and parts.scheme != "https":
        raise ValueError("ssl_context is only for an https:// origin")
    return parts, parts.hostname


def _check_positive(limits: dict[str, float | None]) -> None:
    """ValueError naming the first limit given (not None) that is not above zero."""
    for name, value in limits.items():
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0, not {value}")


class UpstreamClient:
    """HTTP/1.1 to one origin (`http://host:port` or `https://host:port`) over a keep-alive pool.

    `read_timeout` bounds the wait for each next byte of a response (never the whole of it);
    `write_timeout` (default: read_timeout) bounds each wait for the upstream to take request
    bytes. `max_header_bytes` and `max_header_count` bound the response head (interim heads and
    trailers included in the byte count). `read_buffer_bytes` is the flow-control mark: above
    it, the socket is not read until the consumer catches up.
    """

    def __init__(self, origin: str, *, connect_timeout: float = 10.0,  # noqa: PLR0913 - keyword options
                 read_timeout: float = 60.0, write_timeout: float | None = None,
                 keepalive_timeout: float = 4.0, max_idle_connections: int = 100,
                 max_connections: int | None = None, max_header_bytes: int = 65536,
                 max_header_count: int = 256, read_buffer_bytes: int = 65536,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts, host = _origin_parts(origin, tls_configured=ssl_context is not None)
        _check_positive({"connect_timeout": connect_timeout, "read_timeout": read_timeout,
                         "max_header_bytes": max_header_bytes,
                         "max_header_count": max_header_count,
                         "read_buffer_bytes": read_buffer_bytes, "write_timeout": write_timeout,
                         "max_connections": max_connections})
        if keepalive_timeout < 0 or max_idle_connections < 0:
            raise ValueError("keepalive_timeout and max_idle_connections must be >= 0")
        port = parts.port or _DEFAULT_PORTS[parts.scheme]  # port: ValueError if malformed
        authority = f"[{host}]" if ":" in host else host
        if port != _DEFAULT_PORTS[parts.scheme]:
            authority = f"{authority}:{port}"
        self._host_line = f"Host: {authority}\r\n"
        if parts.scheme == "https" and ssl_context is None:
            ssl_context = ssl.create_default_context()

        def new_connection(loop: asyncio.AbstractEventLoop) -> UpstreamConnection:
            return UpstreamConnection(
                loop, read_timeout=read_timeout, write_timeout=write_timeout or read_timeout,
                max_header_bytes=max_header_bytes, max_header_count=max_header_count,
                high_water=read_buffer_bytes)

        self._pool = ConnectionPool(
            host=host, port=port, ssl_context=ssl_context, connect_timeout=connect_timeout,
            keepalive_timeout=keepalive_timeout, max_idle=max_idle_connections,
            max_connections=max_connections, new_connection=new_connection)

    @property
    def open_connections(self) -> int:
        """Connections open or being opened, idle or lent."""
        return self._pool.open_connections

    @property
    def idle_connections(self) -> int:
        """Keep-alive connections waiting in the pool."""
        return self._pool.idle_connections

    async def request(self, method: str, target: str, headers: Iterable[tuple[str, str]] = (),
                      body: RequestBody = None, *, body_length: int | None = None,
                      ) -> UpstreamResponse:
        """Send one request and return once the final response head has arrived.

        `target` is sent as it is (the raw path and query). `headers` are (name, value) pairs
        (a list, or a multidict's `.items()`), sent in order; they must not hold
        Content-Length, Transfer-Encoding, Connection or Upgrade: the client frames the body
        itself (Content-Length for bytes and for a stream with `body_length`, chunked for a
        stream without). Host is added when absent. An idempotent request (GET, HEAD, OPTIONS,
        TRACE, PUT, DELETE) without a streamed body is sent once more, on a new connection, when
        a reused keep-alive connection turns out to be closed before any response byte.
        """
        framing = framing_header(method, body, body_length)
        head = encode_head(method, target, headers, self._host_line, framing)
        if isinstance(body, bytes) and len(body) <= _ONE_WRITE:
            head, body = head + body, None
        connection = await self._pool.acquire()
        try:
            return await self._exchange(connection, method, head, body, body_length)
        except ConnectionClosed:
            replayable = body is None or isinstance(body, bytes)
            if not (connection.may_retry and replayable and method in IDEMPOTENT_METHODS):
                raise
        connection = await self._pool.acquire(fresh=True)
        return await self._exchange(connection, method, head, body, body_length)

    async def _exchange(self, connection: UpstreamConnection, method: str, head: bytes,
                        body: RequestBody, body_length: int | None) -> UpstreamResponse:
        try:
            connection.begin(is_head=method == "HEAD")
            connection.write(head)
            if isinstance(body, bytes):
                connection.write(body)
            elif body is not None:
                await send_streamed_body(connection, body, body_length)
            status, reason, headers, content_length = await connection.receive_head()
        except BaseException:
            connection.close()
            raise
        return UpstreamResponse(status, reason, headers, content_length=content_length,
                                connection=connection, pool=self._pool)

    async def aclose(self) -> None:
        """Close every connection; responses still being read fail with ConnectionClosed, and
        later requests raise RuntimeError (a closed client is a programming error)."""
        await self._pool.aclose()

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
