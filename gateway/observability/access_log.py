"""aiohttp's access log as one structured line per request (path without the query string)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from gateway.keys import REQUEST_ID
from gateway.observability.logging import get_logger

log = get_logger("gateway.access")


class JsonAccessLogger(AbstractAccessLogger):
    """Logs `event="request"` with method, path, status, duration and the request id."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        log.info("request", request_id=request.get(REQUEST_ID), method=request.method,
                 path=request.path, status=response.status, duration_ms=round(time * 1000, 2),
                 bytes_sent=response.body_length, remote=request.remote,
                 user_agent=request.headers.get("User-Agent"))

    @property
    def enabled(self) -> bool:
        return True
