"""gateway.upstream.client's pool over a connection's life: stale keep-alive connections and
the retry, idle expiry and limits, slots under max_connections, and consumers that leave early.
The upstream is the scripted raw server of test_upstream_client_failures.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from gateway.upstream.client import (
    ConnectionClosed,
    PoolTimeout,
    RequestBody,
    UpstreamClient,
)
from tests.test_upstream_client_failures import (
    OK,
    RawExchange,
    Script,
    answer,
    hang,
    scripted,
    until,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def _close_idle_on_second_request(kind: str) -> Script:
    """Answer the first request on a connection keep-alive; drop the connection at the second,
    as an upstream does whose idle timeout fired just as the request was sent."""
    async def script(exchange: RawExchange) -> None:
        if exchange.number == 1:
            exchange.send(OK[:-2] if exchange.request.startswith(b"HEAD") else OK)
        elif kind == "reset":
            exchange.reset()
        else:
            exchange.close()
    return script


async def _streamed(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class TestStaleConnections:
    """A reused connection that died before answering is retried, for idempotent requests."""

    @pytest.mark.parametrize("kind", ["close", "reset"])
    @pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
    async def test_idempotent_is_retried(self, method: str, kind: str) -> None:
        """The request goes again on a new connection and succeeds."""
        async with scripted(_close_idle_on_second_request(kind)) as upstream, \
                UpstreamClient(upstream.url) as client:
            await (await client.request(method, "/", body=b"x" if method == "PUT" else None)).read()
            response = await client.request(method, "/", body=b"x" if method == "PUT" else None)
            assert response.status == 200
            await response.read()
            assert upstream.accepted == 2
            assert len(upstream.requests) == 3

    @pytest.mark.parametrize("kind", ["close", "reset"])
    @pytest.mark.parametrize(("method", "body", "streamed"), [
        pytest.param("POST", None, False, id="POST"),
        pytest.param("PATCH", b"{}", False, id="PATCH"),
        pytest.param("PUT", b"abc", True, id="PUT-streamed-body"),
    ])
    async def test_not_retried(self, method: str, body: bytes | None, streamed: bool,
                               kind: str) -> None:
        """Non-idempotent methods, and bodies that cannot be replayed, raise ConnectionClosed."""
        async with scripted(_close_idle_on_second_request(kind)) as upstream, \
                UpstreamClient(upstream.url) as client:
            await (await client.request("GET", "/")).read()
            sent: RequestBody = _streamed(body or b"") if streamed else body
            with pytest.raises(ConnectionClosed):
                await client.request(method, "/", body=sent,
                                     body_length=len(body or b"") if streamed else None)
            assert upstream.accepted == 1
            assert client.open_connections == 0

    async def test_fresh_connection_is_not_retried(self) -> None:
        """A new connection closed before answering is an answer, not staleness: no retry."""
        async with scripted(answer(b"", then="close")) as upstream, \
                UpstreamClient(upstream.url) as client:
            with pytest.raises(ConnectionClosed):
                await client.request("GET", "/")
            assert upstream.accepted == 1

    async def test_idle_connection_closed_by_upstream_is_not_lent(self) -> None:
        """An idle connection the upstream closed leaves the pool and is not used again."""
        async with scripted(answer(OK, then="close")) as upstream, \
                UpstreamClient(upstream.url) as client:
            await (await client.request("GET", "/")).read()
            await until(lambda: client.open_connections == 0)
            await (await client.request("GET", "/")).read()
            assert upstream.accepted == 2

    async def test_idle_connection_written_to_is_closed(self) -> None:
        """Bytes on an idle connection (a 408 before a close) make the pool drop it at once."""
        idle = asyncio.Event()

        async def talk_while_idle(exchange: RawExchange) -> None:
            exchange.send(OK)
            if exchange.number == 1 and upstream.accepted == 1:
                await idle.wait()
                exchange.send(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")

        async with scripted(talk_while_idle) as upstream, \
                UpstreamClient(upstream.url, keepalive_timeout=60) as client:
            await (await client.request("GET", "/")).read()
            assert client.idle_connections == 1
            idle.set()
            await until(lambda: client.open_connections == 0)
            response = await client.request("POST", "/", body=b"not retried, not needed")
            assert await response.read() == b"ok"
            assert upstream.accepted == 2

    async def test_idle_connections_expire(self) -> None:
        """Idle connections are closed after keepalive_timeout, and the upstream sees the close."""
        async with scripted(answer(OK)) as upstream, \
                UpstreamClient(upstream.url, keepalive_timeout=0.1) as client:
            responses = await asyncio.gather(*(client.request("GET", "/") for _ in range(3)))
            for response in responses:
                await response.read()
            assert client.idle_connections == 3
            await until(lambda: client.open_connections == 0)
            await until(lambda: upstream.open_connections == 0)  # it saw the close

    async def test_max_idle_connections(self) -> None:
        """At most max_idle_connections stay open once their responses are read."""
        async with scripted(answer(OK)) as upstream, \
                UpstreamClient(upstream.url, max_idle_connections=2) as client:
            responses = await asyncio.gather(*(client.request("GET", "/") for _ in range(5)))
            for response in responses:
                await response.read()
            assert (client.idle_connections, client.open_connections) == (2, 2)


class TestMaxConnections:
    """With max_connections, requests wait for a slot, and PoolTimeout bounds the wait."""

    async def test_waits_for_a_slot(self) -> None:
        """A second request waits until the first response is read, then reuses its connection."""
        async with scripted(answer(OK)) as upstream, \
                UpstreamClient(upstream.url, max_connections=1) as client:
            first = await client.request("GET", "/")
            second = asyncio.create_task(client.request("GET", "/"))
            await asyncio.sleep(0)
            assert not second.done()
            await first.read()
            assert await (await second).read() == b"ok"
            assert upstream.accepted == 1

    async def test_pool_timeout(self) -> None:
        """No slot within connect_timeout: PoolTimeout."""
        async with scripted(answer(OK)) as upstream, \
                UpstreamClient(upstream.url, max_connections=1, connect_timeout=0.1) as client:
            first = await client.request("GET", "/")
            with pytest.raises(PoolTimeout):
                await client.request("GET", "/")
            await first.aclose()
            assert client.open_connections == 0


class TestLeavingEarly:
    """A consumer that stops before the end closes the connection; nothing leaks."""

    async def test_aclose_mid_body(self) -> None:
        """aclose() after one chunk closes the connection; the next request opens a new one."""
        async def long_body(exchange: RawExchange) -> None:
            exchange.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            await asyncio.Event().wait()

        async with scripted(long_body) as upstream, UpstreamClient(upstream.url) as client:
            async with await client.request("GET", "/") as response:
                assert await anext(response) == b"abc"
            assert client.open_connections == 0
            assert response.complete

    async def test_cancelled_while_waiting_for_the_body(self) -> None:
        """A task cancelled while it waits for body bytes leaves no connection behind."""
        async def long_body(exchange: RawExchange) -> None:
            exchange.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await asyncio.Event().wait()

        async with scripted(long_body) as upstream, UpstreamClient(upstream.url) as client:
            response = await client.request("GET", "/")
            reading = asyncio.create_task(response.read())
            await until(lambda: response.buffered_bytes == 0 and client.open_connections == 1)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            assert client.open_connections == 0

    async def test_cancelled_while_waiting_for_the_head(self) -> None:
        """A task cancelled before the head arrives leaves no connection behind."""
        async with scripted(hang) as upstream, UpstreamClient(upstream.url) as client:
            request = asyncio.create_task(client.request("GET", "/"))
            await until(lambda: len(upstream.requests) == 1)
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
            assert client.open_connections == 0

    async def test_reading_to_the_end_returns_the_connection(self) -> None:
        """Iterating to the end gives the connection back without aclose()."""
        async with scripted(answer(OK)) as upstream, UpstreamClient(upstream.url) as client:
            response = await client.request("GET", "/")
            assert [chunk async for chunk in response] == [b"ok"]
            assert (client.open_connections, client.idle_connections) == (1, 1)
            await response.aclose()  # after the end: a no-op, the connection stays pooled
            assert client.idle_connections == 1
