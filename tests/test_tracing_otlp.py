"""Tracing on: the OpenTelemetry SDK's own OTLP/HTTP exporter, sending to a real receiver.

Every test configures tracing through the OTEL_* variables, as an operator would, and reads
what arrived at `tests.support.otlp_receiver`. Exports are made deterministic with
`force_flush()`; nothing waits for the batch timer. Needs the `otel` extra.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import aiohttp
import pytest
import structlog
from aiohttp import web
from multidict import CIMultiDict

pytest.importorskip("opentelemetry.sdk.trace", reason="needs the otel extra")

from typing import TYPE_CHECKING

from gateway import __version__
from gateway.errors import TokenEndpointError
from gateway.observability.tracing import (
    COGNITO_REQUEST_ID,
    DB_OPERATION,
    DB_SYSTEM,
    ENDUSER_ID,
    ERROR_TYPE,
    GRANT_TYPE,
    HTTP_METHOD,
    HTTP_ROUTE,
    HTTP_STATUS_CODE,
    OUTCOME,
    Span,
    Tracing,
    add_trace_id,
    log_ids_source,
)
from gateway.observability.tracing_setup import setup_tracing
from gateway.upstream.forwarding import TrustedProxies
from tests.conftest import log_events, serve
from tests.support.otlp_receiver import PROTOBUF, OtlpReceiver, ReceivedSpan
from tests.support.ports import refusing_port

if TYPE_CHECKING:
    import io

SUB = "6f2c7a4e-90b1-4c4e-8a59-3b1f0e6d2c11"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
JWT = ("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiI2ZjJjN2E0ZSIsInRva2VuX3VzZSI6ImFjY2Vzcy"
       "J9.c2lnbmF0dXJl")
BATCH_THREAD = "OtelBatchSpanRecordProcessor"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FORBIDDEN = [
    ("cookie", "_cognito_gateway=gAAAAABsession-cookie-value"),
    ("http.request.header.authorization", "Bearer " + JWT),
    ("url.query", "code=authorization-code-4f1b7d2c"),
    ("url.full", "https://app.example.com/cb?state=state-value-91c2"),
    (ENDUSER_ID, JWT),
    ("enduser.email", "alice@example.com"),
    (COGNITO_REQUEST_ID, "refresh_token=refresh-token-value-77a1"),
]


def traceparent(trace_id: str = CLIENT_TRACE, span_id: str = CLIENT_SPAN,
                flags: str = "01") -> str:
    return f"00-{trace_id}-{span_id}-{flags}"


def parent_of(header: str) -> tuple[str, str, bool]:
    """Trace id, parent span id and the sampled flag of a traceparent (the SDK also sets the
    level-2 random-trace-id flag, 0x02, on the traces it starts)."""
    version, trace_id, span_id, flags = header.split("-")
    assert version == "00"
    return trace_id, span_id, bool(int(flags, 16) & 1)


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from an environment without OTEL_* variables."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


TracingFactory = Callable[..., Tracing]


@pytest.fixture
def make_tracing(receiver: OtlpReceiver,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[TracingFactory]:
    """`setup_tracing()` exporting to the receiver, with extra OTEL_* variables; shut down
    after the test."""
    made: list[Tracing] = []

    def make(**environ: str) -> Tracing:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        tracing = setup_tracing()
        assert tracing.enabled
        made.append(tracing)
        return tracing

    yield make
    for tracing in made:
        tracing.shutdown()


@pytest.fixture
def tracing(make_tracing: TracingFactory) -> Tracing:
    return make_tracing()


def exported(tracing: Tracing, receiver: OtlpReceiver) -> list[ReceivedSpan]:
    """Everything ended so far, after the exporter delivered it."""
    assert tracing.force_flush()
    return receiver.spans


class TestExport:
    """Spans leave through the SDK's exporter and arrive whole."""

    def test_a_request_span_and_its_upstream_span_arrive_linked(
            self, tracing: Tracing, receiver: OtlpReceiver) -> None:
        """One trace: the client span's parent is the server span; the injected traceparent
        names the client span, so the upstream's spans hang under it."""
        upstream_headers: dict[str, str] = {}
        with tracing.server_span("GET", "proxy", {}, trusted_parent=False) as span:
            span.set_decision("allowed", "default")
            span.set_principal_sub(SUB)
            with tracing.client_span("upstream", {HTTP_METHOD: "GET"}) as call:
                tracing.inject(upstream_headers)
                call.set_status_code(200)
            span.set_status_code(200)
        server, client = receiver_spans = exported(tracing, receiver)[::-1]
        assert [s.name for s in receiver_spans] == ["GET proxy", "upstream"]
        assert (server.kind, client.kind) == ("SERVER", "CLIENT")
        assert client.trace_id == server.trace_id
        assert client.parent_span_id == server.span_id
        assert server.parent_span_id is None
        assert list(upstream_headers) == ["traceparent"]
        assert parent_of(upstream_headers["traceparent"]) == (server.trace_id, client.span_id,
                                                              True)
        assert server.attributes == {
            HTTP_METHOD: "GET", HTTP_ROUTE: "proxy", "gateway.auth.decision": "allowed",
            "gateway.auth.rule": "default", ENDUSER_ID: SUB, HTTP_STATUS_CODE: 200}
        assert client.attributes == {HTTP_METHOD: "GET", HTTP_STATUS_CODE: 200}
        assert (server.status, client.status) == ("UNSET", "UNSET")

    def test_inject_outside_a_client_span_names_the_server_span(
            self, tracing: Tracing, receiver: OtlpReceiver) -> None:
        """Without a client span the upstream's parent is the request's span."""
        headers: dict[str, str] = {}
        with tracing.server_span("POST", "/oauth2/sign_out", {}, trusted_parent=False) as span:
            tracing.inject(headers)
            assert span.trace_id == tracing.trace_id()
        exported(tracing, receiver)
        server = receiver.span("POST /oauth2/sign_out")
        assert parent_of(headers["traceparent"]) == (server.trace_id, server.span_id, True)

    def test_start_up_names_the_service_and_the_sampler(
            self, make_tracing: TracingFactory, log_buffer: io.StringIO) -> None:
        """One `tracing_on` line says what the operator configured."""
        make_tracing(OTEL_SERVICE_NAME="edge-auth", OTEL_TRACES_SAMPLER="traceidratio",
                     OTEL_TRACES_SAMPLER_ARG="0.25")
        [line] = [e for e in log_events(log_buffer) if e["event"].startswith("tracing")]
        assert (line["event"], line["level"]) == ("tracing_on", "info")
        assert line["service_name"] == "edge-auth"
        assert line["sampler"] == "TraceIdRatioBased{0.25}"

    @pytest.mark.parametrize("environ", [
        {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "5000"},
        {"OTEL_BSP_SCHEDULE_DELAY": "-1"},
    ], ids=["batch-larger-than-queue", "negative-delay"])
    def test_settings_the_sdk_refuses_leave_tracing_off(
            self, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch,
            log_buffer: io.StringIO, environ: dict[str, str]) -> None:
        """The SDK raises on some OTEL_BSP_* values: tracing stays off, with a warning, and
        the gateway starts."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        assert not setup_tracing().enabled
        [line] = [e for e in log_events(log_buffer) if e["event"] == "tracing_off"]
        assert line["reason"] == "invalid_settings"
        assert "OTEL_BSP_" in line["hint"]
        assert log_ids_source() is None

    @pytest.mark.parametrize(("environ", "service_name", "extra"), [
        ({}, "cognito-gateway", {}),
        ({"OTEL_SERVICE_NAME": "edge-auth"}, "edge-auth", {}),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes,k8s.pod.name=myapp-0"},
         "from-attributes", {"k8s.pod.name": "myapp-0"}),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}, "cognito-gateway", {}),
        ({"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "deflate"}, "cognito-gateway", {}),
    ], ids=["default", "service-name", "resource-attributes", "gzip", "deflate"])
    def test_the_resource_names_the_gateway(
            self, make_tracing: TracingFactory, receiver: OtlpReceiver,
            environ: dict[str, str], service_name: str, extra: dict[str, str]) -> None:
        """service.name defaults to cognito-gateway, the OTEL_* variables win;
        service.version is the gateway's."""
        tracing = make_tracing(**environ)
        with tracing.server_span("GET", "/ping", {}, trusted_parent=False):
            pass
        [span] = exported(tracing, receiver)
        assert span.resource["service.name"] == service_name
        assert span.resource["service.version"] == __version__
        assert extra.items() <= span.resource.items()
        assert span.scope == "gateway"

    @pytest.mark.parametrize(("environ", "kept"), [
        ({"OTEL_TRACES_SAMPLER": "always_off"}, False),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, False),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"},
         True),
    ], ids=["always-off", "ratio-0", "parent-based-ratio-1"])
    def test_the_sampler_comes_from_the_environment(
            self, make_tracing: TracingFactory, receiver: OtlpReceiver,
            environ: dict[str, str], kept: bool) -> None:
        """OTEL_TRACES_SAMPLER decides what is exported; an unsampled request still has a
        trace id for its log lines and the upstream."""
        tracing = make_tracing(**environ)
        headers: dict[str, str] = {}
        with tracing.server_span("GET", "proxy", {}, trusted_parent=False) as span:
            tracing.inject(headers)
            assert span.trace_id is not None
        assert bool(exported(tracing, receiver)) is kept
        trace_id, _, sampled = parent_of(headers["traceparent"])
        assert (trace_id, sampled) == (span.trace_id, kept)


class TestTraceContext:
    """A client's traceparent is followed only from a trusted proxy."""

    def test_a_trusted_parent_is_continued(self, tracing: Tracing,
                                           receiver: OtlpReceiver) -> None:
        """From a trusted proxy the request joins the caller's trace, tracestate included."""
        incoming = CIMultiDict({"TraceParent": traceparent(), "TraceState": "vendor=abc"})
        upstream: CIMultiDict[str] = CIMultiDict()
        with tracing.server_span("GET", "proxy", incoming, trusted_parent=True):
            tracing.inject(upstream)
        [server] = exported(tracing, receiver)
        assert (server.trace_id, server.parent_span_id) == (CLIENT_TRACE, CLIENT_SPAN)
        assert upstream["tracestate"] == "vendor=abc"

    def test_an_untrusted_parent_is_ignored_and_replaced(
            self, tracing: Tracing, receiver: OtlpReceiver) -> None:
        """From anyone else a new trace starts, and the client's trace headers do not reach
        the upstream: the gateway's replace them, in whatever case they came."""
        incoming = CIMultiDict({"traceparent": traceparent(), "tracestate": "vendor=abc"})
        upstream = CIMultiDict([("TraceParent", traceparent()), ("traceparent", traceparent()),
                                ("TraceState", "vendor=abc")])
        with tracing.server_span("GET", "proxy", incoming, trusted_parent=False):
            tracing.inject(upstream)
        [server] = exported(tracing, receiver)
        assert server.trace_id != CLIENT_TRACE
        assert server.parent_span_id is None
        [sent] = upstream.getall("traceparent")
        assert parent_of(sent) == (server.trace_id, server.span_id, True)
        assert "tracestate" not in upstream

    @pytest.mark.parametrize(("trusted", "exported_spans"), [(True, 0), (False, 1)],
                             ids=["trusted", "untrusted"])
    def test_only_a_trusted_parent_may_switch_sampling_off(
            self, tracing: Tracing, receiver: OtlpReceiver, trusted: bool,
            exported_spans: int) -> None:
        """A trusted caller's "not sampled" is honoured; an untrusted client cannot hide its
        requests (nor force sampling: its flags are never read)."""
        incoming = {"traceparent": traceparent(flags="00")}
        with tracing.server_span("GET", "proxy", incoming, trusted_parent=trusted):
            pass
        assert len(exported(tracing, receiver)) == exported_spans

    @pytest.mark.parametrize("value", [
        "00-zzzz-00f067aa0ba902b7-01", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "garbage",
    ], ids=["not-hex", "zero-trace-id", "garbage"])
    def test_a_malformed_trusted_parent_starts_a_new_trace(
            self, tracing: Tracing, receiver: OtlpReceiver, value: str) -> None:
        """An invalid traceparent, even from a trusted proxy, starts a fresh trace."""
        with tracing.server_span("GET", "proxy", {"traceparent": value}, trusted_parent=True):
            pass
        [server] = exported(tracing, receiver)
        assert server.parent_span_id is None
        assert len(server.trace_id) == 32
        assert server.trace_id != "0" * 32


class TestOutcomes:
    """How a span is marked failed: by status, outcome or exception, never with a message."""

    @pytest.mark.parametrize(("kind", "act", "status", "error_type"), [
        ("server", lambda s: s.set_status_code(404), "UNSET", None),
        ("server", lambda s: s.set_status_code(503), "ERROR", "503"),
        ("client", lambda s: s.set_status_code(404), "ERROR", "404"),
        ("client", lambda s: s.set_status_code(302), "UNSET", None),
        ("client", lambda s: s.set_outcome("ok"), "UNSET", None),
        ("client", lambda s: s.set_outcome("invalid_grant"), "ERROR", "invalid_grant"),
        ("server", lambda s: s.record_error("upstream_reset"), "ERROR", "upstream_reset"),
        ("client", lambda s: (s.set_outcome("invalid_client"), s.set_status_code(400)),
         "ERROR", "invalid_client"),
    ], ids=["server-404", "server-503", "client-404", "client-302", "outcome-ok",
            "outcome-error", "recorded-error", "outcome-before-status"])
    def test_status(self, tracing: Tracing, receiver: OtlpReceiver, kind: str,
                    act: Callable[[Span], object], status: str,
                    error_type: str | None) -> None:
        """Server spans fail from 500, client spans from 400, calls on an outcome other than
        ok; the first error type recorded stays."""
        scope = (tracing.server_span("GET", "proxy", {}, trusted_parent=False)
                 if kind == "server" else tracing.client_span("cognito.token"))
        with scope as span:
            act(span)
        [received] = exported(tracing, receiver)
        assert received.status == status
        assert received.attributes.get(ERROR_TYPE) == error_type
        assert received.status_message == ""

    def test_an_exception_is_recorded_by_class_name_only(
            self, tracing: Tracing, receiver: OtlpReceiver) -> None:
        """error.type is the class; no event, no status message: the message text (which may
        hold anything) never leaves the process."""
        with pytest.raises(ValueError, match="client-secret-in-a-message"), \
                tracing.client_span("cognito.token", {GRANT_TYPE: "authorization_code"}):
            raise ValueError("client-secret-in-a-message")
        [span] = exported(tracing, receiver)
        assert (span.status, span.attributes[ERROR_TYPE]) == ("ERROR", "ValueError")
        assert span.events == []
        assert span.status_message == ""
        assert not any(b"client-secret-in-a-message" in body for body in receiver.bodies)

    def test_an_outcome_recorded_before_the_exception_is_kept(
            self, tracing: Tracing, receiver: OtlpReceiver) -> None:
        """A token call that set its outcome and then raised reports the outcome, not the
        exception class."""
        def refresh() -> None:
            with tracing.client_span("cognito.token", {GRANT_TYPE: "refresh_token"}) as span:
                span.set_outcome("timeout")
                raise TokenEndpointError(grant_type="refresh_token", outcome="timeout",
                                         http_status=None, error=None, error_description=None,
                                         hint="", request_id=None)

        with pytest.raises(TokenEndpointError):
            refresh()
        [received] = exported(tracing, receiver)
        assert received.attributes[ERROR_TYPE] == "timeout"
        assert received.attributes[OUTCOME] == "timeout"

    @pytest.mark.parametrize(("raised", "status", "code"), [
        (web.HTTPFound("/next"), "UNSET", 302),
        (web.HTTPServiceUnavailable(), "ERROR", 503),
    ], ids=["redirect", "service-unavailable"])
    def test_an_aiohttp_http_exception_is_an_answer(
            self, tracing: Tracing, receiver: OtlpReceiver, raised: web.HTTPException,
            status: str, code: int) -> None:
        """aiohttp raises its answers (a redirect is HTTPFound): the status code decides."""
        with pytest.raises(web.HTTPException), \
                tracing.server_span("GET", "/oauth2/sign_in", {}, trusted_parent=False):
            raise raised
        [span] = exported(tracing, receiver)
        assert (span.status, span.attributes[HTTP_STATUS_CODE]) == (status, code)

    async def test_a_cancelled_request_is_marked(self, tracing: Tracing,
                                                 receiver: OtlpReceiver) -> None:
        """A client that disconnects cancels the handler: the span ends, marked cancelled."""
        entered = asyncio.Event()

        async def handler() -> None:
            with tracing.server_span("GET", "proxy", {}, trusted_parent=False):
                entered.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(handler())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        [span] = await asyncio.to_thread(exported, tracing, receiver)
        assert span.attributes[ERROR_TYPE] == "CancelledError"


class TestAllowList:
    """Nothing off the allow-list reaches the collector, however it is set."""

    @pytest.mark.parametrize(("key", "value"), FORBIDDEN, ids=[k for k, _ in FORBIDDEN])
    def test_a_forbidden_attribute_never_arrives(self, tracing: Tracing,
                                                 receiver: OtlpReceiver, key: str,
                                                 value: str) -> None:
        """Set on a server span, a client span's start or later: the value is in no byte the
        exporter sent."""
        with tracing.server_span("GET", "proxy", {}, trusted_parent=False) as span:
            span.set_attribute(key, value)
            with tracing.client_span("upstream", {key: value, HTTP_METHOD: "GET"}) as call:
                call.set_attribute(key, value)
        spans = exported(tracing, receiver)
        assert len(spans) == 2
        assert all(key not in span.attributes for span in spans)
        assert not any(value.encode() in body for body in receiver.bodies)

    @pytest.mark.parametrize(("sub", "kept"), [(SUB, True), (JWT, False), (None, False)],
                             ids=["uuid", "token-shaped", "anonymous"])
    def test_the_principal_is_the_sub_only(self, tracing: Tracing, receiver: OtlpReceiver,
                                           sub: str | None, kept: bool) -> None:
        """enduser.id carries a sub-shaped value, or nothing."""
        with tracing.server_span("GET", "proxy", {}, trusted_parent=False) as span:
            span.set_principal_sub(sub)
        [received] = exported(tracing, receiver)
        assert (ENDUSER_ID in received.attributes) is kept

    @pytest.mark.parametrize(("method", "route", "name"), [
        ("GET", "/oauth2/callback", "GET /oauth2/callback"),
        ("PROPFIND", "proxy", "HTTP proxy"),
        ("GET", "/users/alice@example.com?code=abc", "GET"),
    ], ids=["endpoint", "unknown-method", "path-as-route"])
    def test_the_span_name_is_bounded(self, tracing: Tracing, receiver: OtlpReceiver,
                                      method: str, route: str, name: str) -> None:
        """Method and route label only: an unknown method is HTTP, a route that is not a
        label is left out (a path never names a span)."""
        with tracing.server_span(method, route, {}, trusted_parent=False):
            pass
        [span] = exported(tracing, receiver)
        assert span.name == name
        assert not any(b"alice@example.com" in body for body in receiver.bodies)

    @pytest.mark.parametrize(("routes", "name"), [
        ([], "GET"),
        (["/oauth2/callback"], "GET /oauth2/callback"),
        (["proxy"], "GET proxy"),
        (["/users/alice@example.com"], "GET"),
        (["proxy", "/users/alice@example.com"], "GET proxy"),
    ], ids=["unrouted", "endpoint", "proxied", "path-refused", "path-after-label"])
    def test_the_route_is_set_once_routed(self, tracing: Tracing, receiver: OtlpReceiver,
                                          routes: list[str], name: str) -> None:
        """A span opened before routing is renamed by `set_route`; a route that is not a
        label changes nothing."""
        with tracing.server_span("GET", None, {}, trusted_parent=False) as span:
            for route in routes:
                span.set_route(route)
        [received] = exported(tracing, receiver)
        expected_route = name.partition(" ")[2] or None
        assert (received.name, received.attributes.get(HTTP_ROUTE)) == (name, expected_route)

    def test_redis_and_idp_spans_carry_their_labels(self, tracing: Tracing,
                                                    receiver: OtlpReceiver) -> None:
        """The client spans of the token client, the JWKS fetch and Redis, as wired."""
        with tracing.server_span("GET", "/oauth2/callback", {}, trusted_parent=False):
            with tracing.client_span("cognito.token",
                                     {GRANT_TYPE: "authorization_code"}) as token:
                token.set_status_code(200)
                token.set_attribute(COGNITO_REQUEST_ID, "5f0c1f6e-1d2b-4e1c-9a43-9c0f7d1b2e3a")
                token.set_outcome("ok")
            with tracing.client_span("cognito.jwks") as jwks:
                jwks.set_outcome("timeout")
            with tracing.client_span("redis", {DB_SYSTEM: "redis", DB_OPERATION: "SET"}):
                pass
        exported(tracing, receiver)
        assert receiver.span("cognito.token").attributes == {
            GRANT_TYPE: "authorization_code", HTTP_STATUS_CODE: 200,
            COGNITO_REQUEST_ID: "5f0c1f6e-1d2b-4e1c-9a43-9c0f7d1b2e3a", OUTCOME: "ok"}
        assert receiver.span("cognito.jwks").attributes == {OUTCOME: "timeout",
                                                            ERROR_TYPE: "timeout"}
        assert receiver.span("redis").attributes == {DB_SYSTEM: "redis", DB_OPERATION: "SET"}
        server = receiver.span("GET /oauth2/callback")
        assert {s.parent_span_id for s in receiver.spans if s is not server} == {server.span_id}


class TestConcurrency:
    """Spans follow asyncio's context: concurrent requests never adopt each other's spans."""

    async def test_interleaved_requests_keep_their_own_children(
            self, tracing: Tracing, receiver: OtlpReceiver) -> None:
        """Both requests' spans are open at once; each client span is its own request's."""
        opened = {route: asyncio.Event() for route in ("/a", "/b")}
        proceed = {route: asyncio.Event() for route in ("/a", "/b")}

        async def request(route: str) -> None:
            with tracing.server_span("GET", route, {}, trusted_parent=False):
                opened[route].set()
                await proceed[route].wait()
                with tracing.client_span("upstream", {HTTP_ROUTE: route}):
                    pass

        tasks = [asyncio.create_task(request(route)) for route in ("/a", "/b")]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened.values())), 5)
        proceed["/b"].set()
        proceed["/a"].set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        spans = await asyncio.to_thread(exported, tracing, receiver)
        servers = {s.span_id: s.name for s in spans if s.kind == "SERVER"}
        clients = [s for s in spans if s.kind == "CLIENT"]
        assert len(servers) == len(clients) == 2
        for client in clients:
            parent = servers[client.parent_span_id or ""]
            assert parent.removeprefix("GET ") == client.attributes[HTTP_ROUTE]

    async def test_a_task_started_in_a_request_is_its_child(
            self, tracing: Tracing, receiver: OtlpReceiver) -> None:
        """A fetch started as a task (the shared JWKS refetch) hangs under the request that
        started it."""
        async def fetch() -> None:
            with tracing.client_span("cognito.jwks") as span:
                span.set_outcome("ok")

        with tracing.server_span("GET", "proxy", {}, trusted_parent=False):
            await asyncio.create_task(fetch())
        await asyncio.to_thread(tracing.force_flush)
        assert receiver.span("cognito.jwks").parent_span_id == receiver.span(
            "GET proxy").span_id


class TestInAnAiohttpApp:
    """The facade inside aiohttp's request handling, wired as the gateway wires it."""

    @pytest.mark.parametrize("trusted", [True, False], ids=["trusted-peer", "untrusted-peer"])
    async def test_a_proxied_request_is_one_trace_down_to_the_upstream(
            self, tracing: Tracing, receiver: OtlpReceiver, trusted: bool) -> None:
        """Middleware span, client span around the upstream call, inject: the upstream
        receives a traceparent naming the client span of the request's trace."""
        seen: list[str] = []

        async def upstream(request: web.Request) -> web.Response:
            seen.append(request.headers.get("traceparent", ""))
            return web.Response(text="upstream")

        upstream_app = web.Application()
        upstream_app.router.add_get("/{tail:.*}", upstream)
        peers = TrustedProxies(["127.0.0.1/32"] if trusted else [])

        @web.middleware
        async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
            with tracing.server_span(request.method, "proxy", request.headers,
                                     trusted_parent=request.remote in peers) as span:
                response = await handler(request)
                span.set_status_code(response.status)
                return response

        async def proxy(request: web.Request) -> web.Response:
            headers: CIMultiDict[str] = CIMultiDict()
            with tracing.client_span("upstream", {HTTP_METHOD: request.method}) as call:
                tracing.inject(headers)
                async with aiohttp.ClientSession() as http, \
                        http.get(f"{upstream_url}/x", headers=headers) as answer:
                    call.set_status_code(answer.status)
                    return web.Response(body=await answer.read())

        gateway_app = web.Application(middlewares=[traced])
        gateway_app.router.add_get("/{tail:.*}", proxy)
        upstream_runner, upstream_url = await serve(upstream_app)
        gateway_runner, gateway_url = await serve(gateway_app)
        try:
            async with aiohttp.ClientSession() as client, client.get(
                    f"{gateway_url}/users/42", headers={"traceparent": traceparent()}) as resp:
                assert (resp.status, await resp.text()) == (200, "upstream")
        finally:
            await gateway_runner.cleanup()
            await upstream_runner.cleanup()
        await asyncio.to_thread(exported, tracing, receiver)
        server, client_span = receiver.span("GET proxy"), receiver.span("upstream")
        assert client_span.parent_span_id == server.span_id
        assert parent_of(seen[0]) == (server.trace_id, client_span.span_id, True)
        assert (server.trace_id == CLIENT_TRACE) is trusted
        assert server.attributes[HTTP_STATUS_CODE] == 200


class TestLogs:
    """The trace id reaches the request's log lines."""

    @pytest.fixture(autouse=True)
    def trace_ids_in_logs(self, log_buffer: io.StringIO) -> None:  # noqa: ARG002 - set up first
        processors = list(structlog.get_config()["processors"])
        if add_trace_id not in processors:
            merge = processors.index(structlog.contextvars.merge_contextvars)
            processors.insert(merge + 1, add_trace_id)
            structlog.configure(processors=processors)

    def test_a_line_logged_in_a_span_names_it(self, tracing: Tracing,
                                              receiver: OtlpReceiver,
                                              log_buffer: io.StringIO) -> None:
        """Inside a span a line has its trace_id and span_id; outside, neither."""
        log = structlog.get_logger("gateway.test")
        with tracing.server_span("GET", "proxy", {}, trusted_parent=False):
            with tracing.client_span("cognito.token"):
                log.warning("token_endpoint_error")
            log.info("after_the_call")
        log.info("outside")
        exported(tracing, receiver)
        lines = {e["event"]: e for e in log_events(log_buffer)}
        token, server = receiver.span("cognito.token"), receiver.span("GET proxy")
        assert lines["token_endpoint_error"]["trace_id"] == token.trace_id
        assert lines["token_endpoint_error"]["span_id"] == token.span_id
        assert lines["after_the_call"]["span_id"] == server.span_id
        assert "trace_id" not in lines["outside"]

    def test_shutdown_takes_the_trace_ids_off_the_logs(self, make_tracing: TracingFactory,
                                                        ) -> None:
        """After shutdown the processor reads nothing again."""
        tracing = make_tracing()
        assert log_ids_source() is not None
        tracing.shutdown()
        assert log_ids_source() is None


class TestLifecycle:
    """One exporter thread while on; shutdown flushes and is bounded."""

    def test_one_batch_thread_runs_until_shutdown(self, make_tracing: TracingFactory,
                                                  receiver: OtlpReceiver) -> None:
        """Tracing on starts the SDK's batch thread; shutdown exports what is left and ends
        it."""
        before = set(threading.enumerate())
        tracing = make_tracing()
        [batch] = [t for t in set(threading.enumerate()) - before if t.name == BATCH_THREAD]
        with tracing.server_span("GET", "proxy", {}, trusted_parent=False):
            pass
        tracing.shutdown()
        assert not batch.is_alive()
        assert [s.name for s in receiver.spans] == ["GET proxy"]

    def test_shutdown_does_not_wait_for_an_unreachable_collector(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A collector that refuses connections costs exit at most the timeout given."""
        with refusing_port() as port:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
            tracing = setup_tracing()
            with tracing.server_span("GET", "proxy", {}, trusted_parent=False):
                pass
            started = time.monotonic()
            tracing.shutdown(timeout_seconds=0.5)
            assert time.monotonic() - started < 2.0
            stopping = [t for t in threading.enumerate() if t.name == "otel-shutdown"]
            for thread in stopping:  # the SDK gives up after OTEL_EXPORTER_OTLP_TIMEOUT
                thread.join(10)
                assert not thread.is_alive()


class TestReceiver:
    """The test receiver answers as the OTLP/HTTP specification says."""

    @pytest.mark.parametrize(("content_type", "body", "status"), [
        (PROTOBUF, b"", 200),
        (PROTOBUF, b"\xff\xff\xff", 400),
        ("application/json", b"{}", 415),
    ], ids=["empty-request", "not-protobuf", "json"])
    async def test_answers(self, receiver: OtlpReceiver, content_type: str, body: bytes,
                           status: int) -> None:
        """200 with an ExportTraceServiceResponse, 400 and 415 with a google.rpc.Status."""
        from google.rpc.status_pb2 import Status  # type: ignore[import-untyped, unused-ignore]

        async with aiohttp.ClientSession() as http, http.post(
                f"{receiver.endpoint}/v1/traces", data=body,
                headers={"Content-Type": content_type}) as resp:
            answer = await resp.read()
            assert (resp.status, resp.content_type) == (status, PROTOBUF)
        if status != 200:
            assert Status.FromString(answer).code == 3
        assert receiver.spans == []
