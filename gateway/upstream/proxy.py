"""Streaming HTTP forwarding to the upstream.

The upstream receives the request's normalised target (the query byte-exact), the headers
upstream/forwarding.py lets through, and the identity headers of the request's principal (set
by the guard). Bodies stream both ways (memory per request is bounded by flow control), with
`server.client_body_timeout_seconds` between reads of the client's body and
`upstream.max_request_body_bytes` as a cap; compression passes through untouched; no cookie
jar is shared between users; no total timeout cuts long downloads or SSE. Network failures go
through upstream/failures.py: 502/504 before the response starts, an aborted connection after.
WebSocket upgrades are handed to upstream/websocket.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.auth.principal import PRINCIPAL
from gateway.config import UpstreamSettings
from gateway.errors import ClientRequestError, RequestBodyTimeout, RequestBodyTooLarge
from gateway.observability.metrics import Metrics
from gateway.observability.request_id import REQUEST_ID
from gateway.observability.tracing import HTTP_METHOD, TRACING_OFF, Tracing
from gateway.sessions.cookies import CookiePolicy
from gateway.target import TARGET
from gateway.upstream.failures import UpstreamFailures
from gateway.upstream.forwarding import (
    TrustedProxies,
    client_response_headers,
    upstream_request_headers,
)
from gateway.upstream.websocket import WebSocketRelay, is_websocket_upgrade

SMALL_BODY = 65536


@dataclass(frozen=True)
class ProxySettings:
    upstream: UpstreamSettings
    public_url: str
    body_timeout: float
    max_header_bytes: int


class UpstreamProxy:
    """Forwards requests to one upstream over a pooled, cookie-less client session."""

    def __init__(self, settings: ProxySettings, *, trusted: TrustedProxies,
                 cookies: CookiePolicy, metrics: Metrics, failures: UpstreamFailures,
                 websockets: WebSocketRelay, tracing: Tracing = TRACING_OFF) -> None:
        self._settings = settings.upstream
        self._body_timeout = settings.body_timeout
        self._max_header_bytes = settings.max_header_bytes
        public = URL(settings.public_url)
        self._public_scheme, self._public_host = public.scheme, public.host_port_subcomponent
        self._base = URL(settings.upstream.url.rstrip("/"))
        self._trusted = trusted
        self._cookies = cookies
        self._metrics = metrics
        self._failures = failures
        self._websockets = websockets
        self._tracing = tracing
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        t = self._settings.timeout_seconds
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=4.0),
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, connect=t, sock_connect=t, sock_read=t),
            max_field_size=self._max_header_bytes, max_line_size=self._max_header_bytes,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    @property
    def client(self) -> aiohttp.ClientSession:
        assert self._client is not None, "UpstreamProxy.start() was not awaited"
        return self._client

    def target(self, request: web.Request) -> URL:
        """The upstream URL for the request's normalised target (the query byte-exact)."""
        return URL(str(self._base) + request[TARGET].forwarded, encoded=True)

    def headers(self, request: web.Request) -> CIMultiDict[str]:
        principal = request.get(PRINCIPAL)
        return upstream_request_headers(
            request.headers, peer=request.remote, scheme=self._public_scheme,
            host=self._public_host or "", trusted=self._trusted, own_cookie=self._cookies.owns,
            request_id=request[REQUEST_ID], identity=principal.headers if principal else {})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward the request and stream the answer back."""
        if self._settings.websockets and is_websocket_upgrade(request):
            return await self._websockets.relay(request, self.client, self.target(request),
                                                self.headers(request))
        limit = self._settings.max_request_body_bytes
        if limit and (request.content_length or 0) > limit:
            raise RequestBodyTooLarge("request body exceeds upstream.max_request_body_bytes")
        refused: list[ClientRequestError] = []

        async def body() -> AsyncIterator[bytes]:
            # The client's failures are remembered here: aiohttp's client may wrap what the
            # body iterator raises, and they must not read as upstream failures.
            received = 0
            while True:
                try:
                    async with asyncio.timeout(self._body_timeout):
                        chunk = await request.content.readany()
                except TimeoutError:
                    refused.append(RequestBodyTimeout("the request body stalled"))
                    raise refused[-1] from None
                if not chunk:
                    return
                received += len(chunk)
                if limit and received > limit:
                    refused.append(RequestBodyTooLarge(
                        "request body exceeds upstream.max_request_body_bytes"))
                    raise refused[-1]
                yield chunk

        headers = self.headers(request)
        with self._tracing.client_span("upstream", {HTTP_METHOD: request.method}) as call:
            self._tracing.inject(headers)
            started = time.perf_counter()
            try:
                with self._failures.connecting():
                    upstream = await self.client.request(
                        request.method, self.target(request), headers=headers,
                        data=body() if request.body_exists else None, allow_redirects=False)
            except Exception as exc:
                if refused:
                    raise refused[0] from exc
                raise
            self._metrics.upstream_request_duration.observe(time.perf_counter() - started)
            call.set_status_code(upstream.status)
            try:
                return await self._relay(request, upstream)
            finally:
                upstream.release()

    async def _relay(self, request: web.Request,
                     upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                      headers=client_response_headers(upstream.headers,
                                                                      self._cookies.owns))
        response.headers.setdefault("X-Request-Id", request[REQUEST_ID])
        try:
            await response.prepare(request)
        except ConnectionResetError:
            return response  # the client left; nothing to send it
        with self._failures.streaming():
            length = upstream.content_length
            if length is not None and length <= SMALL_BODY:
                # Headers and a small body leave in one write (profiled: socket writes were
                # the largest single cost of a proxied request).
                await response.write_eof(await upstream.read())
                return response
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        await response.write_eof()
        return response
