"""Streaming HTTP forwarding to the upstream.

The upstream receives the request's normalised target (the query byte-exact), the headers
upstream/forwarding.py lets through, and the identity headers of the request's principal (set
by the guard), over the proxy's own HTTP/1.1 client (gateway/upstream/client: a keep-alive pool,
connect and idle-read timeouts of `upstream.timeout_seconds`, no total timeout, no cookie jar,
bodies passed through untouched, compressed or not). Bodies stream both ways with flow control,
so memory per request stays bounded however large they are; the client's body may pause at
most `server.client_body_timeout_seconds` between reads, and `upstream.max_request_body_bytes`
caps it (413, from its Content-Length up front or counted as it streams).

Network failures go through upstream/failures.py: 502/504 before the response starts; after,
the client's connection is cut (`UpstreamAborted`) and the upstream connection closed. When the
client goes away the upstream connection is closed too (`ClientGone`): a connection is given
back to the pool only after a response read to its end. WebSocket upgrades are handed to
upstream/websocket.py, over aiohttp's client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.auth.principal import PRINCIPAL
from gateway.errors import RequestBodyTimeout, RequestBodyTooLarge
from gateway.observability.request_id import REQUEST_ID
from gateway.observability.tracing import HTTP_METHOD, TRACING_OFF, Tracing
from gateway.target import TARGET
from gateway.upstream.client import TransportError, UpstreamClient, UpstreamResponse
from gateway.upstream.failures import ClientGone, UpstreamFailures
from gateway.upstream.forwarding import (
    TrustedProxies,
    client_response_headers,
    upstream_request_header_pairs,
)
from gateway.upstream.websocket import WebSocketRelay, is_websocket_upgrade

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping

    from multidict import CIMultiDictProxy

    from gateway.config import UpstreamSettings
    from gateway.observability.metrics import Metrics
    from gateway.sessions.cookies import CookiePolicy

KEEPALIVE_SECONDS = 4.0  # below the idle timeout of common app servers (uvicorn, Node: 5 s)


@dataclass(frozen=True)
class ProxySettings:
    """What the proxy reads from the settings (replaced whole on a reload)."""

    upstream: UpstreamSettings
    public_url: str
    body_timeout: float
    max_header_bytes: int


class UpstreamProxy:
    """Forwards requests to one upstream: HTTP over a keep-alive pool, WebSockets aside."""

    def __init__(self, settings: ProxySettings, *, trusted: TrustedProxies,
                 cookies: CookiePolicy, metrics: Metrics, failures: UpstreamFailures,
                 websockets: WebSocketRelay, tracing: Tracing = TRACING_OFF) -> None:
        self._settings = settings.upstream
        self._body_timeout = settings.body_timeout
        self._max_header_bytes = settings.max_header_bytes
        self._limit = settings.upstream.max_request_body_bytes
        public = URL(settings.public_url)
        self._public_scheme, self._public_host = public.scheme, public.host_port_subcomponent
        upstream = urlsplit(settings.upstream.url)
        self._origin = f"{upstream.scheme}://{upstream.netloc}"
        self._base_path = upstream.path.rstrip("/")
        self._base = URL(settings.upstream.url.rstrip("/"))
        self._trusted = trusted
        self._cookies = cookies
        self._upstream_duration = metrics.upstream_request_duration
        self._failures = failures
        self._websockets = websockets
        self._tracing = tracing
        self._http: UpstreamClient | None = None
        self._ws_client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        t = self._settings.timeout_seconds
        self._http = UpstreamClient(
            self._origin, connect_timeout=t, read_timeout=t,
            keepalive_timeout=KEEPALIVE_SECONDS, max_header_bytes=self._max_header_bytes)
        self._ws_client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0,
                                           keepalive_timeout=KEEPALIVE_SECONDS),
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, connect=t, sock_connect=t, sock_read=t),
            max_field_size=self._max_header_bytes, max_line_size=self._max_header_bytes,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._ws_client is not None:
            await self._ws_client.close()

    @property
    def client(self) -> UpstreamClient:
        assert self._http is not None, "UpstreamProxy.start() was not awaited"
        return self._http

    def headers(self, request: web.Request) -> CIMultiDict[str]:
        return CIMultiDict(self.header_pairs(request))

    def header_pairs(self, request: web.Request) -> list[tuple[str, str]]:
        """The request's headers for the upstream (upstream/forwarding.py), in order."""
        principal = request.get(PRINCIPAL)
        return self.pairs(request.headers, request.remote, request[REQUEST_ID],
                          principal.headers if principal else {})

    def pairs(self, headers: CIMultiDictProxy[str], peer: str | None, request_id: str,
              identity: Mapping[str, str]) -> list[tuple[str, str]]:
        """`header_pairs` of a request's headers, peer address, id and identity headers."""
        return upstream_request_header_pairs(
            headers, peer=peer, scheme=self._public_scheme, host=self._public_host or "",
            trusted=self._trusted, own_cookie=self._cookies.owns, request_id=request_id,
            identity=identity)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward the request and stream the answer back."""
        if self._settings.websockets and is_websocket_upgrade(request):
            assert self._ws_client is not None, "UpstreamProxy.start() was not awaited"
            url = URL(str(self._base) + request[TARGET].forwarded, encoded=True)
            return await self._websockets.relay(request, self._ws_client, url,
                                                self.headers(request))
        limit = self._limit
        length = request.content_length
        if limit and (length or 0) > limit:
            raise RequestBodyTooLarge("request body exceeds upstream.max_request_body_bytes")
        headers = self.header_pairs(request)
        method = request.method
        with self._tracing.client_span("upstream", {HTTP_METHOD: method}) as call:
            if self._tracing.enabled:
                carrier = CIMultiDict(headers)
                self._tracing.inject(carrier)
                headers = list(carrier.items())
            upstream = await self.send(method, request[TARGET].forwarded, headers,
                                       self._body(request) if request.body_exists else None,
                                       length)
            call.set_status_code(upstream.status)
            try:
                return await self._relay(request, upstream)
            finally:
                await upstream.aclose()  # no-op after a complete body; closes a cut one

    async def send(self, method: str, forwarded: str, headers: list[tuple[str, str]],
                   body: AsyncIterable[bytes] | None,
                   length: int | None) -> UpstreamResponse:
        """Send a request for the target `forwarded` (a RequestTarget's) and wait for the
        response head; network failures become GatewayErrors (upstream/failures.py)."""
        started = time.perf_counter()
        with self._failures.connecting():
            upstream = await self.client.request(method, self._base_path + forwarded, headers,
                                                 body, body_length=length)
        self._upstream_duration.observe(time.perf_counter() - started)
        return upstream

    def response_headers(self, upstream: UpstreamResponse,
                         request_id: str) -> list[tuple[str, str]]:
        """The client's response headers: the upstream's that may pass
        (upstream/forwarding.py), and the request id unless the upstream sent one."""
        headers = client_response_headers(upstream.headers, self._cookies.owns)
        if not any(name.lower() == "x-request-id" for name, _ in headers):
            headers.append(("X-Request-Id", request_id))
        return headers

    async def pump(self, upstream: UpstreamResponse, status: int,
                   write: Callable[[bytes], Awaitable[None]]) -> None:
        """Pass the upstream's body to `write` as it arrives, to its end. An upstream failure
        on the way (the response started with `status`) raises UpstreamAborted, counted; the
        writer's own errors (the client's side) pass through."""
        while True:
            try:
                chunk = await upstream.receive()
            except TransportError as exc:
                raise self._failures.aborted(exc, status) from exc
            if not chunk:
                return
            await write(chunk)

    async def _body(self, request: web.Request) -> AsyncIterator[bytes]:
        """The client's body as it arrives, within the timeout and the size limit."""
        limit, received, content = self._limit, 0, request.content
        while True:
            try:
                async with asyncio.timeout(self._body_timeout):
                    chunk = await content.readany()
            except TimeoutError:
                raise RequestBodyTimeout("the request body stalled") from None
            except ConnectionError as exc:
                raise ClientGone from exc
            if not chunk:
                return
            received += len(chunk)
            if limit and received > limit:
                raise RequestBodyTooLarge("request body exceeds upstream.max_request_body_bytes")
            yield chunk

    async def _relay(self, request: web.Request,
                     upstream: UpstreamResponse) -> web.StreamResponse:
        status, arrived = upstream.status, upstream.arrived
        # A body that has arrived whole (the usual case for small ones) leaves in the same
        # write as the head (profiled: socket writes are the largest single cost); any other
        # response sends its head at once, so a client sees an event stream's head before its
        # first event.
        response = (_WholeResponse if arrived else web.StreamResponse)(
            status=status, reason=upstream.reason)
        response.headers.extend(self.response_headers(upstream, request[REQUEST_ID]))
        # Errors of the client's side are ConnectionErrors (aiohttp's writes); the upstream's
        # are the client package's TransportErrors: the two never mix.
        try:
            await response.prepare(request)
            if arrived:
                await response.write_eof(await upstream.read())
                return response
            await self.pump(upstream, status, response.write)
            await response.write_eof()
        except ConnectionError as exc:
            raise ClientGone from exc
        return response


class _WholeResponse(web.StreamResponse):
    """A response whose head waits for its body, to leave with it in one write.

    aiohttp's StreamResponse sends its head in prepare() unless told otherwise by this class
    attribute (its Response sets it too); without it the head goes first, as before.
    """

    _send_headers_immediately = False
