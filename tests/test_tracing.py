"""Tracing without a collector: the choice made at start, the attribute allow-list, and the
facade that does nothing when tracing is off. None of these need the `otel` extra; the tests
that export to a real OTLP receiver are in test_tracing_otlp.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest
import structlog

from gateway.observability.tracing import (
    AUTH_DECISION,
    AUTH_RULE,
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
    SPAN_OFF,
    TRACING_OFF,
    add_trace_id,
    http_method_label,
    log_ids_source,
    span_attributes,
)
from gateway.observability.tracing_setup import reason_tracing_is_off, setup_tracing
from tests.conftest import log_events

if TYPE_CHECKING:
    import io
    from collections.abc import Callable, Mapping
    from contextlib import AbstractContextManager

ENDPOINT = "http://collector.example:4318"
SUB = "6f2c7a4e-90b1-4c4e-8a59-3b1f0e6d2c11"
JWT = ("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiI2ZjJjN2E0ZSIsInRva2VuX3VzZSI6ImFjY2Vzcy"
       "J9.c2lnbmF0dXJl")


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from an environment without OTEL_* variables."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def trace_ids_in_logs(log_buffer: io.StringIO) -> None:  # noqa: ARG001 - logging set up first
    """The gateway's logging (`log_buffer` configures it per test) with `add_trace_id` after
    the context variables, as the gateway wires it."""
    processors = list(structlog.get_config()["processors"])
    if add_trace_id not in processors:
        merge = processors.index(structlog.contextvars.merge_contextvars)
        processors.insert(merge + 1, add_trace_id)
        structlog.configure(processors=processors)


class TestReasonTracingIsOff:
    """The OTEL_* variables decide, once, whether the gateway traces."""

    @pytest.mark.parametrize(("environ", "reason"), [
        ({}, "no_endpoint"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, "no_endpoint"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, None),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ENDPOINT + "/v1/traces"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"}, "sdk_disabled"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": " TRUE "},
         "sdk_disabled"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "false"}, None),
        ({"OTEL_SDK_DISABLED": "false"}, "no_endpoint"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "none"},
         "exporter_none"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "console"},
         "unsupported_exporter"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "otlp, console"},
         None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
         "unsupported_protocol"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
         "unsupported_protocol"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
          "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
          "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, None),
    ], ids=["nothing-set", "blank-endpoint", "endpoint", "traces-endpoint", "sdk-disabled",
            "sdk-disabled-any-case", "sdk-disabled-false", "disabled-false-no-endpoint",
            "exporter-none", "exporter-console", "exporter-otlp-among-others", "grpc",
            "http-json", "traces-protocol-wins", "http-protobuf"])
    def test_reason(self, environ: Mapping[str, str], reason: str | None) -> None:
        """Tracing is on only with an endpoint, OTLP over HTTP/protobuf, and the SDK enabled."""
        assert reason_tracing_is_off(environ) == reason


class TestSetupTracing:
    """`setup_tracing()` returns the facade that does nothing unless tracing can work."""

    def test_without_an_endpoint_tracing_is_off_quietly(self, log_buffer: io.StringIO) -> None:
        """No endpoint: the null facade, no thread started, nothing logged."""
        threads = set(threading.enumerate())
        assert setup_tracing() is TRACING_OFF
        assert set(threading.enumerate()) == threads
        assert [e for e in log_events(log_buffer) if e["event"].startswith("tracing")] == []

    @pytest.mark.parametrize(("variable", "value", "reason"), [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "unsupported_protocol"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "unsupported_exporter"),
    ], ids=["grpc", "zipkin"])
    def test_a_mistake_leaves_tracing_off_with_a_warning(
            self, monkeypatch: pytest.MonkeyPatch, log_buffer: io.StringIO,
            variable: str, value: str, reason: str) -> None:
        """A setting the gateway cannot honour is named in a warning; the gateway still runs."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT)
        monkeypatch.setenv(variable, value)
        assert setup_tracing() is TRACING_OFF
        [line] = [e for e in log_events(log_buffer) if e["event"] == "tracing_off"]
        assert line["level"] == "warning"
        assert line["reason"] == reason
        assert "OTEL_" in line["hint"]

    def test_a_missing_extra_leaves_tracing_off_with_a_warning(
            self, monkeypatch: pytest.MonkeyPatch, log_buffer: io.StringIO) -> None:
        """An endpoint without OpenTelemetry installed: off, and the warning says what to
        install."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT)
        monkeypatch.setitem(sys.modules, "gateway.observability.otel", None)
        assert setup_tracing() is TRACING_OFF
        [line] = [e for e in log_events(log_buffer) if e["event"] == "tracing_off"]
        assert line["reason"] == "otel_extra_missing"
        assert "cognito-gateway[otel]" in line["hint"]
        assert log_ids_source() is None

    @pytest.mark.parametrize("environ", [
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"},
    ], ids=["no-endpoint", "sdk-disabled"])
    def test_tracing_off_never_imports_opentelemetry(self, environ: dict[str, str]) -> None:
        """Off costs no import: a fresh interpreter has no opentelemetry module loaded."""
        script = ("import sys\n"
                  "from gateway.observability.tracing import TRACING_OFF\n"
                  "from gateway.observability.tracing_setup import setup_tracing\n"
                  "assert setup_tracing() is TRACING_OFF\n"
                  "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
                  "print(','.join(loaded))\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | environ
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == ""


class TestTracingOff:
    """The null facade: shared objects, no effect, exceptions pass through."""

    def test_spans_are_one_shared_object(self) -> None:
        """No allocation per request: every span scope and handle is the same object."""
        headers = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
        scope = TRACING_OFF.server_span("GET", "proxy", headers, trusted_parent=True)
        assert TRACING_OFF.client_span("upstream", {HTTP_METHOD: "GET"}) is scope
        assert TRACING_OFF.server_span("POST", "/oauth2/callback", {},
                                       trusted_parent=False) is scope
        with scope as span, TRACING_OFF.client_span("redis") as child:
            assert span is child is SPAN_OFF

    def test_setters_record_nothing(self) -> None:
        """Every setter accepts its arguments and does nothing; there is no trace id."""
        with TRACING_OFF.server_span("GET", "proxy", {}, trusted_parent=False) as span:
            span.set_decision("allowed", "default")
            span.set_principal_sub(SUB)
            span.set_status_code(200)
            span.set_outcome("invalid_grant")
            span.set_attribute("cookie", "session=1")
            span.set_route("/oauth2/callback")
            span.record_error("upstream_reset")
            assert span.trace_id is None
            assert TRACING_OFF.trace_id() is None
        assert TRACING_OFF.enabled is False
        assert TRACING_OFF.force_flush() is True
        TRACING_OFF.shutdown()

    def test_inject_leaves_the_headers_as_they_are(self) -> None:
        """Off, the gateway is transparent: a client's trace headers reach the upstream as
        sent."""
        headers = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
                   "tracestate": "vendor=1", "accept": "*/*"}
        before = dict(headers)
        TRACING_OFF.inject(headers)
        assert headers == before

    @pytest.mark.parametrize("factory", [
        lambda: TRACING_OFF.server_span("GET", "proxy", {}, trusted_parent=False),
        lambda: TRACING_OFF.client_span("cognito.token"),
    ], ids=["server", "client"])
    def test_exceptions_pass_through(
            self, factory: Callable[[], AbstractContextManager[object]]) -> None:
        """A span never swallows the exception leaving its block."""
        with pytest.raises(LookupError, match="raised inside"), factory():
            raise LookupError("raised inside")

    @pytest.mark.usefixtures("trace_ids_in_logs")
    def test_log_lines_get_no_trace_id(self, log_buffer: io.StringIO) -> None:
        """Off, `add_trace_id` adds nothing to a line logged inside a span."""
        with TRACING_OFF.server_span("GET", "proxy", {}, trusted_parent=False):
            structlog.get_logger("test").info("inside_a_span")
        [line] = [e for e in log_events(log_buffer) if e["event"] == "inside_a_span"]
        assert "trace_id" not in line
        assert "span_id" not in line


class TestSpanAttributes:
    """The allow-list: only known keys with values of the key's shape reach a span."""

    @pytest.mark.parametrize(("key", "value"), [
        (HTTP_METHOD, "GET"),
        (HTTP_ROUTE, "/oauth2/callback"),
        (HTTP_ROUTE, "/oauth2/jwks.json"),
        (HTTP_ROUTE, "proxy"),
        (HTTP_STATUS_CODE, 503),
        (ERROR_TYPE, "TimeoutError"),
        (ENDUSER_ID, SUB),
        (ENDUSER_ID, "auth0|5f7c8ec7c33c6c004bbafe82"),
        (AUTH_DECISION, "unauthorized"),
        (AUTH_RULE, "default"),
        (AUTH_RULE, "3"),
        (GRANT_TYPE, "refresh_token"),
        (OUTCOME, "http_429"),
        (COGNITO_REQUEST_ID, "5f0c1f6e-1d2b-4e1c-9a43-9c0f7d1b2e3a"),
        (DB_SYSTEM, "redis"),
        (DB_OPERATION, "ZRANGEBYSCORE"),
    ], ids=lambda v: str(v)[:24])
    def test_an_allowed_attribute_is_kept_as_it_is(self, key: str, value: str | int) -> None:
        """An allow-listed key with a value of its shape passes unchanged."""
        assert span_attributes({key: value}) == {key: value}

    @pytest.mark.parametrize(("key", "value"), [
        ("cookie", "_cognito_gateway=gAAAAABlongsessionvalue"),
        ("http.request.header.cookie", "_cognito_gateway=gAAAAAB"),
        ("http.request.header.authorization", "Bearer " + JWT),
        ("authorization", "Basic Z2F0ZXdheTpzZWNyZXQ="),
        ("access_token", JWT),
        ("url.query", "code=4f1b7d2c-authorization-code&state=x"),
        ("url.full", "https://app.example.com/oauth2/callback?code=abc"),
        ("url.path", "/users/alice@example.com/profile"),
        ("server.address", "10.0.3.17"),
        ("enduser.email", "alice@example.com"),
        (ENDUSER_ID, JWT),
        (ENDUSER_ID, "x" * 129),
        (ENDUSER_ID, "alice example"),
        (OUTCOME, JWT),
        (OUTCOME, "x" * 65),
        (OUTCOME, "not a label"),
        (AUTH_RULE, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"),
        (ERROR_TYPE, "ValueError: the client secret abc was wrong"),
        (HTTP_ROUTE, "/users/42?tab=profile"),
        (HTTP_ROUTE, "/" + "a" * 64),
        (HTTP_METHOD, 7),
        (HTTP_STATUS_CODE, "200"),
        (HTTP_STATUS_CODE, True),
        (HTTP_STATUS_CODE, 1000),
        (COGNITO_REQUEST_ID, "id; refresh_token=abc"),
        (DB_OPERATION, "GET session:4b1c0d"),
        (DB_SYSTEM, 6379),
    ], ids=lambda v: str(v)[:24])
    def test_anything_else_is_dropped(self, key: str, value: object,
                                      log_buffer: io.StringIO) -> None:
        """A key off the list, or a value of the wrong shape, never reaches a span; the
        debug line names the key and never the value."""
        assert span_attributes({AUTH_DECISION: "allowed", key: value}) == {
            AUTH_DECISION: "allowed"}
        [line] = [e for e in log_events(log_buffer) if e["event"] == "span_attribute_dropped"]
        assert line["attribute"] == key
        assert all(str(value) not in str(v) for k, v in line.items() if k != "timestamp")

    @pytest.mark.parametrize(("method", "kept"), [
        ("DELETE", "DELETE"), ("get", "_OTHER"), ("PROPFIND", "_OTHER"),
    ], ids=["standard", "lower-case", "webdav"])
    def test_a_method_is_kept_as_its_label(self, method: str, kept: str) -> None:
        """The client chooses the method: the attribute is the standard method or `_OTHER`."""
        assert span_attributes({HTTP_METHOD: method}) == {HTTP_METHOD: kept}

    def test_none_is_skipped_silently(self, log_buffer: io.StringIO) -> None:
        """A missing value (no sub, no request id) is not an attribute and not a mistake."""
        assert span_attributes({ENDUSER_ID: None, COGNITO_REQUEST_ID: None}) == {}
        assert not [e for e in log_events(log_buffer) if e["event"] == "span_attribute_dropped"]

    @pytest.mark.parametrize(("method", "label"), [
        ("GET", "GET"), ("PATCH", "PATCH"), ("OPTIONS", "OPTIONS"),
        ("PROPFIND", "_OTHER"), ("get", "_OTHER"), ("X" * 200, "_OTHER"),
    ], ids=["get", "patch", "options", "webdav", "lower-case", "long"])
    def test_http_method_label(self, method: str, label: str) -> None:
        """The client chooses the method: only standard ones are kept, as the metrics do."""
        assert http_method_label(method) == label
