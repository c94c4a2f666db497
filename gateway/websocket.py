"""WebSocket forwarding: connect upstream first, then accept the client, then pump both ways.

Frames pass as they are (autoping off, so pings and their payloads reach the other side); a
close from either side is forwarded with its code. A socket closes with 1008 (policy
violation) when its principal's tokens expire: a session's unless `SocketDeadline.renew`
extends them, a bearer token's at its `exp`. Each app's proxy tracks its open sockets, by
session too, so that shutdown can close them with 1001 (going away) and a sign-out closes that
session's sockets with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from gateway.errors import UpstreamConnectError, UpstreamTimeout, network_failure_reason
from gateway.keys import SOCKET_DEADLINE, run_before_prepare

if TYPE_CHECKING:
    from gateway.proxy import UpstreamProxy

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass
class SocketDeadline:
    """When a socket's authorisation ends, how to try to extend it (None: cannot), and the
    session it belongs to (None for a bearer token)."""

    expires_at: float
    renew: Callable[[], Awaitable[float | None]]
    session_id: str | None = None


async def cannot_renew() -> float | None:
    """The renewal of a bearer token: there is none, the client must reconnect."""
    return None


def is_websocket_upgrade(request: web.Request) -> bool:
    return (request.method == "GET"
            and request.headers.get("Upgrade", "").lower() == "websocket"
            and "upgrade" in request.headers.get("Connection", "").lower())


async def proxy_websocket(request: web.Request, proxy: UpstreamProxy) -> web.StreamResponse:
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                 if p.strip()]
    headers = {k: v for k, v in proxy.headers(request).items()
               if not k.lower().startswith("sec-websocket-")}
    try:
        upstream = await proxy.client.ws_connect(
            proxy.target(request), headers=headers, protocols=protocols, autoping=False,
            autoclose=False, max_msg_size=MAX_MESSAGE_BYTES)
    except (aiohttp.ClientError, TimeoutError) as exc:
        if network_failure_reason(exc) == "timeout":
            raise UpstreamTimeout("the upstream did not accept the WebSocket in time") from exc
        raise UpstreamConnectError("the upstream refused the WebSocket") from exc
    downstream = web.WebSocketResponse(
        autoping=False, autoclose=False, max_msg_size=MAX_MESSAGE_BYTES,
        protocols=[upstream.protocol] if upstream.protocol else ())
    await run_before_prepare(request, downstream)
    await downstream.prepare(request)
    deadline = request.get(SOCKET_DEADLINE)
    proxy.sockets.add(downstream, deadline.session_id if deadline else None)
    # aiohttp wants the server socket read in the handler's task: upstream -> client runs aside.
    pump_down = asyncio.create_task(_pump(upstream, downstream))
    watchdog = asyncio.create_task(_expire(downstream, deadline, proxy.sockets))
    try:
        await _pump(downstream, upstream)
    finally:
        watchdog.cancel()
        await upstream.close()
        with contextlib.suppress(asyncio.CancelledError):
            await pump_down
        if not downstream.closed:
            await downstream.close(code=upstream.close_code or WSCloseCode.GOING_AWAY)
        await proxy.sockets.release(downstream)
    return downstream


async def _pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
    async for msg in source:
        if sink.closed:
            break
        if msg.type == WSMsgType.TEXT:
            await sink.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await sink.send_bytes(msg.data)
        elif msg.type == WSMsgType.PING:
            await sink.ping(msg.data)
        elif msg.type == WSMsgType.PONG:
            await sink.pong(msg.data)
    if not sink.closed:
        await sink.close(code=source.close_code or WSCloseCode.OK)


async def _expire(downstream: web.WebSocketResponse, deadline: SocketDeadline | None,
                  sockets: OpenSockets) -> None:
    while deadline is not None:
        await asyncio.sleep(max(0.0, deadline.expires_at - time.time()))
        renewed = await deadline.renew()
        if renewed is None or renewed <= time.time():
            sockets.close(downstream, WSCloseCode.POLICY_VIOLATION, b"session expired")
            return
        deadline.expires_at = renewed


class OpenSockets:
    """An app's open client sockets, closed on request from any task with a full handshake.

    Closing runs as its own task (`close`); the socket's handler awaits it (`release`) before
    it returns, so the close frame is answered before aiohttp drops the connection, whoever
    asked: the expiry watchdog, a sign-out, or shutdown.
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

    def close_session(self, session_id: str, code: WSCloseCode, message: bytes) -> None:
        for ws, sid in list(self._sessions.items()):
            if sid == session_id:
                self.close(ws, code, message)

    async def close_all(self, code: WSCloseCode, message: bytes) -> None:
        """Close every socket and wait for the handshakes (shutdown)."""
        for ws in list(self._sessions):
            self.close(ws, code, message)
        await asyncio.gather(*self._closing.values(), return_exceptions=True)

    async def release(self, ws: web.WebSocketResponse) -> None:
        """Forget a socket whose handler ends, after any close in progress has finished."""
        closing = self._closing.pop(ws, None)
        if closing is not None:
            with contextlib.suppress(Exception):
                await closing
        self._sessions.pop(ws, None)
