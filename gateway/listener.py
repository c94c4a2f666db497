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

A request that arrives alone on an idle connection is offered to the express lane
(gateway/express.py): when it plans the request, the lane serves it here, and aiohttp's handler
loop is not woken until the exchange is over (requests on one connection are answered in
order: what arrives meanwhile waits in aiohttp's queue). Everything else takes aiohttp's path,
and so does every request of an app without a lane (tracing on: gateway/app.py).

This subclasses aiohttp's RequestHandler (its documented extension points `handle_error`,
`connection_made`, `data_received`, and a few of its attributes); tests/test_listener.py and
tests/test_express.py run each limit and each lane case against the real server, so that an
aiohttp upgrade that moves them fails there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.http_writer import StreamWriter
from aiohttp.log import access_logger
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler

from gateway.express import EXPRESS_LANE
from gateway.observability.access_log import JsonAccessLogger
from gateway.observability.logging import get_logger
from gateway.single_route import single_route_handler
from gateway.upstream.failures import ClientGone, ExchangeAborted

if TYPE_CHECKING:
    from aiohttp.abc import AbstractStreamWriter

    from gateway.config import Settings
    from gateway.express import ExpressLane, Plan
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
        self._express: asyncio.Task[None] | None = None  # the lane's exchange in progress
        self._express_writer: AbstractStreamWriter | None = None
        self._draining = False

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
            if self._manager.handler_cancellation and self._express is not None:
                self._express.cancel()  # as aiohttp cancels its handler's
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        lane = self._gateway.lane
        if lane is None:
            super().data_received(data)
        else:
            self._receive(lane, data)
        between_requests = not (self._messages or self._request_in_progress or self._upgraded
                                or self._express)
        if not between_requests:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
        elif self._header_timer is None:
            self._header_timer = self._loop.call_later(self._gateway.limits.header_timeout,
                                                       self._headers_too_slow)

    def _receive(self, lane: ExpressLane, data: bytes) -> None:
        """aiohttp's data_received, with the express lane offered a request that arrived
        alone on an idle connection, and aiohttp's loop woken only when no exchange of the
        lane is in progress."""
        idle = not (self._express or self._messages or self._request_in_progress
                    or self._upgraded or self._draining)
        waiter, self._waiter = self._waiter, None  # so that aiohttp's wakes nobody
        try:
            super().data_received(data)
        finally:
            self._waiter = waiter
        messages = self._messages
        if idle and len(messages) == 1 and self._parser is not None:
            message, payload = messages[0]
            if payload is EMPTY_PAYLOAD and isinstance(message, RawRequestMessage) \
                    and (plan := self._plan(lane, message)) is not None:
                messages.popleft()
                self._parser.message_consumed()
                self._express = self._loop.create_task(self._serve_express(lane, message, plan))
        if messages and self._express is None and waiter is not None and not waiter.done():
            waiter.set_result(None)

    @staticmethod
    def _plan(lane: ExpressLane, message: RawRequestMessage) -> Plan | None:
        """The lane's plan; None (the full path, which answers any request) if planning
        failed, which is a bug: logged with its traceback."""
        try:
            return lane.plan(message)
        except Exception as exc:
            log.error("express_plan_failed", exc_info=exc)
            return None

    async def _serve_express(self, lane: ExpressLane, message: RawRequestMessage,
                             plan: Plan) -> None:
        """Serve a planned request, then keep the connection alive (and wake aiohttp's loop
        for what arrived meanwhile) or close it, as aiohttp's loop does after a request."""
        assert self._manager is not None
        self._manager.requests_count += 1
        started = time.perf_counter()
        keep_alive = False
        try:
            keep_alive = await lane.serve(self, message, plan)
        except ExchangeAborted:
            pass  # cut short: the connection closes, no (further) response
        except Exception as exc:  # noqa: BLE001 - answered like aiohttp's handler loop's
            keep_alive = await self._express_failed(message, exc, started)
        finally:
            self._express = None
            self._express_writer = None
        if not keep_alive or self._force_close or self._close:
            self.force_close()
            return
        self._keepalive = True
        self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
        if self._keepalive_handle is None:
            self._keepalive_handle = self._loop.call_at(self._next_keepalive_close_time,
                                                        self._process_keepalive)
        waiter = self._waiter
        if self._messages and waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _express_failed(self, message: RawRequestMessage, exc: Exception,
                              started: float) -> bool:
        """A bug's answer: a 500 when no byte was sent, else the connection is cut."""
        writer = self._express_writer
        if (writer is not None and writer.output_size > 0) or self._request_factory is None:
            log.error("unhandled_error", status=500, exc_info=exc)
            return False
        request = self.request(message, self.writer())
        try:
            return await self.answer(request, self.handle_error(request, 500, exc),
                                     started=started)
        except ConnectionError:
            return False

    # -- what the express lane needs of the connection (express.ExpressConnection) ---------

    @property
    def peer(self) -> str | None:
        """The client's address, as aiohttp's `request.remote` gives it."""
        peername = self.peername
        if peername is None:
            return None
        return str(peername[0]) if isinstance(peername, (list, tuple)) else str(peername)

    def writer(self) -> AbstractStreamWriter:
        """A new writer of one response on this connection."""
        self._express_writer = StreamWriter(self, self._loop)
        return self._express_writer

    def request(self, message: RawRequestMessage, writer: AbstractStreamWriter) -> web.Request:
        """The aiohttp request of `message`, as aiohttp's loop makes it (ClientGone when the
        connection is gone)."""
        if self._request_factory is None:
            raise ClientGone
        task = asyncio.current_task(self._loop)
        assert task is not None
        request = self._request_factory(message, EMPTY_PAYLOAD, self, writer, task)
        assert isinstance(request, web.Request)
        return request

    async def answer(self, request: web.Request, response: web.StreamResponse, *,
                     started: float) -> bool:
        """Send `response` and log it (its duration from `started`, a `perf_counter()`), as
        aiohttp's loop finishes a handler's; True when the connection may carry another
        request."""
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError as exc:
            raise ClientGone from exc
        self.log_access(request, response, time.perf_counter() - started)
        return bool(response.keep_alive)

    def log(self, *, request_id: str, method: str, path: str, status: int, time: float,
            bytes_sent: int, rule: str | None, user_agent: str | None) -> None:
        """Write the access line of a request the lane served."""
        logger = self.access_logger
        if self._logging_enabled and isinstance(logger, JsonAccessLogger):
            logger.log_fields(request_id=request_id, method=method, path=path, status=status,
                              time=time, bytes_sent=bytes_sent, remote=self.peer,
                              user_agent=user_agent, trace_id=None, rule=rule)

    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109 - aiohttp's
        """aiohttp's graceful shutdown, after the lane's exchange in progress (if any)."""
        self._draining = True
        if self._express is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._express), timeout)
        await super().shutdown(timeout)

    def _process_keepalive(self) -> None:
        if self._express is not None:  # aiohttp's loop waits, but the connection is busy
            self._keepalive_handle = self._loop.call_at(
                self._loop.time() + self._keepalive_timeout, self._process_keepalive)
            return
        super()._process_keepalive()

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._messages or self._request_in_progress or self._express \
                or self.transport is None:
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
        self.lane: ExpressLane | None = None

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
        server = GatewayServer(handler, request_factory=plain.request_factory,
                               handler_cancellation=plain.handler_cancellation,
                               loop=asyncio.get_running_loop(), limits=self._limits,
                               metrics=self._metrics, **plain._kwargs)
        server.lane = self.app.get(EXPRESS_LANE)
        return server


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
