"""The aiohttp applications: the gateway (proxy + /oauth2/*) and the metrics listener.

Start-up opens the shared clients and loads the IdP metadata in the background (`/ready` is 503
until discovery and JWKS are loaded and the session store answers); clean-up closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.auth.guard import guard_middleware
from gateway.auth.routes import routes as auth_routes
from gateway.config import Settings
from gateway.context import GatewayContext
from gateway.keys import CONTEXT
from gateway.observability.metrics import Metrics
from gateway.observability.requests import request_middleware

MAX_FIELD_SIZE = 65536


def create_app(settings: Settings, metrics: Metrics | None = None) -> web.Application:
    """The gateway application for these settings."""
    app = web.Application(middlewares=[request_middleware, guard_middleware],
                          handler_args={"max_field_size": MAX_FIELD_SIZE,
                                        "max_line_size": MAX_FIELD_SIZE})
    app[CONTEXT] = GatewayContext.create(settings, metrics or Metrics())
    app.router.add_get("/ping", ping)
    app.router.add_get("/ready", ready)
    app.add_routes(auth_routes)
    app.router.add_route("*", "/{tail:.*}", proxy_handler)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CONTEXT]
    await ctx.proxy.start()
    ctx.metrics.ready.set(0)
    loader = asyncio.create_task(ctx.provider.load_until_ready())

    def loaded(task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            ctx.metrics.ready.set(1)  # /ready refines it (session store, shutdown) when probed

    loader.add_done_callback(loaded)
    yield
    ctx.metrics.ready.set(0)
    loader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loader
    await ctx.close()


async def proxy_handler(request: web.Request) -> web.StreamResponse:
    return await request.app[CONTEXT].proxy.handle(request)


async def ping(_request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.Response(text="ok")


async def ready(request: web.Request) -> web.Response:
    """Readiness: IdP metadata and keys loaded, session store answering, not shutting down."""
    ctx = request.app[CONTEXT]
    checks = {"idp": ctx.provider.ready, "session_store": await ctx.store.ping(),
              "accepting": not ctx.shutting_down}
    ok = all(checks.values())
    ctx.metrics.ready.set(1 if ok else 0)
    return web.json_response({"ready": ok, "checks": checks}, status=200 if ok else 503)


def create_metrics_app(metrics: Metrics) -> web.Application:
    """The /metrics listener."""
    async def serve_metrics(_request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    return app
