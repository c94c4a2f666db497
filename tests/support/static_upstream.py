"""An upstream that serves files the most lenient way and records what reached it.

Every request is recorded with the path it would serve (see tests.support.lenient); files are
served for any method, and a WebSocket upgrade is accepted on any path, so that whatever the
gateway lets through is visible in `received`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from tests.support.lenient import lenient_resolve

FILES = {
    "/secret.txt": "TOP SECRET",
    "/public/index.html": "public page",
    "/admin/panel": "admin panel",
}


@dataclass(frozen=True)
class Received:
    method: str
    raw_path: str
    served: str
    websocket: bool


@dataclass
class StaticUpstream:
    received: list[Received] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        served = lenient_resolve(request.raw_path)
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        self.received.append(Received(request.method, request.raw_path, served, upgrade))
        if upgrade:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.close()
            return ws
        if served in FILES:
            return web.Response(text=FILES[served])
        return web.Response(status=404, text="no such file")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app
