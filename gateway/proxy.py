"""Streaming HTTP forwarding to the upstream.

Bodies stream both ways (memory per request is bounded by flow control); the raw path and query
are sent byte-exact; compression passes through untouched (auto_decompress off on both sides);
no cookie jar is shared between users; no total timeout cuts long downloads or SSE. Failures
before the response starts map to 502/504 (UpstreamError); after it starts the error is
re-raised so the client connection aborts instead of seeing a complete-looking truncated body.
WebSocket upgrades are handed to gateway/websocket.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import WSCloseCode, web
from multidict import CIMultiDict
from yarl import URL

from gateway.config import UpstreamSettings
from gateway.errors import (
    ClientRequestError,
    RequestBodyTimeout,
    RequestBodyTooLarge,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    network_failure_reason,
)
from gateway.forwarding import (
    TrustedProxies,
    client_response_headers,
    upstream_request_headers,
)
from gateway.keys import REQUEST_ID, TARGET, UPSTREAM_IDENTITY, run_before_prepare
from gateway.observability.metrics import Metrics
from gateway.sessions.cookies import CookiePolicy
from gateway.websocket import OpenSockets, is_websocket_upgrade, proxy_websocket

MAX_FIELD_SIZE = 65536
SMALL_BODY = 65536


class UpstreamProxy:
    """Forwards requests to one upstream over a pooled, cookie-less client session."""

    def __init__(self, settings: UpstreamSettings, *, public_url: str, trusted: TrustedProxies,
                 cookies: CookiePolicy, metrics: Metrics, body_timeout: float) -> None:
        self._settings = settings
        self._body_timeout = body_timeout
        public = URL(public_url)
        self._public_scheme, self._public_host = public.scheme, public.host_port_subcomponent
        self._base = URL(settings.url.rstrip("/"))
        self._trusted = trusted
        self._cookies = cookies
        self._metrics = metrics
        self._client: aiohttp.ClientSession | None = None
        self.sockets = OpenSockets()

    async def start(self) -> None:
        t = self._settings.timeout_seconds
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=4.0),
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, connect=t, sock_connect=t, sock_read=t),
            max_field_size=MAX_FIELD_SIZE, max_line_size=MAX_FIELD_SIZE,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
        )

    async def close_websockets(self) -> None:
        """Close this app's open WebSockets with 1001 (going away)."""
        await self.sockets.close_all(WSCloseCode.GOING_AWAY, b"server shutdown")

    def close_session_sockets(self, session_id: str) -> None:
        """Close the open WebSockets of a session that signed out, with 1008."""
        self.sockets.close_session(session_id, WSCloseCode.POLICY_VIOLATION, b"signed out")

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
        return upstream_request_headers(
            request.headers, peer=request.remote, scheme=self._public_scheme,
            host=self._public_host or "",
            trusted=self._trusted, own_cookie=self._cookies.owns,
            request_id=request[REQUEST_ID], identity=request.get(UPSTREAM_IDENTITY, {}))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler: forward the request and stream the answer back."""
        if self._settings.websockets and is_websocket_upgrade(request):
            return await proxy_websocket(request, self)
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

        started = time.perf_counter()
        try:
            upstream = await self.client.request(
                request.method, self.target(request), headers=self.headers(request),
                data=body() if request.body_exists else None, allow_redirects=False)
        except (aiohttp.ClientError, TimeoutError, ClientRequestError) as exc:
            if refused:
                raise refused[0] from exc
            raise self._failure(exc) from exc
        self._metrics.upstream_request_duration.observe(time.perf_counter() - started)
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
        await run_before_prepare(request, response)
        try:
            await response.prepare(request)
        except ConnectionResetError:
            return response  # the client left; nothing to send it
        try:
            length = upstream.content_length
            if length is not None and length <= SMALL_BODY:
                # Headers and a small body leave in one write (profiled: socket writes were
                # the largest single cost of a proxied request).
                await response.write_eof(await upstream.read())
                return response
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._metrics.upstream_errors.labels(
                reason=network_failure_reason(exc) or "reset").inc()
            raise
        await response.write_eof()
        return response

    def _failure(self, exc: BaseException) -> UpstreamError:
        reason = network_failure_reason(exc) or "connect"
        self._metrics.upstream_errors.labels(reason=reason).inc()
        if reason == "timeout":
            return UpstreamTimeout("the upstream did not answer in time")
        return UpstreamConnectError(f"the upstream is unreachable ({reason})")
