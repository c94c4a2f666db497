"""WebSocket forwarding: connect upstream first, then accept the client, then pump both ways.

Frames pass as they are (autoping off, so pings and their payloads reach the other side); a
close from either side is forwarded with its code. A socket opened with a session closes with
1008 (policy violation) when the session's tokens expire, unless `SocketDeadline.renew` extends
them. Each app's proxy tracks its open sockets so that shutdown can close them with 1001
(going away).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
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
    """When a socket's authorisation ends, and how to try to extend it (None: cannot)."""

    expires_at: float
    renew: Callable[[], Awaitable[float | None]]


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
    proxy.open_sockets.add(downstream)
    # aiohttp wants the server socket read in the handler's task: upstream -> client runs aside.
    pump_down = asyncio.create_task(_pump(upstream, downstream))
    watchdog = asyncio.create_task(_expire(downstream, request.get(SOCKET_DEADLINE)))
    try:
        await _pump(downstream, upstream)
    finally:
        watchdog.cancel()
        await upstream.close()
        with contextlib.suppress(asyncio.CancelledError):
            await pump_down
        if not downstream.closed:
            await downstream.close(code=upstream.close_code or WSCloseCode.GOING_AWAY)
        proxy.open_sockets.discard(downstream)
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


async def _expire(downstream: web.WebSocketResponse, deadline: SocketDeadline | None) -> None:
    while deadline is not None:
        await asyncio.sleep(max(0.0, deadline.expires_at - time.time()))
        renewed = await deadline.renew()
        if renewed is None or renewed <= time.time():
            await downstream.close(code=WSCloseCode.POLICY_VIOLATION,
                                   message=b"session expired")
            return
        deadline.expires_at = renewed


async def close_sockets(sockets: weakref.WeakSet[web.WebSocketResponse]) -> None:
    """Close client sockets with 1001 (going away), for shutdown."""
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
