"""gateway.upstream.client when the upstream misbehaves: framing corners on the wire,
timeouts, resets and closes, malformed responses and oversized heads.

The misbehaving upstream is `ScriptedUpstream`, a raw TCP server that answers each request
with bytes a test scripts, so every failure is produced on purpose rather than by luck. The
other test_upstream_client_* files use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from gateway.upstream.client import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    ReadTimeout,
    RemoteProtocolError,
    UpstreamClient,
    UpstreamResponse,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class RawExchange:
    """One request as the scripted upstream received it, and the means to answer it."""

    request: bytes
    number: int  # 1 for the first request on its connection
    writer: asyncio.StreamWriter
    closed: bool = False

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        """Close the connection with a FIN."""
        self.closed = True
        self.writer.close()

    def reset(self) -> None:
        """Close the connection with a RST (SO_LINGER 0)."""
        self.closed = True
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Script = Callable[[RawExchange], Awaitable[None]]


@dataclass
class ScriptedUpstream:
    """A raw HTTP/1.1 server on 127.0.0.1 whose answers are scripted bytes."""

    script: Script
    accepted: int = 0
    requests: list[bytes] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def open_connections(self) -> int:
        """Connections the upstream still serves (it has not seen them close)."""
        return len(self._tasks)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> ScriptedUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        number = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                body = await _read_body(reader, head)
                self.requests.append(head + body)
                number += 1
                exchange = RawExchange(head + body, number, writer)
                await self.script(exchange)
                if exchange.closed:
                    return
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            # Cancelled by close(): end quietly (asyncio logs a handler task that is cancelled).
            return
        finally:
            self._tasks.discard(task)
            writer.close()


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        body = b""
        while not body.endswith(b"0\r\n\r\n"):
            body += await reader.readuntil(b"\r\n")
        return body
    for line in lowered.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return await reader.readexactly(int(line.split(b":")[1]))
    return b""


@contextlib.asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[ScriptedUpstream]:
    upstream = await ScriptedUpstream(script).start()
    try:
        yield upstream
    finally:
        await upstream.close()


def answer(data: bytes, *, then: str = "keep") -> Script:
    """A script answering every request with `data`, then keeping, closing or resetting."""
    async def script(exchange: RawExchange) -> None:
        exchange.send(data)
        if then == "close":
            await exchange.writer.drain()
            exchange.close()
        elif then == "reset":
            await exchange.writer.drain()
            exchange.reset()
    return script


async def hang(_exchange: RawExchange) -> None:
    """Accept the request and never answer."""
    await asyncio.Event().wait()


async def collect(response: UpstreamResponse, into: list[bytes]) -> None:
    """Read the body chunk by chunk into `into` (what came before an error stays there)."""
    async for chunk in response:
        into.append(chunk)


def assert_nothing_lent(client: UpstreamClient) -> None:
    assert client.open_connections == client.idle_connections, "a connection leaked"


class TestResponsesOnTheWire:
    """Responses only a raw server sends: framing corners, trailers, interim heads."""

    @pytest.mark.parametrize(("response", "body", "reused"), [
        pytest.param(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil close", b"until close", False,
                     id="read-until-close"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: dropped\r\n\r\n", b"abcde", True,
                     id="chunked-with-trailers"),
        pytest.param(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                     + OK, b"ok", True, id="interim-100-and-103"),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok", False,
                     id="http-1.0-closes"),
        pytest.param(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                     b"ok", True, id="http-1.0-keep-alive"),
        pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                     b"ok", False, id="connection-close"),
        pytest.param(OK + b"HTTP/1.1 200 OK\r\n", b"ok", False, id="bytes-after-the-response"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                     b"2\r\nok\r\n0\r\n\r\n", b"ok", True, id="chunked-last-coding"),
    ])
    async def test_framing(self, response: bytes, body: bytes, reused: bool) -> None:
        """Each framing yields exactly its body; only a clean keep-alive end is reused."""
        then = "close" if not reused else "keep"
        async with scripted(answer(response, then=then)) as upstream, \
                UpstreamClient(upstream.url, read_timeout=5) as client:
            response_ = await client.request("GET", "/")
            assert await response_.read() == body
            assert response_.status == 200
            assert ("X-Trailer", "dropped") not in response_.headers
            assert client.idle_connections == (1 if reused else 0)
            assert_nothing_lent(client)

    async def test_interim_heads_are_not_in_the_final_headers(self) -> None:
        """A 103's Link header does not leak into the final response's headers."""
        early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        async with scripted(answer(early + OK)) as upstream, \
                UpstreamClient(upstream.url) as client:
            response = await client.request("GET", "/")
            assert response.headers == [("Content-Length", "2")]
            assert await response.read() == b"ok"

    async def test_head_response_with_a_body_is_not_reused(self) -> None:
        """A HEAD answered with body bytes anyway gives an empty body and a closed connection."""
        script = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        async with scripted(script) as upstream, UpstreamClient(upstream.url) as client:
            response = await client.request("HEAD", "/")
            assert (response.status, response.content_length) == (200, 5)
            assert await response.read() == b""
            assert client.open_connections == 0

    async def test_head_response_is_reused(self) -> None:
        """A HEAD answered with a head only keeps its connection."""
        script = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        async with scripted(script) as upstream, UpstreamClient(upstream.url) as client:
            for _ in range(3):
                response = await client.request("HEAD", "/")
                assert await response.read() == b""
            assert (client.idle_connections, upstream.accepted) == (1, 1)


class TestTimeouts:
    """Every wait has a bound, and each bound has its own exception."""

    async def test_connect_timeout(self) -> None:
        """A listener whose accept queue is full never completes the handshake: ConnectTimeout."""
        with _full_listener() as port:
            async with UpstreamClient(f"http://127.0.0.1:{port}", connect_timeout=0.3) as client:
                started = time.monotonic()
                with pytest.raises(ConnectTimeout):
                    await client.request("GET", "/")
                assert time.monotonic() - started < 2
                assert client.open_connections == 0

    async def test_connection_refused(self) -> None:
        """A port bound but not listening refuses at once: ConnectError."""
        with socket.socket() as bound:
            bound.bind(("127.0.0.1", 0))
            port = bound.getsockname()[1]
            async with UpstreamClient(f"http://127.0.0.1:{port}") as client:
                with pytest.raises(ConnectError) as caught:
                    await client.request("GET", "/")
                assert "127.0.0.1" not in str(caught.value)
                assert client.open_connections == 0

    async def test_read_timeout_before_the_head(self) -> None:
        """An upstream that accepts and never answers: ReadTimeout after read_timeout."""
        async with scripted(hang) as upstream, \
                UpstreamClient(upstream.url, read_timeout=0.2) as client:
            started = time.monotonic()
            with pytest.raises(ReadTimeout):
                await client.request("GET", "/")
            assert 0.19 < time.monotonic() - started < 2
            assert client.open_connections == 0

    async def test_read_timeout_mid_body(self) -> None:
        """Bytes that stop flowing mid-body: the buffered part is read, then ReadTimeout."""
        async def stall(exchange: RawExchange) -> None:
            exchange.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!")
            await asyncio.Event().wait()

        async with scripted(stall) as upstream, \
                UpstreamClient(upstream.url, read_timeout=0.2) as client:
            response = await client.request("GET", "/")
            assert await anext(response) == b"half!"
            with pytest.raises(ReadTimeout):
                await anext(response)
            assert client.open_connections == 0

    async def test_flowing_bytes_are_never_cut(self) -> None:
        """A body slower in total than read_timeout, but never silent that long, arrives whole."""
        async def trickle(exchange: RawExchange) -> None:
            exchange.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(8):
                await asyncio.sleep(0.05)
                exchange.send(b"1\r\nx\r\n")
            exchange.send(b"0\r\n\r\n")

        async with scripted(trickle) as upstream, \
                UpstreamClient(upstream.url, read_timeout=0.2) as client:
            started = time.monotonic()
            response = await client.request("GET", "/")
            assert await response.read() == b"x" * 8
            assert time.monotonic() - started > 0.3  # longer than read_timeout in total


class TestBrokenConnections:
    """Resets and closes become ConnectionClosed; a malformed response RemoteProtocolError."""

    @pytest.mark.parametrize(("script", "error"), [
        pytest.param(answer(b"", then="close"), ConnectionClosed, id="closed-at-once"),
        pytest.param(answer(b"", then="reset"), ConnectionClosed, id="reset-at-once"),
        pytest.param(answer(b"HTTP/1.1 200 OK\r\nContent-", then="close"), ConnectionClosed,
                     id="closed-mid-head"),
        pytest.param(answer(b"NOT HTTP AT ALL\r\n\r\n"), RemoteProtocolError, id="garbage"),
        pytest.param(answer(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
                     RemoteProtocolError, id="switching-protocols"),
        pytest.param(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"),
                     RemoteProtocolError, id="two-content-lengths"),
        pytest.param(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n"),
                     RemoteProtocolError, id="length-and-chunked"),
    ])
    async def test_before_the_head(self, script: Script, error: type[Exception]) -> None:
        """A failure before the response head is raised by request() as its typed error."""
        async with scripted(script) as upstream, UpstreamClient(upstream.url) as client:
            with pytest.raises(error):
                await client.request("GET", "/")
            assert client.open_connections == 0

    @pytest.mark.parametrize(("head", "then"), [
        pytest.param(b"Content-Length: 100\r\n\r\n0123456789", "close", id="length-closed"),
        pytest.param(b"Content-Length: 100\r\n\r\n0123456789", "reset", id="length-reset"),
        pytest.param(b"Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n", "reset",
                     id="chunked-reset"),
        pytest.param(b"Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n", "close",
                     id="chunked-closed"),
    ])
    async def test_mid_body(self, head: bytes, then: str) -> None:
        """A body cut short: the bytes that came are read, then ConnectionClosed."""
        script = answer(b"HTTP/1.1 200 OK\r\n" + head, then=then)
        async with scripted(script) as upstream, UpstreamClient(upstream.url) as client:
            response = await client.request("GET", "/")
            received: list[bytes] = []
            with pytest.raises(ConnectionClosed):
                await collect(response, received)
            assert b"".join(received) == b"0123456789"
            assert client.open_connections == 0

    async def test_bad_chunk_mid_body(self) -> None:
        """A malformed chunk size mid-body is a RemoteProtocolError, not a short body."""
        script = answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n")
        async with scripted(script) as upstream, UpstreamClient(upstream.url) as client:
            response = await client.request("GET", "/")
            with pytest.raises(RemoteProtocolError):
                await response.read()
            assert client.open_connections == 0


class TestHeadLimits:
    """Response heads over max_header_bytes or max_header_count are refused."""

    @pytest.mark.parametrize(("headers", "error_expected"), [
        pytest.param(b"X-Big: " + b"a" * 2000 + b"\r\n", False, id="under-bytes"),
        pytest.param(b"X-Big: " + b"a" * 5000 + b"\r\n", True, id="one-huge-value"),
        pytest.param(b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(50)), True,
                     id="many-lines-over-bytes"),
        pytest.param(b"".join(b"X-%d: v\r\n" % i for i in range(21)), True, id="over-count"),
        pytest.param(b"".join(b"X-%d: v\r\n" % i for i in range(19)), False, id="under-count"),
    ])
    async def test_limits(self, headers: bytes, error_expected: bool) -> None:
        """Over a limit: RemoteProtocolError and the connection closed; under: a response."""
        response = b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 2\r\n\r\nok"
        async with scripted(answer(response)) as upstream, \
                UpstreamClient(upstream.url, max_header_bytes=4096, max_header_count=20) as client:
            if error_expected:
                with pytest.raises(RemoteProtocolError):
                    await client.request("GET", "/")
                assert client.open_connections == 0
            else:
                assert await (await client.request("GET", "/")).read() == b"ok"

    async def test_endless_head_is_cut_at_the_limit(self) -> None:
        """A head that never ends is refused once over the limit, not buffered without end."""
        async def endless(exchange: RawExchange) -> None:
            exchange.send(b"HTTP/1.1 200 OK\r\nX-Endless: ")
            for _ in range(64):
                exchange.send(b"a" * 1024)
                await exchange.writer.drain()
            await asyncio.Event().wait()

        async with scripted(endless) as upstream, \
                UpstreamClient(upstream.url, max_header_bytes=8192, read_timeout=5) as client:
            with pytest.raises(RemoteProtocolError):
                await client.request("GET", "/")

    async def test_endless_interim_heads_are_cut(self) -> None:
        """A flood of 100 Continue heads counts against the head limit."""
        async with scripted(answer(b"HTTP/1.1 100 Continue\r\n\r\n" * 1000)) as upstream, \
                UpstreamClient(upstream.url, max_header_bytes=4096, read_timeout=5) as client:
            with pytest.raises(RemoteProtocolError):
                await client.request("GET", "/")


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll `condition` on the event loop until it holds; fail loudly after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def _full_listener() -> Iterator[int]:
    """A port whose accept queue is full: new handshakes get no answer (SYNs are dropped)."""
    listener = socket.socket()
    filler = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # Linux queues backlog + 1 = 1 connection
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        yield port
    finally:
        filler.close()
        listener.close()
