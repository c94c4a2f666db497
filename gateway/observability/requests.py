"""Per-request context: request id, log binding, metrics, and error translation.

The request id is the client's `X-Request-Id` when it is a sane token (<= 128 characters of
`[A-Za-z0-9._:-]`), else a new one; it is bound to every log line of the request, passed
upstream and returned in the response's `X-Request-Id`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway.errors import GatewayError, RequestRefused
from gateway.keys import CONTEXT, REQUEST_ID, TARGET, run_before_prepare
from gateway.observability.logging import get_logger
from gateway.observability.metrics import normalise_method
from gateway.target import parse_target
from gateway.translate import error_response

log = get_logger("gateway.request")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_id_of(request: web.Request) -> str:
    incoming = request.headers.get("X-Request-Id", "")
    return incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request id, translate gateway errors, count and time every answer."""
    started = time.perf_counter()
    request_id = request[REQUEST_ID] = request_id_of(request)
    structlog.contextvars.bind_contextvars(request_id=request_id)
    metrics = request.app[CONTEXT].metrics
    status = 500
    try:
        try:
            request[TARGET] = parse_target(request.raw_path)
            response = await handler(request)
        except GatewayError as exc:
            response = error_response(request, exc)
            await run_before_prepare(request, response)
            if isinstance(exc, RequestRefused):
                metrics.requests_refused.labels(reason=exc.reason).inc()
                log.warning("request_refused", reason=exc.reason, detail=exc.detail,
                            method=normalise_method(request.method))
            elif response.status >= 500:
                cause = exc.__cause__
                log.warning("request_failed", error=type(exc).__name__, detail=str(exc),
                            cause=f"{type(cause).__name__}: {cause}" if cause else None)
        status = response.status
        if not response.prepared:
            response.headers.setdefault("X-Request-Id", request_id)
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.http_requests.labels(method=normalise_method(request.method),
                                     code=str(status)).inc()
        metrics.http_request_duration.observe(time.perf_counter() - started)
