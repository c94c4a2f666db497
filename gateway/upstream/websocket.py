"""WebSocket forwarding: connect upstream first, then accept the client, then pump both ways.

Frames pass as they are (autoping off, so pings and their payloads reach the other side); a
close from either side is forwarded with its code; a message over
`upstream.websocket_max_message_bytes` closes the socket with 1009. An upstream that drops the
connection without a close frame (or breaks the protocol) closes the client's socket with 1011
(internal error), is counted in `upstream_errors_total{reason}` and logged once as
`request_failed`, like any failure after a response started (upstream/failures.py).

A socket lives no longer than what authorised it: when the principal's tokens expire it
closes with 1008 (policy violation), unless the principal's renewal (a session refresh)
extends them; a bearer token is never renewed. At most `upstream.max_websockets` sockets are
open per worker (more: 503). The open sockets are tracked, by session too, so that shutdown
closes them with 1001 (going away) and a sign-out closes that session's with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from gateway.auth.principal import PRINCIPAL, Principal
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import TooManyWebSockets
from gateway.observability.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Mapping

    from yarl import URL

    from gateway.upstream.failures import UpstreamFailures

Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
SWITCHING_PROTOCOLS = 101
log = get_logger("gateway.upstream")
_NOT_SENDABLE = frozenset({1005, 1006, 1015})


def is_websocket_upgrade(request: web.Request) -> bool:
    """True for a GET that asks to upgrade to a WebSocket."""
    return (request.method == "GET"
            and request.headers.get("Upgrade", "").lower() == "websocket"
            and "upgrade" in request.headers.get("Connection", "").lower())


class OpenSockets:
    """An app's open client sockets, closed on request from any task with a full handshake.

    Closing runs as its own task (`close`); the socket's handler awaits it (`release`) before
    it returns, so the close frame is sent before aiohttp drops the connection, whoever asked:
    the expiry watchdog, a sign-out, or shutdown.
    """

    def __init__(self) -> None:
        self._sessions: dict[web.WebSocketResponse, str | None] = {}
        self._closing: dict[web.WebSocketResponse, asyncio.Task[bool]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, ws: web.WebSocketResponse, session_id: str | None) -> None:
        self._sessions[ws] = session_id

    def close(self, ws: web.WebSocketResponse, code: WSCloseCode, message: bytes) -> None:
        """Start closing `ws` (once) with this code."""
        if ws not in self._closing and not ws.closed:
            self._closing[ws] = asyncio.create_task(ws.close(code=code, message=message))

    def close_session(self, session_id: str) -> None:
        """Close a signed-out session's sockets with 1008."""
        for ws, sid in list(self._sessions.items()):
            if sid == session_id:
                self.close(ws, WSCloseCode.POLICY_VIOLATION, b"signed out")

    async def close_all(self) -> None:
        """Close every socket with 1001 and wait for the handshakes (shutdown)."""
        for ws in list(self._sessions):
            self.close(ws, WSCloseCode.GOING_AWAY, b"server shutdown")
        await asyncio.gather(*self._closing.values(), return_exceptions=True)

    async def release(self, ws: web.WebSocketResponse) -> None:
        """Forget a socket whose handler ends, after any close in progress has finished."""
        closing = self._closing.pop(ws, None)
        if closing is not None:
            with contextlib.suppress(Exception):
                await closing
        self._sessions.pop(ws, None)


OPEN_SOCKETS = web.AppKey("open_sockets", OpenSockets)


class WebSocketRelay:
    """Relays a WebSocket between the client and the upstream, message by message.

    At most `max_sockets` are open at once (further upgrades get 503); a message above
    `max_message_bytes` closes the socket with 1009.
    """

    def __init__(self, sockets: OpenSockets, failures: UpstreamFailures, *,
                 max_sockets: int, max_message_bytes: int,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._sockets = sockets
        self._failures = failures
        self._max_sockets = max_sockets
        # aiohttp refuses a message of exactly max_msg_size (its check is `>=`): one more byte
        # makes `max_message_bytes` itself the largest message relayed, as documented.
        self._max_message = max_message_bytes + 1
        self._clock = clock

    async def relay(self, request: web.Request, client: aiohttp.ClientSession, url: URL,
                    headers: Mapping[str, str]) -> web.StreamResponse:
        """Connect to `url`, accept the client's upgrade, and relay until either side closes."""
        if len(self._sockets) >= self._max_sockets:
            raise TooManyWebSockets("capacity", "too many open WebSockets; try again later")
        protocols = [p.strip() for p in
                     request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        forwarded = {k: v for k, v in headers.items()
                     if not k.lower().startswith("sec-websocket-")}
        with self._failures.connecting("the upstream WebSocket"):
            upstream = await client.ws_connect(
                url, headers=forwarded, protocols=protocols, autoping=False, autoclose=False,
                max_msg_size=self._max_message)
        downstream = web.WebSocketResponse(
            autoping=False, autoclose=False, max_msg_size=self._max_message,
            protocols=[upstream.protocol] if upstream.protocol else ())
        await downstream.prepare(request)
        principal = request.get(PRINCIPAL)
        self._sockets.add(downstream, principal.session_id if principal else None)
        # aiohttp wants the server socket read in the handler's task: upstream -> client aside.
        relay = _Relay(upstream, downstream)
        pump_down = asyncio.create_task(self._pump_down(relay))
        watchdog = asyncio.create_task(self._expire(downstream, principal))
        try:
            await self._pump_up(relay)
        finally:
            watchdog.cancel()
            relay.client_done = True
            await upstream.close()
            with contextlib.suppress(asyncio.CancelledError):
                await pump_down
            if not downstream.closed:
                await downstream.close(code=WSCloseCode.GOING_AWAY)
            await self._sockets.release(downstream)
        return downstream

    async def _pump_up(self, relay: _Relay) -> None:
        """Client -> upstream until the client closes (its code is passed on) or drops."""
        downstream = relay.downstream
        end = await _forward(downstream, relay.upstream)
        relay.client_done = True
        if end.type is WSMsgType.CLOSE:
            code = _sendable(end.data)
        elif end.type is WSMsgType.ERROR and downstream.close_code == WSCloseCode.MESSAGE_TOO_BIG:
            code = WSCloseCode.MESSAGE_TOO_BIG
        else:
            code = WSCloseCode.GOING_AWAY
        if not relay.upstream.closed:
            await relay.upstream.close(code=code)

    async def _pump_down(self, relay: _Relay) -> None:
        """Upstream -> client until the upstream closes (its code is passed on), sends a message
        over the limit (1009), or fails or drops (1011: counted and logged, before the client
        hears of it)."""
        upstream, downstream = relay.upstream, relay.downstream
        end = await _forward(upstream, downstream)
        if end.type is WSMsgType.CLOSE:
            code = _sendable(end.data)
        elif relay.client_done:
            code = WSCloseCode.GOING_AWAY  # the relay closed it, after the client ended
        elif end.type is WSMsgType.ERROR and upstream.close_code == WSCloseCode.MESSAGE_TOO_BIG:
            code = WSCloseCode.MESSAGE_TOO_BIG
        else:
            cause = upstream.exception() or ConnectionResetError("no close frame")
            failure = self._failures.aborted(cause, SWITCHING_PROTOCOLS)
            log.warning("request_failed", error=type(failure).__name__, detail=str(failure),
                        cause=f"{type(cause).__name__}: {cause}")
            code = WSCloseCode.INTERNAL_ERROR
        if not downstream.closed:
            await downstream.close(code=code)

    async def _expire(self, downstream: web.WebSocketResponse,
                      principal: Principal | None) -> None:
        if principal is None:
            return
        expires_at = principal.expires_at
        while True:
            await self._clock.sleep(max(0.0, expires_at - self._clock.time()))
            renewed = await principal.renew()
            if renewed is None or renewed <= self._clock.time():
                self._sockets.close(downstream, WSCloseCode.POLICY_VIOLATION,
                                    b"session expired")
                return
            expires_at = renewed


class _Relay:
    """The two sockets of one relayed WebSocket, and whether the client's side has ended."""

    __slots__ = ("client_done", "downstream", "upstream")

    def __init__(self, upstream: aiohttp.ClientWebSocketResponse,
                 downstream: web.WebSocketResponse) -> None:
        self.upstream = upstream
        self.downstream = downstream
        self.client_done = False


async def _forward(source: Socket, sink: Socket) -> aiohttp.WSMessage:
    """Relay frames from `source` to `sink` as they are; the message that ended `source`
    (CLOSE with its code, or CLOSING, CLOSED, ERROR), or the last one read once `sink` closed."""
    while True:
        msg = await source.receive()
        kind = msg.type
        if sink.closed:
            return msg
        if kind is WSMsgType.TEXT:
            await sink.send_str(msg.data)
        elif kind is WSMsgType.BINARY:
            await sink.send_bytes(msg.data)
        elif kind is WSMsgType.PING:
            await sink.ping(msg.data)
        elif kind is WSMsgType.PONG:
            await sink.pong(msg.data)
        else:
            return msg


def _sendable(code: object) -> int:
    """A close code that may go in a close frame: 1005, 1006 and 1015 are only ever reported
    locally (RFC 6455 7.4.1), and a close frame without a code means a normal closure."""
    if not isinstance(code, int) or code in _NOT_SENDABLE or not 1000 <= code < 5000:
        return WSCloseCode.OK
    return code
