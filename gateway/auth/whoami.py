"""Who is signed in, for programs: /oauth2/userinfo, and forward-auth for other proxies.

`GET /oauth2/userinfo` answers the request's principal as JSON (401 without one).
`GET /oauth2/auth` is forward-auth for nginx `auth_request`, Traefik `forwardAuth` and Envoy
`ext_authz`: the guard decides on the original request, 202 with the identity headers when it
passes, 401 without a principal, 403 when it is denied. The original method and URI come from
`X-Forwarded-Method`/`X-Forwarded-Uri` (or `X-Original-Method`/`X-Original-URI`) and are
believed only from `server.trusted_proxies`; the URI is normalised like any request target, and
without it no path counts as public.
"""

from __future__ import annotations

from aiohttp import web

from gateway.auth.guard import Guard
from gateway.auth.principal import Principals
from gateway.errors import BadTarget, Forbidden, Unauthenticated
from gateway.pages import json_response
from gateway.routing import Endpoint
from gateway.target import RequestTarget, parse_target
from gateway.upstream.forwarding import TrustedProxies

ORIGINAL_URI_HEADERS = ("X-Forwarded-Uri", "X-Original-URI")


class Whoami:
    def __init__(self, guard: Guard, principals: Principals, trusted: TrustedProxies) -> None:
        self._guard = guard
        self._principals = principals
        self._trusted = trusted

    def endpoints(self) -> dict[str, Endpoint]:
        return {"/oauth2/userinfo": Endpoint({"GET": self.userinfo}),
                "/oauth2/auth": Endpoint({"GET": self.forward_auth})}

    async def userinfo(self, request: web.Request) -> web.StreamResponse:
        """The principal's identity as JSON; 401 without a session or bearer token."""
        principal = await self._principals.of(request)
        if principal is None:
            raise Unauthenticated("sign-in required")
        ident = principal.identity
        return json_response(200, {
            "sub": ident.sub, "username": ident.username, "email": ident.email,
            "email_verified": ident.email_verified, "groups": list(ident.groups),
            "expires_at": int(principal.expires_at)})

    async def forward_auth(self, request: web.Request) -> web.StreamResponse:
        """202 with identity headers, 401 without a principal, 403 when denied."""
        original = self._original_target(request)
        if original is not None and len(
                {self._guard.route(request.method, r) for r in original.readings}) > 1:
            raise BadTarget("ambiguous_parameters", "path parameters change the decision")
        decision = await self._guard.decide(request, original, may_redirect=False)
        if decision.outcome == "forbidden":
            raise Forbidden("not a member of an allowed group")
        if not decision.passes:
            raise Unauthenticated("sign-in required")
        headers = dict(decision.principal.headers) if decision.principal else {}
        return web.Response(status=202, headers=headers)

    def _original_target(self, request: web.Request) -> RequestTarget | None:
        """The target of the request being authorised, from a trusted proxy's header."""
        if request.remote not in self._trusted:
            return None
        for name in ORIGINAL_URI_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                return parse_target(value)
        return None
