"""The upstream's answer, with its body as a stream that gives the connection back at its end."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

    from gateway.upstream.client._connection import UpstreamConnection
    from gateway.upstream.client._parser import Header
    from gateway.upstream.client._pool import ConnectionPool


class UpstreamResponse:
    """Status, reason, headers, and the body as an async iterator of chunks.

    `headers` is the list of (name, value) pairs as received, in order, duplicates kept (decoded
    UTF-8 with surrogateescape, as aiohttp decodes them, so they pass into an aiohttp response
    unchanged); interim 1xx heads and trailers are not in it. `content_length` is the value of
    the Content-Length header, or None without one; the body of a response to HEAD, of a 204 and
    of a 304 is empty whatever it says.

    The connection returns to the pool the moment the body has been read to its end (by
    iterating or by `read()`). Stopping earlier — `aclose()`, leaving `async with`, a cancelled
    task, an error — closes the connection instead: a half-read connection is never reused.
    So always read to the end or close: `async with await client.request(...) as response:`.
    """

    __slots__ = ("_connection", "_pool", "content_length", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: list[Header], *,
                 content_length: int | None, connection: UpstreamConnection,
                 pool: ConnectionPool) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_length = content_length
        self._pool = pool
        self._connection: UpstreamConnection | None = connection
        if connection.body_done:  # HEAD, 204, 304, or an empty body: nothing left to read
            self._connection = None
            pool.release(connection)

    def __repr__(self) -> str:
        return f"<UpstreamResponse {self.status} {self.reason}>"

    @property
    def complete(self) -> bool:
        """True once the body has been read to its end or the response was closed."""
        return self._connection is None

    @property
    def buffered_bytes(self) -> int:
        """Body bytes received from the upstream and not yet read (bounded by flow control)."""
        connection = self._connection
        return 0 if connection is None else connection.buffered_bytes

    @property
    def arrived(self) -> bool:
        """True when the whole body has arrived, so `read()` returns it without waiting."""
        connection = self._connection
        return connection is None or connection.body_arrived

    def __aiter__(self) -> UpstreamResponse:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.receive()
        if chunk:
            return chunk
        raise StopAsyncIteration

    async def receive(self) -> bytes:
        """The next body chunk; b"" once the body has been read to its end."""
        connection = self._connection
        if connection is None:
            return b""
        try:
            chunk = await connection.receive_body()
        except BaseException:
            self._connection = None
            connection.close()
            raise
        if not chunk:
            self._connection = None
            self._pool.release(connection)
        return chunk

    async def read(self) -> bytes:
        """The rest of the body in one bytes object: for bodies known to be small."""
        connection = self._connection
        if connection is None:
            return b""
        body = connection.take_buffered_body()
        if body is not None:
            self._connection = None
            self._pool.release(connection)
            return body
        return b"".join([chunk async for chunk in self])

    async def aclose(self) -> None:
        """Stop: the connection is closed unless the body was already read to its end."""
        connection = self._connection
        if connection is not None:
            self._connection = None
            connection.close()

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
