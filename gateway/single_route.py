"""The app's one route, resolved once: what aiohttp's server calls for every request.

The gateway's app has a single route (`*` on `/{tail:.*}`: dispatch.py decides everything from
the normalised target) behind its middlewares. aiohttp's `Application._handle` nevertheless
resolves that route, builds a match info, looks the middleware chain up and asks the event
loop for its debug flag on every request: about 7 % of the gateway's CPU per proxied request
(profiled, issue #16). `single_route_handler` does that work once, when the listener starts,
and returns a handler that does the rest of what `_handle` does: put the (shared, frozen)
match info on the request, so that `on_response_prepare` still fires (the session cookie is
written there), answer `Expect` through the route's expect handler, and call the chain.

An app of any other shape (more routes, sub-apps, old-style middlewares) gets None: the
listener then serves it through aiohttp's own `_handle`, unchanged. The shared match info
carries no `tail`: the gateway reads a request's path from its `RequestTarget`, never from
`match_info`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import DynamicResource, UrlMappingMatchInfo

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def single_route_handler(app: web.Application) -> Handler | None:
    """The handler serving every request of a frozen single-route `app`, or None when `app`
    has another shape (see the module docstring)."""
    resources = list(app.router.resources())
    if not app.frozen or app._subapps or len(resources) != 1:
        return None
    resource = resources[0]
    routes = list(resource)
    if not isinstance(resource, DynamicResource) or len(routes) != 1 \
            or routes[0].method != hdrs.METH_ANY:
        return None
    route = routes[0]
    chain: Handler = route.handler
    for middleware in reversed(app.middlewares):
        if getattr(middleware, "__middleware_version__", None) != 1:
            return None
        chain = partial(middleware, handler=chain)
    match_info = UrlMappingMatchInfo({}, route)
    match_info.add_app(app)
    match_info.freeze()
    expect = match_info.expect_handler

    async def handle(request: web.Request) -> web.StreamResponse:
        request._match_info = match_info  # as Application._handle does
        if request.headers.get(hdrs.EXPECT):
            answer = await expect(request)
            await request.writer.drain()
            if answer is not None:
                return answer
        return await chain(request)

    return handle
