"""Tracing: one span per request, child spans for the upstream, the IdP and Redis.

The gateway calls the `Tracing` facade defined here. Which implementation it gets is decided
once, at start, by `setup_tracing()` (gateway.observability.tracing_setup):

- off (`TRACING_OFF`): no OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`,
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`,
  or the `otel` extra is not installed. Every call returns a shared object that does nothing:
  no allocation, no thread, OpenTelemetry is not even imported.
- on (`gateway.observability.otel`): the OpenTelemetry SDK, configured by the standard
  `OTEL_*` variables, exporting OTLP/HTTP protobuf in batches from a background thread.

What may go on a span is decided in one place, `span_attributes`: an allow-list of keys, each
with the shape its value must have. A value of another shape is dropped, never truncated (a
truncated token is still part of a token). No token, code, cookie, header, query string or path
is ever an attribute; the only attribute about the user is `enduser.id`, the `sub`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, MutableMapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Final, Literal, Protocol

import structlog
from aiohttp import web

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from structlog.typing import EventDict, WrappedLogger

# Not gateway.observability.logging's get_logger: that module imports add_trace_id from here.
log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(__name__)

AttributeValue = str | int | bool
ClientSpanName = Literal["upstream", "cognito.token", "cognito.discovery", "cognito.jwks",
                         "redis"]

HTTP_METHOD: Final = "http.request.method"
HTTP_ROUTE: Final = "http.route"
HTTP_STATUS_CODE: Final = "http.response.status_code"
ERROR_TYPE: Final = "error.type"
ENDUSER_ID: Final = "enduser.id"
AUTH_DECISION: Final = "gateway.auth.decision"
AUTH_RULE: Final = "gateway.auth.rule"
GRANT_TYPE: Final = "gateway.oauth.grant_type"
OUTCOME: Final = "gateway.outcome"
COGNITO_REQUEST_ID: Final = "cognito.request_id"
DB_SYSTEM: Final = "db.system.name"
DB_OPERATION: Final = "db.operation.name"

_JWT_SHAPED = re.compile(r"eyJ[\w-]*\.")
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                            "TRACE", "PATCH"})


def _shaped(pattern: str) -> Callable[[object], str | None]:
    compiled = re.compile(pattern)

    def check(value: object) -> str | None:
        if isinstance(value, str) and compiled.fullmatch(value) and not _JWT_SHAPED.search(value):
            return value
        return None

    return check


def _status_code(value: object) -> int | None:
    return value if type(value) is int and 100 <= value <= 599 else None


def _method(value: object) -> str | None:
    return http_method_label(value) if isinstance(value, str) else None


_LABEL = _shaped(r"[A-Za-z0-9_:-]{1,64}")
_ALLOWED: Final[Mapping[str, Callable[[object], AttributeValue | None]]] = MappingProxyType({
    HTTP_METHOD: _method,
    HTTP_ROUTE: _shaped(r"[A-Za-z0-9_./*{}-]{1,64}"),
    HTTP_STATUS_CODE: _status_code,
    ERROR_TYPE: _LABEL,
    ENDUSER_ID: _shaped(r"[A-Za-z0-9_@.:|+=-]{1,128}"),
    AUTH_DECISION: _LABEL,
    AUTH_RULE: _LABEL,
    GRANT_TYPE: _LABEL,
    OUTCOME: _LABEL,
    COGNITO_REQUEST_ID: _shaped(r"[A-Za-z0-9-]{1,64}"),
    DB_SYSTEM: _LABEL,
    DB_OPERATION: _shaped(r"[A-Z][A-Z_ ]{0,31}"),
})


def span_attributes(attributes: Mapping[str, object]) -> dict[str, AttributeValue]:
    """The attributes that may go on a span: allow-listed keys whose value has the key's shape
    (a request method is kept as `http_method_label` gives it).

    Anything else is dropped (and named, key only, in a debug log line); None values are
    skipped. This is the only way an attribute reaches a span.
    """
    kept: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        check = _ALLOWED.get(key)
        allowed = check(value) if check is not None else None
        if allowed is None:
            log.debug("span_attribute_dropped", attribute=key[:64],
                      reason="not_allowed" if check is None else "bad_value")
        else:
            kept[key] = allowed
    return kept


def http_method_label(method: str) -> str:
    """The request method as a span may carry it: a standard method, else `_OTHER`."""
    return method if method in _KNOWN_METHODS else "_OTHER"


class Span(Protocol):
    """A span being recorded. Every value passes `span_attributes` on its way to the span."""

    @property
    def trace_id(self) -> str | None:
        """The trace id (32 hex digits), or None when tracing is off."""

    def set_attribute(self, key: str, value: AttributeValue | None) -> None:
        """Set one allow-listed attribute (dropped if the key or the value's shape is wrong)."""

    def set_route(self, route: str) -> None:
        """Name a server span after the route that answered: `<method> <route>`, once routed."""

    def set_status_code(self, status: int) -> None:
        """The HTTP status: an error from 500 on a server span, from 400 on a client span."""

    def set_decision(self, decision: str, rule: str) -> None:
        """The guard's decision and the deciding rule (the same labels as the metrics)."""

    def set_principal_sub(self, sub: str | None) -> None:
        """The signed-in user's `sub`, the only user attribute a span carries."""

    def set_outcome(self, outcome: str) -> None:
        """A call's outcome (the metrics' labels); anything but `ok` marks the span failed."""

    def record_error(self, kind: str) -> None:
        """Mark the span failed with a bounded `error.type` (never a message)."""


class Tracing(Protocol):
    """What the gateway asks of tracing; `setup_tracing()` picks the implementation."""

    @property
    def enabled(self) -> bool:
        """False for the implementation that does nothing."""

    def server_span(self, method: str, route: str | None, headers: Mapping[str, str], *,
                    trusted_parent: bool) -> AbstractContextManager[Span]:
        """A span for one incoming request, named `<method> <route>` (`<method>` without one).

        `route` is a bounded label (an endpoint's path such as `/oauth2/callback`, or one label
        for all proxied traffic), never the request's path; `Span.set_route` sets it once the
        request is routed. The trace continues the `traceparent` in `headers` only when
        `trusted_parent` (the peer is a trusted proxy); otherwise a new trace starts.
        """

    def client_span(self, name: ClientSpanName,
                    attributes: Mapping[str, AttributeValue] | None = None,
                    ) -> AbstractContextManager[Span]:
        """A child span of the current one for a call to the upstream, the IdP or Redis.

        An exception leaving the block marks it failed with the exception's class name as
        `error.type`; the message is never recorded.
        """

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Replace `traceparent`/`tracestate` in `headers` with the current span's."""

    def trace_id(self) -> str | None:
        """The current span's trace id, or None."""

    def force_flush(self, timeout_seconds: float = 5.0) -> bool:
        """Export the ended spans now (blocking); True when the exporter took them."""

    def shutdown(self, timeout_seconds: float = 5.0) -> None:
        """Flush and stop exporting, waiting at most `timeout_seconds` (call it at exit)."""


class _SpanOff:
    """The span of tracing switched off: its own `with` block, recording nothing."""

    __slots__ = ()

    def __enter__(self) -> _SpanOff:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    @property
    def trace_id(self) -> None:
        return None

    def set_attribute(self, key: str, value: AttributeValue | None) -> None:
        pass

    def set_route(self, route: str) -> None:
        pass

    def set_status_code(self, status: int) -> None:
        pass

    def set_decision(self, decision: str, rule: str) -> None:
        pass

    def set_principal_sub(self, sub: str | None) -> None:
        pass

    def set_outcome(self, outcome: str) -> None:
        pass

    def record_error(self, kind: str) -> None:
        pass


SPAN_OFF: Final = _SpanOff()


class _TracingOff:
    """Tracing switched off: every method returns at once, with shared objects."""

    __slots__ = ()
    enabled = False

    # The parameters are the Tracing protocol's (callers pass some by keyword); off, none
    # of them matters.
    def server_span(self, method: str, route: str | None,  # noqa: ARG002 - protocol
                    headers: Mapping[str, str], *,  # noqa: ARG002 - protocol
                    trusted_parent: bool) -> AbstractContextManager[Span]:  # noqa: ARG002
        return SPAN_OFF

    def client_span(self, name: ClientSpanName,  # noqa: ARG002 - protocol
                    attributes: Mapping[str, AttributeValue] | None = None,  # noqa: ARG002
                    ) -> AbstractContextManager[Span]:
        return SPAN_OFF

    def inject(self, headers: MutableMapping[str, str]) -> None:
        pass

    def trace_id(self) -> None:
        return None

    def force_flush(self, timeout_seconds: float = 5.0) -> bool:  # noqa: ARG002 - protocol
        return True

    def shutdown(self, timeout_seconds: float = 5.0) -> None:
        pass


TRACING_OFF: Final[Tracing] = _TracingOff()

IdsOfCurrentSpan = Callable[[], tuple[str, str] | None]
_log_ids: IdsOfCurrentSpan | None = None


def set_log_ids_source(source: IdsOfCurrentSpan | None) -> None:
    """Where `add_trace_id` reads the current span's ids (the implementation that is on)."""
    global _log_ids  # noqa: PLW0603 - one tracer per process, like OpenTelemetry's context
    _log_ids = source


def log_ids_source() -> IdsOfCurrentSpan | None:
    """The source `add_trace_id` reads, None while tracing is off."""
    return _log_ids


def add_trace_id(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: `trace_id` and `span_id` of the active span, when there is one.

    With tracing off it only reads one module variable.
    """
    source = _log_ids
    if source is not None:
        ids = source()
        if ids is not None:
            event_dict["trace_id"], event_dict["span_id"] = ids
    return event_dict


SPAN = web.RequestKey("span", Span)
"""The request's server span (SPAN_OFF when tracing is off), set by the request middleware."""
TRACE_ID = web.RequestKey("trace_id", str)
"""The request's trace id when it is traced, for its access line (written after the span)."""
