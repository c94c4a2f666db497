"""One HTTP/1.1 connection to the upstream: an asyncio.Protocol whose bytes go to a parser.

A connection carries one exchange at a time. `begin()` starts one; the request goes out with
`write()`/`drain()`; `receive_head()` waits for the final response head (interim 1xx heads are
skipped); `receive_body()` returns the body chunk by chunk and b"" at its end. Afterwards
`reusable` says whether the pool may hand the connection out again.

Flow control: body chunks wait in a small buffer; above `high_water` bytes the transport stops
reading the socket, below a quarter of it reading resumes, so memory stays bounded however
slowly the consumer reads. Writes wait in `drain()` while the transport's buffer is full.

Timeouts: one timer per exchange checks the time since the last byte arrived (never while
reading is paused for a slow consumer), so a long download is cut only when bytes stop. A
write waits at most `write_timeout` for the transport's buffer to drain.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, cast

from gateway.upstream.client._exceptions import (
    ConnectionClosed,
    ReadTimeout,
    RemoteProtocolError,
    UpstreamClientError,
    WriteTimeout,
)
from gateway.upstream.client._parser import Header, ResponseParser

if TYPE_CHECKING:
    from collections.abc import Callable


class UpstreamConnection(asyncio.Protocol):
    """A keep-alive connection to the upstream and the state of its current exchange."""

    __slots__ = (
        "_buffered", "_chunks", "_closed", "_drain_waiter", "_error", "_high_water",
        "_last_read", "_loop", "_low_water", "_read_timeout", "_read_timer", "_reading_paused",
        "_received", "_request_abandoned", "_response", "_transport", "_waiter",
        "_write_paused", "_write_timeout", "exchanges", "idle_since", "on_close",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, *, read_timeout: float,
                 write_timeout: float, max_header_bytes: int, max_header_count: int,
                 high_water: int) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._high_water = high_water
        self._low_water = high_water // 4
        self._response = ResponseParser(self, max_header_bytes=max_header_bytes,
                                        max_header_count=max_header_count)
        self._transport: asyncio.Transport | None = None
        # Called once when the connection closes, whoever closes it (the pool's accounting).
        self.on_close: Callable[[UpstreamConnection], None] | None = None
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        self._write_paused = False
        self._reading_paused = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._error: UpstreamClientError | None = None
        self._received = 0
        self._request_abandoned = False
        self._last_read = 0.0
        self.exchanges = 0
        self.idle_since = 0.0

    # -- the exchange, as the client drives it ---------------------------------------------

    def begin(self, *, is_head: bool) -> None:
        """Start an exchange: a new request is about to be written."""
        self._response.start(is_head=is_head)
        self._chunks.clear()
        self._buffered = 0
        self._error = None
        self._received = 0
        self._request_abandoned = False
        self.exchanges += 1
        if self._closed:
            self._error = ConnectionClosed("the connection was closed before the request")

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._closed:
            self._transport.write(data)

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its limit (WriteTimeout if not)."""
        if self._write_paused and not self._response.head_done and self._error is None:
            waiter = self._drain_waiter = self._loop.create_future()
            timer = self._loop.call_later(self._write_timeout, self._write_timed_out, waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                self.close()
                raise
            finally:
                timer.cancel()
                self._drain_waiter = None
        if self._error is not None:
            raise self._error

    @property
    def response_started(self) -> bool:
        """True once the final response head has arrived."""
        return self._response.head_done

    def abandon_request(self) -> None:
        """The request body was cut short: this connection can carry nothing more."""
        self._request_abandoned = True

    async def receive_head(self) -> tuple[int, str, list[Header], int | None]:
        """Wait for the final response head: status, reason, headers, Content-Length."""
        response = self._response
        if not response.complete and self._error is None:
            # The request is out: from now on the upstream owes bytes (the head may already
            # be here if it answered before the request body was sent; the body is still owed).
            self._last_read = self._loop.time()
            if self._read_timer is None:
                self._read_timer = self._loop.call_at(
                    self._last_read + self._read_timeout, self._read_timer_fired)
            if not response.head_done:
                await self._wait()
        if not response.head_done:
            assert self._error is not None
            raise self._error
        reason = response.reason.decode("utf-8", "surrogateescape")
        return response.status, reason, response.headers, response.content_length

    async def receive_body(self) -> bytes:
        """The next body chunk; b"" once the body is complete."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._reading_paused and self._buffered <= self._low_water:
                    self._resume_reading()
                return chunk
            if self._response.complete:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()

    def take_buffered_body(self) -> bytes | None:
        """The whole body if it has fully arrived (one join at most), else None."""
        if not self._response.complete:
            return None
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        return body

    @property
    def body_arrived(self) -> bool:
        """True when the whole body has been received (taken by the consumer or not)."""
        return self._response.complete

    @property
    def body_done(self) -> bool:
        """True when the body is complete and the consumer has taken all of it."""
        return self._response.complete and not self._chunks

    @property
    def buffered_bytes(self) -> int:
        """Body bytes received and not yet taken by the consumer."""
        return self._buffered

    @property
    def reusable(self) -> bool:
        """True when the exchange ended cleanly and the upstream keeps the connection open."""
        response = self._response
        return (response.complete and response.keep_alive and not response.spoiled
                and self._error is None and not self._request_abandoned and not self._closed)

    @property
    def may_retry(self) -> bool:
        """True when this exchange failed on a reused connection before any response byte."""
        return self.exchanges > 1 and self._received == 0 and not self._response.head_done

    @property
    def usable_when_idle(self) -> bool:
        """False once the idle connection was closed, or the upstream closed or wrote to it."""
        transport = self._transport
        return self.reusable and transport is not None and not transport.is_closing()

    def close(self) -> None:
        """Close (idempotent); an exchange in progress fails with ConnectionClosed."""
        if self._closed:
            return
        graceful = self.reusable  # an idle connection says goodbye; any other is cut
        self._closed = True
        if self._error is None and not self._response.complete:
            self._error = ConnectionClosed("the connection was closed by the client")
        self._stop_read_timer()
        self._wake()
        if self._transport is not None:
            if graceful:
                self._transport.close()
            else:
                self._transport.abort()
        if self.on_close is not None:
            self.on_close(self)

    # -- waiting -----------------------------------------------------------------------------

    async def _wait(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        except asyncio.CancelledError:
            self.close()  # the consumer left mid-exchange: this connection is done
            raise
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _fail(self, error: UpstreamClientError) -> None:
        if self._error is None and not self._response.complete:
            self._error = error
        self.close()

    def _read_timer_fired(self) -> None:
        self._read_timer = None
        if self._response.complete or self._closed or self._reading_paused:
            return  # resuming reading re-arms the timer
        due = self._last_read + self._read_timeout
        if due - self._loop.time() > 0.001:
            self._read_timer = self._loop.call_at(due, self._read_timer_fired)
            return
        self._fail(ReadTimeout(f"no response byte for {self._read_timeout:g} s"))

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _write_timed_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._fail(WriteTimeout(
                f"the upstream took no request bytes for {self._write_timeout:g} s"))

    def _resume_reading(self) -> None:
        self._reading_paused = False
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()
            self._last_read = self._loop.time()
            if self._read_timer is None and not self._response.complete:
                self._read_timer = self._loop.call_at(
                    self._last_read + self._read_timeout, self._read_timer_fired)

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.exchanges == 0 or self._response.complete or self._closed:
            # Bytes nobody asked for (while idle, or after a complete response): the upstream
            # is closing or out of step. A complete body stays readable; the connection goes.
            self._request_abandoned = True
            self.close()
            return
        self._last_read = self._loop.time()
        self._received += len(data)
        try:
            self._response.feed(data)
        except RemoteProtocolError as error:
            self._fail(error)

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself; connection_lost decides what EOF meant

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        response = self._response
        if (not response.complete and self.exchanges and self._error is None
                and not response.end_of_stream()):
            error = ConnectionClosed(self._closed_message(exc))
            error.__cause__ = exc
            self._error = error
        self.close()

    def _closed_message(self, exc: Exception | None) -> str:
        how = "reset" if exc is not None else "closed"
        if self._received == 0:
            return f"the upstream {how} the connection before answering"
        if not self._response.head_done:
            return f"the upstream {how} the connection in the middle of the response head"
        return f"the upstream {how} the connection in the middle of the response body"

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- what the parser reports -------------------------------------------------------------

    def head_received(self) -> None:
        self._wake()

    def body_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered > self._high_water and not self._reading_paused:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def message_complete(self) -> None:
        self._stop_read_timer()
        if self._reading_paused and self._transport is not None and not self._closed:
            self._reading_paused = False
            self._transport.resume_reading()  # to see the upstream close an idle connection
        self._wake()
