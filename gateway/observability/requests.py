"""The outermost layer of every request: its id, its target, its log context, its metrics,
and the translation of gateway errors into responses.

The request id is bound to every log line of the request. The request target is parsed here,
once, before any decision (gateway/target.py); a refused target never reaches a handler. A
GatewayError raised anywhere below becomes its response here (gateway/translate.py); refusals
count in `requests_refused_total{reason}` and log one line; 5xx answers log one line with the
error's class and cause, and so does an upstream failure after the response started
(`UpstreamAborted`: no second response can follow, the listener cuts the connection).
Every answer counts in `http_requests_total{method,code}` and is timed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Container
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from gateway.errors import GatewayError, RequestRefused
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics, normalise_method
from gateway.observability.request_id import REQUEST_ID, request_id_of
from gateway.observability.tracing import SPAN, TRACE_ID, Tracing
from gateway.target import TARGET, parse_target
from gateway.upstream.failures import ExchangeAborted, UpstreamAborted

if TYPE_CHECKING:
    from aiohttp.typedefs import Middleware

    from gateway.translate import ErrorResponses

log = get_logger("gateway.request")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]



def request_middleware(metrics: Metrics, errors: ErrorResponses, tracing: Tracing,
                       trusted: Container[str | None]) -> Middleware:
    """The middleware, bound to the app's metrics, error responses and tracing. A trace is
    continued from an incoming `traceparent` only when a trusted proxy sent it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = request[REQUEST_ID] = request_id_of(request)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        with tracing.server_span(request.method, None, request.headers,
                                 trusted_parent=request.remote in trusted) as span:
            request[SPAN] = span
            if (trace_id := span.trace_id) is not None:
                request[TRACE_ID] = trace_id
            try:
                try:
                    request[TARGET] = parse_target(request.raw_path)
                    response = await handler(request)
                except GatewayError as exc:
                    response = answer_error(errors, metrics, request, exc, request_id)
                status = response.status
                if not response.prepared:
                    response.headers.setdefault("X-Request-Id", request_id)
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            except ExchangeAborted as exc:
                # The listener cuts the connection; the status is what the client was sent.
                status = aborted(exc)
                raise
            finally:
                span.set_status_code(status)
                metrics.count_request(request.method, status, time.perf_counter() - started)

    return middleware


def answer_error(errors: ErrorResponses, metrics: Metrics, request: web.Request,
                 exc: GatewayError, request_id: str) -> web.Response:
    """The response to a GatewayError raised while serving `request`, counted and logged."""
    response = errors(request, exc, request_id)
    _report(metrics, request, exc, response.status)
    return response


def aborted(exc: ExchangeAborted) -> int:
    """The status of an exchange cut short (what the client was sent), logged when the
    upstream failed."""
    if isinstance(exc, UpstreamAborted):
        _failed(exc)
    return exc.status


def _report(metrics: Metrics, request: web.Request, exc: GatewayError, status: int) -> None:
    if isinstance(exc, RequestRefused):
        metrics.requests_refused.labels(reason=exc.reason).inc()
        log.warning("request_refused", reason=exc.reason, detail=exc.detail,
                    method=normalise_method(request.method))
    elif status >= 500:
        _failed(exc)


def _failed(exc: Exception) -> None:
    cause = exc.__cause__
    log.warning("request_failed", error=type(exc).__name__, detail=str(exc),
                cause=f"{type(cause).__name__}: {cause}" if cause else None)
