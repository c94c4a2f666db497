"""The TCP listener: the limits that hold before a request exists.

- A request the HTTP parser refuses (malformed line or header, oversized field) gets a fixed
  400 (431 for an oversized header), never an echo of what was sent (aiohttp's default body
  quotes the offending line: a session cookie, say), and one short warning line
  (`event="malformed_request"`) instead of a traceback; it counts as
  `requests_refused_total{reason="malformed"}`.
- A client must send its first request within `server.client_header_timeout_seconds` of
  connecting, and the request line and headers of every later one within that time of its
  first byte (slow-header attacks); otherwise 408 and the connection closes
  (`reason="header_timeout"`). Idle keep-alive connections between requests are closed after
  aiohttp's keepalive_timeout (75 s, above load balancers' idle timeouts).
- At most `server.max_connections` connections are served at once; one more gets 503 and is
  closed (`reason="too_many_connections"`).
An unexpected exception in a handler is logged once with its traceback and answered with a
plain 500, unless the response had started: then, as for an upstream failure after the start
or a client that left (`ExchangeAborted`), the connection is closed with no second response.

This subclasses aiohttp's RequestHandler (its documented extension points `handle_error`,
`connection_made`, `data_received`, and a few of its attributes); tests/test_listener.py runs
each limit against the real server so that an aiohttp upgrade that moves them fails there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.log import access_logger
from aiohttp.web_protocol import RequestHandler

from gateway.observability.access_log import JsonAccessLogger
from gateway.observability.logging import get_logger
from gateway.single_route import single_route_handler
from gateway.upstream.failures import ExchangeAborted

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.observability.metrics import Metrics

log = get_logger("gateway.listener")
KEEPALIVE_TIMEOUT = 75.0  # above common load balancers' idle timeout (ALB: 60 s)
_REFUSALS = {
    400: b"HTTP/1.1 400 Bad Request\r\n",
    408: b"HTTP/1.1 408 Request Timeout\r\n",
    503: b"HTTP/1.1 503 Service Unavailable\r\n",
}


@dataclass(frozen=True)
class ListenerLimits:
    """What a client may do before its request reaches the application."""

    max_connections: int
    header_timeout: float
    max_header_bytes: int


class GatewayRequestHandler(RequestHandler):
    """aiohttp's connection handler with the gateway's limits and quiet, echo-free errors."""

    def __init__(self, manager: GatewayServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gateway = manager
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._gateway.open_connections >= self._gateway.limits.max_connections:
            self._gateway.refused("too_many_connections")
            _refuse(transport, 503)
            return
        self._gateway.open_connections += 1
        super().connection_made(transport)
        self._header_timer = self._loop.call_later(self._gateway.limits.header_timeout,
                                                   self._headers_too_slow)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        if self._manager is not None:
            self._gateway.open_connections -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        between_requests = not (self._messages or self._request_in_progress or self._upgraded)
        if not between_requests:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
        elif self._header_timer is None:
            self._header_timer = self._loop.call_later(self._gateway.limits.header_timeout,
                                                       self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._messages or self._request_in_progress or self.transport is None:
            return
        self._gateway.refused("header_timeout")
        _refuse(self.transport, 408)

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None,  # noqa: ARG002 - aiohttp's signature
                     ) -> web.StreamResponse:
        if isinstance(exc, ExchangeAborted) or request.writer.output_size > 0:
            # A response started (or the client left): another one would follow the first
            # on the wire. aiohttp closes the connection on this ConnectionError, so the
            # client sees a truncated response, never a complete-looking one.
            if not isinstance(exc, ExchangeAborted):
                log.error("unhandled_error", status=status, exc_info=exc)
            raise ConnectionResetError("the response was cut short") from exc
        if isinstance(exc, HttpProcessingError) or status == 400:
            status = 431 if isinstance(exc, LineTooLong) else 400
            self._gateway.refused("malformed")
            log.warning("malformed_request", status=status,
                        reason=type(exc).__name__ if exc else "unknown", remote=request.remote)
            text = "Request Header Fields Too Large" if status == 431 else "Bad Request"
        elif status == 504:
            text = "Gateway Timeout"
        else:
            log.error("unhandled_error", status=status, exc_info=exc)
            text = "Internal Server Error"
        response = web.Response(status=status, text=text + "\n", content_type="text/plain")
        response.force_close()
        return response


class GatewayServer(web.Server):
    """aiohttp's low-level server making GatewayRequestHandlers, counting open connections."""

    def __init__(self, *args: Any, limits: ListenerLimits, metrics: Metrics,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.open_connections = 0
        self._metrics = metrics

    def __call__(self) -> RequestHandler:
        return GatewayRequestHandler(self, loop=self._loop, **self._kwargs)

    def refused(self, reason: str) -> None:
        self._metrics.requests_refused.labels(reason=reason).inc()


class GatewayRunner(web.AppRunner):
    """An AppRunner serving the app through GatewayServer (see the module docstring)."""

    def __init__(self, app: web.Application, *, limits: ListenerLimits, metrics: Metrics,
                 **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", limits.max_header_bytes)
        kwargs.setdefault("max_field_size", limits.max_header_bytes)
        super().__init__(app, **kwargs)
        self._limits = limits
        self._metrics = metrics

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        # The same server aiohttp built (its factory and handler kwargs), making
        # GatewayRequestHandlers instead, and calling the app's one route directly when it
        # has that shape (gateway/single_route.py).
        handler = single_route_handler(self.app) or plain.request_handler
        return GatewayServer(handler, request_factory=plain.request_factory,
                             handler_cancellation=plain.handler_cancellation,
                             loop=asyncio.get_running_loop(), limits=self._limits,
                             metrics=self._metrics, **plain._kwargs)


def gateway_runner(app: web.Application, settings: Settings, metrics: Metrics, *,
                   live_access_log: bool = False) -> GatewayRunner:
    """The runner of the gateway's main listener, with every limit of `settings.server`.

    With `live_access_log` (a served process, whose reloads may turn the access log on or off)
    the access logger is always attached, and `log.access_log` is its `disabled` switch."""
    server = settings.server
    limits = ListenerLimits(max_connections=server.max_connections,
                            header_timeout=server.client_header_timeout_seconds,
                            max_header_bytes=server.max_header_bytes)
    return GatewayRunner(
        app, limits=limits, metrics=metrics, access_log_class=JsonAccessLogger,
        access_log=access_logger if settings.log.access_log or live_access_log else None,
        auto_decompress=False, keepalive_timeout=KEEPALIVE_TIMEOUT,
        shutdown_timeout=server.shutdown_timeout_seconds)


def _refuse(transport: asyncio.BaseTransport, status: int) -> None:
    if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
        transport.write(_REFUSALS[status] + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    transport.close()
