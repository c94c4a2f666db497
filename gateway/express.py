"""The express lane: a request that needs nothing but a settled decision and the relay, served
without aiohttp's request, middleware, handler task and response objects.

Most requests of a signed-in user tell the same story: a GET whose session cookie this process
decoded a moment ago, no refresh due, no cookie to write back, and the upstream's answer
relayed. Told through web.Request, the middleware, a task per request and StreamResponse, that
story cost about a third of the gateway's CPU per request (issue #16, profiled). The listener
(gateway/listener.py) offers each request that arrives alone on an idle connection to
`ExpressLane.plan`, which plans it only when serving it the full way would do exactly what the
lane does:

- GET or HEAD without a body (no Content-Length, no Transfer-Encoding), no Expect, no Upgrade;
- its target parses (gateway/target.py, the one parse) to a single reading, and no gateway
  endpoint owns its path (gateway/routing.py);
- the guard's decision passes without I/O (`Guard.settled`): a public route, or a principal
  known here that meets its rule: a bearer token verified already, or a session (its cookie
  decoded already, no newer generation, no refresh due, nothing to reseal, so its response
  writes no cookie).

Anything else gets no plan and takes the full path, which decides in full. With tracing on,
the app has no lane at all (spans are the full path's: gateway/app.py). A planned request is
decided by the same functions from the same inputs, and counted the same. Its upstream request
is the full path's (`UpstreamProxy.pairs` and `send`), and so is its response: the upstream's
headers through the same filter, then what aiohttp's StreamResponse adds (Date, Server, the
framing, Connection), in the same writes (a body that has arrived whole leaves with the head).
A failure before the response starts is answered by the full path's error translation (on an
aiohttp request the listener builds for it); after, or when the client has left, the connection
is cut, as on the full path. The metrics and the access line are the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import structlog
from aiohttp import hdrs, web
from aiohttp.helpers import must_be_empty_body, rfc822_formatted_time, should_remove_content_length
from aiohttp.http import SERVER_SOFTWARE, HttpVersion, HttpVersion10, HttpVersion11
from multidict import CIMultiDict

from gateway.auth.classify import navigation_of
from gateway.auth.policy import RULE
from gateway.auth.principal import PRINCIPAL
from gateway.errors import GatewayError
from gateway.observability.request_id import REQUEST_ID, request_id_in
from gateway.observability.requests import aborted, answer_error
from gateway.target import TARGET, RequestTarget, parse_target
from gateway.upstream.failures import ClientGone, ExchangeAborted

if TYPE_CHECKING:
    from aiohttp.abc import AbstractStreamWriter
    from aiohttp.http_parser import RawRequestMessage

    from gateway.auth.guard import Decision, Guard
    from gateway.observability.metrics import Metrics
    from gateway.routing import Router
    from gateway.translate import ErrorResponses
    from gateway.upstream.client import UpstreamResponse
    from gateway.upstream.proxy import UpstreamProxy

EXPRESS_METHODS = frozenset({"GET", "HEAD"})
_NOT_EXPRESS = (hdrs.CONTENT_LENGTH, hdrs.TRANSFER_ENCODING, hdrs.EXPECT, hdrs.UPGRADE)


@dataclass(frozen=True, slots=True)
class Plan:
    """A request the lane serves: its target and the guard's (passing) decision."""

    target: RequestTarget
    decision: Decision


class ExpressConnection(Protocol):
    """What the lane needs of the client's connection (gateway/listener.py provides it)."""

    @property
    def peer(self) -> str | None:
        """The client's address, as aiohttp's `request.remote` gives it."""

    def writer(self) -> AbstractStreamWriter:
        """A new writer of one response on this connection."""

    def request(self, message: RawRequestMessage,
                writer: AbstractStreamWriter) -> web.Request:
        """The aiohttp request of `message`, for the full path's error answers."""

    async def answer(self, request: web.Request, response: web.StreamResponse, *,
                     started: float) -> bool:
        """Send `response` and log it (its duration from `started`, a `perf_counter()`), as
        aiohttp finishes a handler's; True: keep-alive."""

    def log(self, *, request_id: str, method: str, path: str, status: int, time: float,
            bytes_sent: int, rule: str | None, user_agent: str | None) -> None:
        """Write the access line of a request served here."""


class ExpressLane:
    """Plans and serves the requests that need no more than a settled decision and the relay."""

    def __init__(self, *, router: Router, guard: Guard, proxy: UpstreamProxy,
                 errors: ErrorResponses, metrics: Metrics) -> None:
        self._router = router
        self._guard = guard
        self._proxy = proxy
        self._errors = errors
        self._metrics = metrics
        self.served = 0  # requests served here: tests tell by it which way a request went

    def plan(self, message: RawRequestMessage) -> Plan | None:
        """The plan for `message` when the lane serves it as the full path would (see the
        module docstring), its decision counted; None otherwise, counting nothing."""
        method = message.method
        headers = message.headers
        if method not in EXPRESS_METHODS or message.upgrade \
                or any(name in headers for name in _NOT_EXPRESS):
            return None
        try:
            target = parse_target(message.path)
            if len(target.readings) != 1 or self._router.endpoint(target) is not None:
                return None
        except GatewayError:
            return None  # refused: the full path refuses it, counted and logged
        decision = self._guard.settled(method, target, headers,
                                       navigation=navigation_of(method, headers))
        return Plan(target, decision) if decision is not None else None

    async def serve(self, connection: ExpressConnection, message: RawRequestMessage,
                    plan: Plan) -> bool:
        """Serve a planned request; True when the connection may carry another. An exchange
        cut short raises ExchangeAborted (the caller closes the connection)."""
        started = time.perf_counter()
        self.served += 1
        headers = message.headers
        request_id = request_id_in(headers)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        principal = plan.decision.principal
        method = message.method
        proxy = self._proxy
        status = 500
        try:
            try:
                upstream = await proxy.send(
                    method, plan.target.forwarded,
                    proxy.pairs(headers, connection.peer, request_id,
                                principal.headers if principal else {}), None, None)
            except GatewayError as exc:
                request, response = self._error(connection, message, plan, exc, request_id)
                status = response.status  # counted so even if the client has left meanwhile
                try:
                    return await connection.answer(request, response, started=started)
                except ExchangeAborted:
                    return False
            status = upstream.status
            try:
                writer = connection.writer()
                keep_alive = await self._relay(writer, message, upstream, request_id)
            finally:
                await upstream.aclose()  # no-op after a complete body; closes a cut one
            connection.log(request_id=request_id, method=method, path=plan.target.path,
                           status=status, time=time.perf_counter() - started,
                           bytes_sent=writer.output_size, rule=plan.decision.route.rule,
                           user_agent=headers.get(hdrs.USER_AGENT))
            return keep_alive
        except ExchangeAborted as exc:
            status = aborted(exc)
            raise
        finally:
            self._metrics.count_request(method, status, time.perf_counter() - started)

    def _error(self, connection: ExpressConnection, message: RawRequestMessage, plan: Plan,
               exc: GatewayError, request_id: str) -> tuple[web.Request, web.Response]:
        """The full path's answer to `exc`, on the aiohttp request of `message`."""
        request = connection.request(message, connection.writer())
        request[REQUEST_ID] = request_id
        request[TARGET] = plan.target
        request[RULE] = plan.decision.route.rule
        if plan.decision.principal is not None:
            request[PRINCIPAL] = plan.decision.principal
        response = answer_error(self._errors, self._metrics, request, exc, request_id)
        response.headers.setdefault("X-Request-Id", request_id)
        return request, response

    async def _relay(self, writer: AbstractStreamWriter, message: RawRequestMessage,
                     upstream: UpstreamResponse, request_id: str) -> bool:
        """Send the upstream's response as UpstreamProxy's relay and aiohttp's StreamResponse
        would; True when the connection may carry another request."""
        status, version = upstream.status, message.version
        headers: CIMultiDict[str] = CIMultiDict(self._proxy.response_headers(upstream, request_id))
        keep_alive = _frame(writer, headers, message, status)
        head = f"HTTP/{version.major}.{version.minor} {status} {upstream.reason}"
        try:
            await writer.write_headers(head, headers)
            if upstream.arrived:  # the head leaves with the body, in one write
                await writer.write_eof(await upstream.read())
                return keep_alive
            writer.send_headers()
            await self._proxy.pump(upstream, status, writer.write)
            await writer.write_eof()
        except ConnectionError as exc:
            raise ClientGone from exc
        return keep_alive


EXPRESS_LANE = web.AppKey("express_lane", ExpressLane)


def _frame(writer: AbstractStreamWriter, headers: CIMultiDict[str],
           message: RawRequestMessage, status: int) -> bool:
    """What aiohttp's StreamResponse adds to a response's headers before sending them (its
    `_prepare_headers`, for a response without cookies or compression): the framing, Date,
    Server and Connection. Returns whether the connection may carry another request."""
    method, version = message.method, message.version
    keep_alive = _framing(writer, headers, method, version, status,
                          keep_alive=not message.should_close)
    if hdrs.DATE not in headers:
        headers[hdrs.DATE] = rfc822_formatted_time()
    headers.setdefault(hdrs.SERVER, SERVER_SOFTWARE)
    if hdrs.CONNECTION not in headers:
        if keep_alive:
            if version == HttpVersion10:
                headers[hdrs.CONNECTION] = "keep-alive"
        elif version == HttpVersion11:
            headers[hdrs.CONNECTION] = "close"
    return keep_alive


def _framing(writer: AbstractStreamWriter, headers: CIMultiDict[str], method: str,
             version: HttpVersion, status: int, *, keep_alive: bool) -> bool:
    """The framing part of `_frame`: Content-Length or chunked, or neither."""
    empty = must_be_empty_body(method, status)
    length = headers.get(hdrs.CONTENT_LENGTH)
    writer.length = int(length) if length is not None else None
    if writer.length is None:
        if version >= HttpVersion11:
            if not empty:
                writer.enable_chunking()
                headers[hdrs.TRANSFER_ENCODING] = "chunked"
        elif not empty:
            keep_alive = False
    if empty:
        if hdrs.CONTENT_LENGTH in headers and should_remove_content_length(method, status):
            del headers[hdrs.CONTENT_LENGTH]
        if hdrs.TRANSFER_ENCODING in headers:
            del headers[hdrs.TRANSFER_ENCODING]
    elif writer.length != 0:
        headers.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
    return keep_alive
