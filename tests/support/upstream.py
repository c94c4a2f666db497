"""A test upstream with the behaviours a proxy must get right (echo, slow, streaming, abort, ws)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib

from aiohttp import WSMsgType, web


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({
        "method": request.method,
        "raw_path": request.raw_path,
        "headers": [[k, v] for k, v in request.headers.items()],
        "body_bytes": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    })


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("seconds", "5")))
    return web.Response(text="slow done")


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `chunks` events, `delay` seconds apart."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for i in range(int(request.query.get("chunks", "3"))):
        await response.write(f"data: event {i}\n\n".encode())
        await asyncio.sleep(float(request.query.get("delay", "0.1")))
    await response.write_eof()
    return response


async def abort(request: web.Request) -> web.StreamResponse:
    """Promise 1000 bytes, send 10, then drop the connection."""
    response = web.StreamResponse(headers={"Content-Length": "1000"})
    await response.prepare(request)
    await response.write(b"0123456789")
    await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.close()
    return response


async def gzipped(_request: web.Request) -> web.Response:
    return web.Response(body=gzip.compress(b"hello compressed world" * 50),
                        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})


async def set_cookie(request: web.Request) -> web.Response:
    response = web.json_response({"cookie_header": request.headers.get("Cookie")})
    response.set_cookie(request.query.get("name", "app_cookie"), request.query.get("value", "x"))
    return response


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("chat",), autoping=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT and msg.data.startswith("close:"):
            await ws.close(code=int(msg.data[6:]), message=b"bye")
        elif msg.type == WSMsgType.TEXT:
            await ws.send_str("echo:" + msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
        elif msg.type == WSMsgType.PING:
            await ws.pong(msg.data)
    return ws


def create_test_upstream() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/slow", slow)
    app.router.add_get("/stream", stream)
    app.router.add_get("/abort", abort)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/set-cookie", set_cookie)
    app.router.add_get("/ws", websocket)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app
