"""Tracing with the OpenTelemetry SDK (the `otel` extra); see gateway/observability/tracing.py.

The SDK reads the standard variables itself: the exporter's endpoint, headers, timeout,
compression and certificates (`OTEL_EXPORTER_OTLP_*`), the sampler (`OTEL_TRACES_SAMPLER`,
`OTEL_TRACES_SAMPLER_ARG`), batching (`OTEL_BSP_*`) and the resource (`OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`). This module adds the gateway's defaults (service name
`cognito-gateway`, its version) and the rules of `tracing.py`: attributes through the
allow-list, W3C trace context only, exceptions recorded by class name, never by message.

Imported only when tracing is on: nothing else in the gateway imports OpenTelemetry. Without
the extra this module is never loaded; mypy still reads it, so each OpenTelemetry import says
it may be missing (`unused-ignore` keeps that quiet when the extra is installed).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

from aiohttp import web
from opentelemetry.context import Context, attach, detach  # type: ignore[import-not-found, import-untyped, unused-ignore]
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
    OTLPSpanExporter,
)
from opentelemetry.sdk.resources import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import TracerProvider  # type: ignore[import-not-found, import-untyped, unused-ignore]
from opentelemetry.sdk.trace.export import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
    BatchSpanProcessor,
)
from opentelemetry.trace import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
    Span as ApiSpan,
)
from opentelemetry.trace import (
    SpanKind,
    Status,
    StatusCode,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
    TraceContextTextMapPropagator,
)

from gateway import __version__
from gateway.observability.tracing import (
    AUTH_DECISION,
    AUTH_RULE,
    ENDUSER_ID,
    ERROR_TYPE,
    HTTP_METHOD,
    HTTP_ROUTE,
    HTTP_STATUS_CODE,
    OUTCOME,
    AttributeValue,
    ClientSpanName,
    http_method_label,
    log_ids_source,
    set_log_ids_source,
    span_attributes,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping
    from contextvars import Token
    from types import TracebackType

DEFAULT_SERVICE_NAME: Final = "cognito-gateway"
_TRACE_HEADERS: Final = frozenset({"traceparent", "tracestate"})
_ERROR: Final = Status(StatusCode.ERROR)


def _server_span_name(method: str, route: str | None) -> str:
    """`<method> <route>` as the HTTP conventions name server spans (`HTTP` for `_OTHER`)."""
    name = "HTTP" if method == "_OTHER" else method
    return f"{name} {route}" if route else name


class OtelSpan:
    """A span handle and the block that makes it current (`with` enters and ends it)."""

    __slots__ = ("_error_from", "_error_type", "_method", "_recording", "_span", "_token")

    def __init__(self, span: ApiSpan, *, error_from: int, method: str | None = None) -> None:
        self._span = span
        self._recording: bool = span.is_recording()
        self._error_from = error_from
        self._method = method  # a server span's method label, for set_route
        self._error_type: str | None = None
        self._token: Token[Context] | None = None

    def __enter__(self) -> OtelSpan:
        self._token = attach(set_span_in_context(self._span))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if isinstance(exc, web.HTTPException):
                self.set_status_code(exc.status)  # aiohttp's way of answering, not a failure
            elif exc is not None:
                self.record_error(self._error_type or type(exc).__name__)
        finally:
            if self._token is not None:
                detach(self._token)
            self._span.end()

    @property
    def trace_id(self) -> str | None:
        context = self._span.get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else None

    def set_attribute(self, key: str, value: AttributeValue | None) -> None:
        if self._recording:
            self._span.set_attributes(span_attributes({key: value}))

    def set_route(self, route: str) -> None:
        if self._recording and self._method is not None:
            attributes = span_attributes({HTTP_ROUTE: route})
            if attributes:
                self._span.set_attributes(attributes)
                self._span.update_name(_server_span_name(self._method, route))

    def set_status_code(self, status: int) -> None:
        self.set_attribute(HTTP_STATUS_CODE, status)
        if status >= self._error_from and self._error_type is None:
            self.record_error(str(status))

    def set_decision(self, decision: str, rule: str) -> None:
        if self._recording:
            self._span.set_attributes(span_attributes({AUTH_DECISION: decision,
                                                       AUTH_RULE: rule}))

    def set_principal_sub(self, sub: str | None) -> None:
        self.set_attribute(ENDUSER_ID, sub)

    def set_outcome(self, outcome: str) -> None:
        self.set_attribute(OUTCOME, outcome)
        if outcome != "ok":
            self.record_error(outcome)

    def record_error(self, kind: str) -> None:
        self._error_type = kind
        if self._recording:
            self._span.set_attributes(span_attributes({ERROR_TYPE: kind}))
            self._span.set_status(_ERROR)


class OtelTracing:
    """The `Tracing` facade over an SDK TracerProvider with a batching OTLP/HTTP exporter."""

    enabled = True

    def __init__(self, provider: TracerProvider, *, service_name: str) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("gateway", __version__)
        self._propagator = TraceContextTextMapPropagator()
        self.service_name = service_name
        self.sampler: str = str(provider.sampler.get_description())
        set_log_ids_source(self._ids_of_current_span)

    @classmethod
    def from_environment(cls) -> OtelTracing:
        """Tracing as the OTEL_* variables configure it (read by the SDK, once, here)."""
        attributes: dict[str, str] = {"service.version": __version__}
        if not OTELResourceDetector().detect().attributes.get("service.name"):
            attributes["service.name"] = DEFAULT_SERVICE_NAME
        resource = Resource.create(attributes)
        batches = BatchSpanProcessor(OTLPSpanExporter())  # first: it may refuse OTEL_BSP_*
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(batches)
        service_name: str = str(resource.attributes["service.name"])
        return cls(provider, service_name=service_name)

    def server_span(self, method: str, route: str | None, headers: Mapping[str, str], *,
                    trusted_parent: bool) -> OtelSpan:
        parent = Context()
        if trusted_parent:
            parent = self._propagator.extract(headers, context=parent)
        method = http_method_label(method)
        attributes = span_attributes({HTTP_METHOD: method, HTTP_ROUTE: route})
        name = _server_span_name(method, route if HTTP_ROUTE in attributes else None)
        span = self._tracer.start_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes,
            record_exception=False, set_status_on_exception=False)
        return OtelSpan(span, error_from=500, method=method)

    def client_span(self, name: ClientSpanName,
                    attributes: Mapping[str, AttributeValue] | None = None) -> OtelSpan:
        span = self._tracer.start_span(
            name, kind=SpanKind.CLIENT,
            attributes=span_attributes(attributes) if attributes else None,
            record_exception=False, set_status_on_exception=False)
        return OtelSpan(span, error_from=400)

    def inject(self, headers: MutableMapping[str, str]) -> None:
        for name in list(headers):
            if name.lower() in _TRACE_HEADERS:
                headers.pop(name, None)
        self._propagator.inject(headers)

    def trace_id(self) -> str | None:
        context = get_current_span().get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else None

    def force_flush(self, timeout_seconds: float = 5.0) -> bool:
        return bool(self._provider.force_flush(int(timeout_seconds * 1000)))

    def shutdown(self, timeout_seconds: float = 5.0) -> None:
        # The SDK waits up to 30 s for a collector that does not answer; exit does not.
        if log_ids_source() == self._ids_of_current_span:
            set_log_ids_source(None)
        stopping = threading.Thread(target=self._provider.shutdown, name="otel-shutdown",
                                    daemon=True)
        stopping.start()
        stopping.join(timeout_seconds)

    def _ids_of_current_span(self) -> tuple[str, str] | None:
        context = get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")
