"""Tracing through the whole gateway: sign-in and proxied requests, exported to a real OTLP
receiver (the dev IdP, the test upstream, redis-server and the gateway are real servers on
127.0.0.1). Needs the `otel` extra.

These are the acceptance tests of the call sites (`create_app(..., tracing=)`, the request
middleware, the guard, the proxy, the token client, the JWKS cache, the Redis client, the
access log): they fail until those are wired, and are marked so; the mark goes with the wiring.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest
from aiohttp import web

pytest.importorskip("opentelemetry.sdk.trace", reason="needs the otel extra")


from typing import TYPE_CHECKING

from gateway.app import create_app
from gateway.config import load_settings
from gateway.express import EXPRESS_LANE
from gateway.observability.tracing import (
    AUTH_DECISION,
    COGNITO_REQUEST_ID,
    DB_OPERATION,
    DB_SYSTEM,
    ENDUSER_ID,
    GRANT_TYPE,
    HTTP_STATUS_CODE,
    OUTCOME,
    Tracing,
)
from gateway.observability.tracing_setup import setup_tracing
from tests.conftest import ALICE, Secrets, gateway_env, log_events, sign_in_cookies, start_gateway
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.redis_servers import RedisServer

if TYPE_CHECKING:
    import io
    import socket
    from pathlib import Path

    from gateway.devidp import DevIdp

TracedGateway = Callable[..., Awaitable[str]]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def tracing(receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tracing]:
    """Tracing on, exporting to the receiver, from the OTEL_* variables alone."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    traced = setup_tracing()
    yield traced
    traced.shutdown()


@pytest.fixture
async def traced_gateway(idp: DevIdp, upstream: str, gateway_url: str,
                         gateway_socket: socket.socket, secrets: Secrets,
                         tracing: Tracing) -> AsyncIterator[TracedGateway]:
    """Start the gateway with tracing on, as `cognito-gateway run` builds it."""
    runners: list[web.AppRunner] = []

    async def start(**overrides: str) -> str:
        env = gateway_env(idp, upstream, gateway_url, **overrides)
        secrets.add(env["GATEWAY_SESSION_SECRET"])
        runner, _ = await start_gateway(env, gateway_socket, tracing=tracing)
        runners.append(runner)
        return gateway_url

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        yield server.url()
    finally:
        server.close()


async def test_a_sign_in_and_a_proxied_request_are_traced(
        traced_gateway: TracedGateway, tracing: Tracing, receiver: OtlpReceiver,
        log_buffer: io.StringIO) -> None:
    """The callback's span holds the code exchange; the proxied request's span holds the
    decision, the sub and the upstream call, whose traceparent the upstream received; log
    lines and the access line carry the trace id; no cookie and no path is exported."""
    url = await traced_gateway()
    cookie = await sign_in_cookies(url)
    async with aiohttp.ClientSession() as http, http.get(
            f"{url}/some/page?q=1", headers={"Cookie": cookie}) as resp:
        assert resp.status == 200
        echoed = await resp.json()
    await asyncio.to_thread(tracing.force_flush)

    callback = receiver.span("GET /oauth2/callback")
    token = receiver.span("cognito.token")
    assert token.parent_span_id == callback.span_id
    assert token.attributes[GRANT_TYPE] == "authorization_code"
    assert (token.attributes[OUTCOME], token.attributes[HTTP_STATUS_CODE]) == ("ok", 200)
    assert COGNITO_REQUEST_ID in token.attributes
    assert receiver.span("cognito.jwks").attributes[OUTCOME] == "ok"

    _, trace_id, parent_id, _ = dict(echoed["headers"])["traceparent"].split("-")
    [proxied] = [s for s in receiver.spans if s.name == "GET proxy" and s.trace_id == trace_id]
    [upstream_span] = [s for s in receiver.spans if s.span_id == parent_id]
    assert (upstream_span.name, upstream_span.parent_span_id) == ("upstream", proxied.span_id)
    assert proxied.attributes[AUTH_DECISION] == "allowed"
    assert proxied.attributes[ENDUSER_ID] == ALICE.subject
    redirected = [s for s in receiver.spans if s.attributes.get(AUTH_DECISION) == "redirected"]
    assert [s.attributes[HTTP_STATUS_CODE] for s in redirected] == [302]

    lines = log_events(log_buffer)
    [signed_in] = [e for e in lines if e["event"] == "signed_in"]
    assert signed_in["trace_id"] == callback.trace_id
    [access] = [e for e in lines if e["event"] == "request" and e["path"] == "/some/page"]
    assert access["trace_id"] == proxied.trace_id
    session_cookie = cookie.split(";")[0].split("=", 1)[1]
    for body in receiver.bodies:
        assert session_cookie[:40].encode() not in body
        assert b"/some/page" not in body


@pytest.mark.redis
async def test_redis_commands_are_child_spans(traced_gateway: TracedGateway, redis_url: str,
                                              tracing: Tracing,
                                              receiver: OtlpReceiver) -> None:
    """With the Redis store each command is a span under the request that made it, naming
    the command and nothing else."""
    url = await traced_gateway(GATEWAY_SESSION_STORE="redis",
                               GATEWAY_SESSION_REDIS_URL=redis_url)
    await sign_in_cookies(url)
    await asyncio.to_thread(tracing.force_flush)
    servers = {s.span_id for s in receiver.spans if s.kind == "SERVER"}
    commands = [s for s in receiver.spans if s.name == "redis"]
    assert {s.attributes[DB_OPERATION] for s in commands} >= {"GET", "SET"}
    for span in commands:
        assert span.parent_span_id in servers
        assert set(span.attributes) <= {DB_SYSTEM, DB_OPERATION, "error.type"}


async def test_a_traced_app_serves_every_request_the_full_way(
        tracing: Tracing, idp: DevIdp, upstream: str, gateway_url: str) -> None:
    """A traced request's spans are made on the full path: with tracing on, the app has no
    express lane (gateway/express.py); without, it has one."""
    settings = load_settings(environ=gateway_env(idp, upstream, gateway_url))
    assert EXPRESS_LANE not in create_app(settings, tracing=tracing)
    assert EXPRESS_LANE in create_app(settings)
