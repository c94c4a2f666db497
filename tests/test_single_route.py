"""The listener's direct call of a single-route app: same behaviour as aiohttp's own routing."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from gateway.listener import GatewayRunner, ListenerLimits
from gateway.observability.metrics import Metrics
from gateway.single_route import single_route_handler
from tests.support.ports import listening_socket

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

LIMITS = ListenerLimits(max_connections=10, header_timeout=5.0, max_header_bytes=8190)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(text=f"{request.method} {request.raw_path} {len(body)}")


@web.middleware
async def stamp(request: web.Request,
                handler: Callable[[web.Request], object]) -> web.StreamResponse:
    response = await handler(request)  # type: ignore[misc]
    assert isinstance(response, web.StreamResponse)
    response.headers["X-Middleware"] = "ran"
    return response


async def prepared(_request: web.BaseRequest, response: web.StreamResponse) -> None:
    response.headers["X-Prepared"] = "ran"


def one_route_app() -> web.Application:
    app = web.Application(middlewares=[stamp])
    app.on_response_prepare.append(prepared)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


def two_routes() -> web.Application:
    app = one_route_app()
    app.router.add_get("/other", echo)
    return app


def a_sub_app() -> web.Application:
    app = one_route_app()
    app.add_subapp("/sub", web.Application())
    return app


def one_method() -> web.Application:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", echo)
    return app


@pytest.mark.parametrize("make", [two_routes, a_sub_app, one_method],
                         ids=["two-routes", "sub-app", "one-method"])
def test_an_app_of_another_shape_keeps_aiohttps_routing(
        make: Callable[[], web.Application]) -> None:
    """Only a frozen app with one any-method route is called directly; others get None."""
    app = make()
    app.freeze()
    assert single_route_handler(app) is None


def test_an_unfrozen_app_keeps_aiohttps_routing() -> None:
    """An app that may still change is not resolved ahead of time."""
    assert single_route_handler(one_route_app()) is None


@pytest.fixture
async def port() -> AsyncIterator[int]:
    with listening_socket() as sock:
        runner = GatewayRunner(one_route_app(), limits=LIMITS, metrics=Metrics())
        await runner.setup()
        await web.SockSite(runner, sock).start()
        try:
            yield sock.getsockname()[1]
        finally:
            await runner.cleanup()


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(5):
            return await reader.read(-1)
    finally:
        writer.close()


@pytest.mark.parametrize(("request_bytes", "expected"), [
    (b"GET /a/b?q=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
     [b"HTTP/1.1 200 OK", b"X-Middleware: ran", b"X-Prepared: ran", b"GET /a/b?q=1 0"]),
    (b"POST /up HTTP/1.1\r\nHost: h\r\nConnection: close\r\nExpect: 100-continue\r\n"
     b"Content-Length: 3\r\n\r\nabc",
     [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", b"X-Prepared: ran", b"POST /up 3"]),
    (b"POST /up HTTP/1.1\r\nHost: h\r\nConnection: close\r\nExpect: teapot\r\n"
     b"Content-Length: 0\r\n\r\n",
     [b"HTTP/1.1 417 Expectation Failed"]),
], ids=["middleware-and-prepare-signal", "expect-100-continue", "unknown-expectation"])
async def test_the_direct_call_serves_as_aiohttps_routing_would(
        port: int, request_bytes: bytes, expected: list[bytes]) -> None:
    """Middlewares, on_response_prepare and Expect handling all work on the direct path."""
    answer = await exchange(port, request_bytes)
    for part in expected:
        assert part in answer


async def test_the_listener_calls_a_single_route_app_directly() -> None:
    """The gateway's runner serves a single-route app without aiohttp's per-request routing."""
    app = one_route_app()
    runner = GatewayRunner(app, limits=LIMITS, metrics=Metrics())
    await runner.setup()
    try:
        assert runner.server is not None
        assert runner.server.request_handler.__qualname__ == "single_route_handler.<locals>.handle"
    finally:
        await runner.cleanup()
