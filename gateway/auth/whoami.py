"""Who is signed in, for programs: /oauth2/userinfo, and forward-auth for other proxies.

`GET /oauth2/userinfo` answers the request's principal as JSON (401 without one).

`/oauth2/auth` is forward-auth for nginx `auth_request`, Traefik `forwardAuth` and Envoy
`ext_authz`, and answers every method (Envoy keeps the client's). The guard decides on the
original request with the same rules as the proxy: 202 with the identity headers when it
passes, 401 without a principal, 403 when denied, 400 for a target servers read differently.
The original URI comes from `X-Forwarded-Uri` or `X-Original-URI`, the original method from
`X-Forwarded-Method` or `X-Original-Method`, believed only from `server.trusted_proxies`; two
of them that disagree are refused (400). The URI is normalised like any request target, and
without it no path counts as public; without a method header the request's own method counts.

Query switches (only those before an `envoy_path` parameter count: what follows is the
client's own path, appended by Envoy):
- `status=200`: answer 200 instead of 202 when the request passes (Envoy allows only 200);
- `redirect=1`: where the proxy would send a browser to sign in, answer that redirect (302)
  instead of the 401, for proxies that hand the answer to the client (Envoy, Traefik, the
  nginx snippet's second call).
A 401 names the way to sign in (`sign_in_url`) for the original target either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.auth.classify import is_navigation
from gateway.auth.guard import Guard, refusal
from gateway.errors import BadTarget, Unauthenticated
from gateway.pages import json_response
from gateway.routing import Endpoint, Handler
from gateway.target import RequestTarget, parse_target

if TYPE_CHECKING:
    from gateway.auth.principal import Principals
    from gateway.upstream.forwarding import TrustedProxies

ORIGINAL_URI_HEADERS = ("X-Forwarded-Uri", "X-Original-URI")
ORIGINAL_METHOD_HEADERS = ("X-Forwarded-Method", "X-Original-Method")
SWITCHES_END = "envoy_path"


class EveryMethod(Mapping[str, Handler]):
    """An endpoint's handlers when one handler answers every method."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    def __getitem__(self, method: str) -> Handler:
        return self._handler

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass(frozen=True)
class Switches:
    """The query switches of a forward-auth request (see the module docstring)."""

    status: int = 202
    redirect: bool = False

    @classmethod
    def of(cls, request: web.Request) -> Switches:
        status, redirect = 202, False
        for name, value in request.query.items():
            if name == SWITCHES_END:
                break
            if name == "status":
                status = 200 if value == "200" else 202
            elif name == "redirect":
                redirect = value == "1"
        return cls(status, redirect)


class Whoami:
    """/oauth2/userinfo (who is signed in) and /oauth2/auth (forward-auth for another proxy)."""

    def __init__(self, guard: Guard, principals: Principals, trusted: TrustedProxies) -> None:
        self._guard = guard
        self._principals = principals
        self._trusted = trusted

    def endpoints(self) -> dict[str, Endpoint]:
        return {"/oauth2/userinfo": Endpoint({"GET": self.userinfo}),
                "/oauth2/auth": Endpoint(EveryMethod(self.forward_auth))}

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
        """202 (or 200) with identity headers, 401 without a principal (or the redirect to
        sign in), 403 when denied."""
        switches = Switches.of(request)
        trusted = request.remote in self._trusted
        original = self._original_target(request) if trusted else None
        method = self._original_method(request) if trusted else request.method
        if original is not None and len(
                {self._guard.route(method, r) for r in original.readings}) > 1:
            raise BadTarget("ambiguous_parameters", "path parameters change the decision")
        navigation = method.upper() in {"GET", "HEAD"} and is_navigation(
            request if request.method in {"GET", "HEAD"} else request.clone(method="GET"))
        decision = await self._guard.decide(request, original, method=method,
                                            navigation=navigation,
                                            may_redirect=switches.redirect)
        if not decision.passes:
            raise refusal(decision, return_to=original.forwarded if original else "/",
                          page=navigation, redirect=switches.redirect)
        headers = dict(decision.principal.headers) if decision.principal else {}
        return web.Response(status=switches.status, headers=headers)

    @staticmethod
    def _original_target(request: web.Request) -> RequestTarget | None:
        """The target of the request being authorised, from a trusted proxy's headers."""
        found = {parse_target(request.headers[name]) for name in ORIGINAL_URI_HEADERS
                 if name in request.headers}
        if len(found) > 1:
            raise BadTarget("conflicting_original_uri",
                            "X-Forwarded-Uri and X-Original-URI name different targets")
        return found.pop() if found else None

    @staticmethod
    def _original_method(request: web.Request) -> str:
        """The method of the request being authorised, from a trusted proxy's headers."""
        found = {request.headers[name].strip() for name in ORIGINAL_METHOD_HEADERS
                 if name in request.headers}
        if len(found) > 1:
            raise BadTarget("conflicting_original_method",
                            "X-Forwarded-Method and X-Original-Method differ")
        return found.pop() if found else request.method
