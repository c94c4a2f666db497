"""The listener's limits, against the real server: malformed requests, slow clients, caps."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest
from yarl import URL

from gateway.listener import GatewayServer
from tests.conftest import GatewayFactory, RunningGateway, Secrets, log_events

if TYPE_CHECKING:
    import io

    from prometheus_client import CollectorRegistry

SECRET_COOKIE = "_cognito_gateway=gAAAAAB-not-for-your-eyes-0123456789"


def port_of(gateway: RunningGateway) -> int:
    port = URL(gateway.url).port
    assert port is not None
    return port


def refused(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("cognito_gateway_requests_refused_total",
                                      {"reason": reason})
    return value or 0.0


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> RunningGateway:
    return await make_gateway(GATEWAY_SERVER_CLIENT_HEADER_TIMEOUT_SECONDS="0.5",
                              GATEWAY_SERVER_CLIENT_BODY_TIMEOUT_SECONDS="0.5",
                              GATEWAY_SERVER_MAX_CONNECTIONS="3",
                              GATEWAY_SERVER_MAX_HEADER_BYTES="16384",
                              GATEWAY_AUTH_PUBLIC_PATHS="/*")


async def read_all(reader: asyncio.StreamReader, within: float = 5.0) -> bytes:
    async with asyncio.timeout(within):
        return await reader.read(-1)


@pytest.mark.parametrize(("header", "status"), [
    (b"Cookie: " + SECRET_COOKIE.encode() + b"; t=\x01", 400),
    (b"X-Bad\x00Name: 1", 400),
    (b"Cookie: " + SECRET_COOKIE.encode() + b"x" * 20000, 431),
    (b"no colon in this header line", 400),
])
async def test_malformed_requests_get_a_fixed_answer_and_one_short_log_line(
        gateway: RunningGateway, log_buffer: io.StringIO, secrets: Secrets,
        header: bytes, status: int) -> None:
    """The parser's refusal echoes nothing (no cookie in the body), logs one warning without
    a traceback, and is counted as malformed."""
    secrets.add(SECRET_COOKIE.partition("=")[2])
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway))
    writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\n" + header + b"\r\n\r\n")
    answer = await read_all(reader)
    writer.close()
    assert answer.startswith((f"HTTP/1.1 {status} ".encode(), f"HTTP/1.0 {status} ".encode()))
    assert b"not-for-your-eyes" not in answer
    assert b"Traceback" not in answer
    lines = [e for e in log_events(log_buffer) if e.get("logger") != "gateway.access"]
    assert [e["event"] for e in lines if e["level"] in {"warning", "error"}] == [
        "malformed_request"]
    assert "Traceback" not in log_buffer.getvalue()
    assert refused(gateway.metrics.registry, "malformed") == 1


async def test_headers_sent_too_slowly_get_408(gateway: RunningGateway) -> None:
    """A client dribbling its headers is answered 408 and disconnected after the timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway))
    started = time.monotonic()
    writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\n")
    answer = await read_all(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 0.4 < time.monotonic() - started < 3
    assert refused(gateway.metrics.registry, "header_timeout") == 1


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
        gateway: RunningGateway) -> None:
    """Connecting and staying silent holds a slot only for the header timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway))
    answer = await read_all(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_stalled_request_body_gets_408(gateway: RunningGateway) -> None:
    """A body that stops arriving fails the request with 408 after the body timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway))
    writer.write(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789")
    started = time.monotonic()
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.readuntil(b"}")
    writer.close()
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"request_body_timeout" in body
    assert time.monotonic() - started < 3


async def test_connections_over_the_cap_get_503(gateway: RunningGateway) -> None:
    """With max_connections = 3, a fourth simultaneous connection is answered 503 and closed,
    and a slot frees when a connection closes."""
    held = [await asyncio.open_connection("127.0.0.1", port_of(gateway)) for _ in range(3)]
    for reader, writer in held:
        writer.write(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
        async with asyncio.timeout(5):
            assert (await reader.readline()).startswith(b"HTTP/1.1 200 ")
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway))
    assert (await read_all(reader)).startswith(b"HTTP/1.1 503 ")
    writer.close()
    assert refused(gateway.metrics.registry, "too_many_connections") == 1
    held[0][1].close()
    await held[0][1].wait_closed()
    async with asyncio.timeout(5):
        while open_connections(gateway) >= 3:  # noqa: ASYNC110 - no event for a close
            await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway))
    writer.write(b"GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert (await read_all(reader)).startswith(b"HTTP/1.1 200 ")
    writer.close()
    for _, w in held[1:]:
        w.close()
        await w.wait_closed()


def open_connections(gateway: RunningGateway) -> int:
    """Connections the gateway's listener counts as open."""
    server = gateway.runner.server
    assert isinstance(server, GatewayServer)
    return server.open_connections


@pytest.mark.parametrize(("extra", "status"), [
    pytest.param(0, 200, id="a header of exactly max_header_bytes: served"),
    pytest.param(1, 431, id="one byte more: 431"),
])
async def test_a_header_line_at_the_size_limit_is_served_and_one_byte_more_is_refused(
        gateway: RunningGateway, extra: int, status: int) -> None:
    """max_header_bytes = 16384 counts the header's value (what a large cookie grows)."""
    value = b"v" * (16384 + extra)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway))
    writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Pad: " + value
                 + b"\r\n\r\n")
    answer = await read_all(reader)
    writer.close()
    assert answer.startswith((f"HTTP/1.1 {status} ".encode(), f"HTTP/1.0 {status} ".encode()))
