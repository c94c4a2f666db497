"""Where a request goes: a gateway endpoint, or the guard and then the app.

The router picks by the normalised path (gateway/routing.py); a target with a second reading
(`;params`) must route and be governed the same way in both, or it is refused. For the app, the
guard decides (auth/guard.py), and the decision is carried out here: a principal that passes is
put on the request and the request is proxied (an `anonymous` or public one without); a
request to be sent to sign in is, at the deciding rule's identity provider; a denial raises
AccessDenied, the absence of a principal SignInRequired.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.auth.classify import is_navigation
from gateway.auth.guard import Guard, refusal
from gateway.auth.principal import PRINCIPAL
from gateway.errors import BadTarget, RequestRefused
from gateway.observability.tracing import SPAN
from gateway.target import TARGET, RequestTarget

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.auth.signin import SignIn
    from gateway.routing import Endpoint, Router
    from gateway.upstream.proxy import UpstreamProxy


class Dispatcher:
    """Routes each request to an endpoint, or through the guard to the upstream.

    Unknown /oauth2/* paths get 404 and a wrong method 405; anything else is decided by the
    guard, then signed in, refused, or proxied with its principal.
    """

    def __init__(self, router: Router, guard: Guard, sign_in: SignIn,
                 proxy: UpstreamProxy) -> None:
        self._router = router
        self._guard = guard
        self._sign_in = sign_in
        self._proxy = proxy

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """The handler of every request (aiohttp's one route)."""
        target = request[TARGET]
        endpoint = self._router.endpoint(target)
        for reading in target.readings[1:]:
            if not self._same_route(request.method, target, reading, endpoint):
                raise BadTarget("ambiguous_parameters", "path parameters change the route")
        span = request[SPAN]
        if endpoint is not None:
            span.set_route(endpoint.route)
            return await endpoint.handler(request.method)(request)
        span.set_route("proxy")
        navigation = is_navigation(request)
        decision = await self._guard.decide(request, target, navigation=navigation)
        if decision.outcome == "redirected":
            return self._sign_in.redirect(
                target.forwarded, identity_provider=decision.route.identity_provider)
        if not decision.passes:
            raise refusal(decision, return_to=target.forwarded, page=navigation)
        if decision.principal is not None:
            request[PRINCIPAL] = decision.principal
        return await self._proxy.handle(request)

    def _same_route(self, method: str, target: RequestTarget, reading: RequestTarget,
                    endpoint: Endpoint | None) -> bool:
        try:
            other = self._router.endpoint(reading)
        except RequestRefused:
            return False
        return other is endpoint and (
            self._guard.route(method, reading) == self._guard.route(method, target))
