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

from gateway.auth.routes import ENDPOINTS, PREFIXED
from gateway.config import Settings
from gateway.context import GatewayContext
from gateway.errors import BadTarget, RequestRefused, Unauthenticated
from gateway.keys import CONTEXT, TARGET, run_before_prepare
from gateway.observability.metrics import Metrics
from gateway.observability.requests import request_middleware
from gateway.routing import Endpoint, Router
from gateway.target import RequestTarget


def create_app(settings: Settings, metrics: Metrics | None = None) -> web.Application:
    """The gateway application for these settings."""
    app = web.Application(middlewares=[request_middleware])
    ctx = app[CONTEXT] = GatewayContext.create(settings, metrics or Metrics())
    router = Router(own_endpoints(), PREFIXED)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        """Every request: a gateway endpoint by its normalised path, else guard and proxy."""
        target = request[TARGET]
        endpoint = router.endpoint(target)
        for reading in target.readings[1:]:
            if not _same_route(router, ctx, target, reading, endpoint):
                raise BadTarget("ambiguous_parameters", "path parameters change the route")
        if endpoint is not None:
            return await endpoint.handler(request.method)(request)
        return await _guarded_proxy(request, ctx, target)

    app.router.add_route("*", "/{tail:.*}", dispatch)
    app.cleanup_ctx.append(_lifecycle)
    return app


def own_endpoints() -> dict[str, Endpoint]:
    """The gateway's own endpoints by exact path: they are answered here, never proxied."""
    return {"/ping": Endpoint({"GET": ping}), "/ready": Endpoint({"GET": ready}), **ENDPOINTS}


def _same_route(router: Router, ctx: GatewayContext, target: RequestTarget,
                reading: RequestTarget, endpoint: Endpoint | None) -> bool:
    """True when another reading of the target is routed and classified the same way."""
    try:
        other = router.endpoint(reading)
    except RequestRefused:
        return False
    return other is endpoint and ctx.guard.path_class(reading) == ctx.guard.path_class(target)


async def _guarded_proxy(request: web.Request, ctx: GatewayContext,
                         target: RequestTarget) -> web.StreamResponse:
    guard = ctx.guard
    try:
        await guard.check(request, target)
    except Unauthenticated:
        if not guard.is_navigation(request):
            raise
        response = web.Response(status=302)
        response.headers["Location"] = guard.start_sign_in(response, target.forwarded)
        await run_before_prepare(request, response)
        guard.count_redirect()
        return response
    return await ctx.proxy.handle(request)


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
