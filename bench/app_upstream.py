"""The app upstream for what nginx cannot do itself: a WebSocket echo and an upload sink.

``GET /ws`` echoes every text or binary message back; ``POST /upload`` reads the whole body
before answering ``{"bytes": N}``, so an upload is timed to its last byte and its size checked.
Run as a subprocess (``python -m bench.app_upstream --port N``) so its CPU is its own, behind
both the gateway and the nginx reference proxy.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import WSMsgType, web

READ_CHUNK = 1 << 20


async def echo(request: web.Request) -> web.WebSocketResponse:
    """Send every message back as it came, until the client closes."""
    socket = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
    await socket.prepare(request)
    async for message in socket:
        if message.type == WSMsgType.TEXT:
            await socket.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await socket.send_bytes(message.data)
    return socket


async def upload(request: web.Request) -> web.Response:
    """Read and count the whole request body, then answer with the count."""
    received = 0
    while chunk := await request.content.read(READ_CHUNK):
        received += len(chunk)
    return web.json_response({"bytes": received})


def create_app() -> web.Application:
    """The upstream app: GET /ws echoes WebSocket messages, POST /upload counts a body."""
    app = web.Application(client_max_size=0)
    app.router.add_get("/ws", echo)
    app.router.add_post("/upload", upload)
    return app


def main() -> None:
    """Serve `create_app()` on 127.0.0.1:--port until killed (on uvloop when installed)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop  # noqa: PLC0415 - optional, as in the gateway's `speed` extra
    except ImportError:
        loop_factory = asyncio.new_event_loop
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(args.port))


async def _serve(port: int) -> None:
    runner = web.AppRunner(create_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    main()
