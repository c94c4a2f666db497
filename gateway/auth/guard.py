"""The guard: for a request target, decide who may pass. It decides, and only decides.

The route of the path (auth/policy.py) says whether it is public; otherwise the guard asks for
the request's principal (auth/principal.py: a bearer token, else the session) and judges it
against the route: nobody is `unauthenticated` (`redirected` when a browser navigation on a
non-API path may be sent to sign in), a principal outside the route's groups is `forbidden`,
anyone else is `allowed` (a session) or `bearer`. Every decision counts in
`cognito_gateway_auth_decisions_total{decision,rule}`. Acting on it (proxying, starting a
sign-in, answering 401/403) is the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from gateway.auth.policy import AccessPolicy, Route
from gateway.auth.principal import Principal, Principals
from gateway.errors import InvalidBearerToken
from gateway.observability.metrics import Metrics
from gateway.observability.tracing import SPAN
from gateway.target import RequestTarget

Outcome = Literal["public", "allowed", "bearer", "forbidden", "unauthenticated", "redirected"]


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    route: Route
    principal: Principal | None = None

    @property
    def passes(self) -> bool:
        return self.outcome in {"public", "allowed", "bearer"}


def judge(route: Route, principal: Principal | None, *, may_redirect: bool) -> Decision:
    """The decision for a principal (or nobody) on a route that is not public."""
    if principal is None:
        redirect = may_redirect and not route.api
        return Decision("redirected" if redirect else "unauthenticated", route)
    if route.groups and not route.groups & set(principal.identity.groups):
        return Decision("forbidden", route, principal)
    return Decision("allowed" if principal.kind == "session" else "bearer", route, principal)


class Guard:
    def __init__(self, policy: AccessPolicy, principals: Principals, metrics: Metrics) -> None:
        self._policy = policy
        self._principals = principals
        self._decisions = metrics.auth_decisions

    def route(self, method: str, target: RequestTarget | None) -> Route:
        return self._policy.route(method, target)

    async def decide(self, request: web.Request, target: RequestTarget | None, *,
                     may_redirect: bool) -> Decision:
        """Decide on `target` (None: unknown, nothing is public) for this request."""
        route = self._policy.route(request.method, target)
        if route.public:
            decision = Decision("public", route)
        else:
            try:
                principal = await self._principals.of(request)
            except InvalidBearerToken:
                self._decisions.labels(decision="unauthorized", rule=route.rule).inc()
                raise
            decision = judge(route, principal, may_redirect=may_redirect)
        label = "unauthorized" if decision.outcome == "unauthenticated" else decision.outcome
        self._decisions.labels(decision=label, rule=route.rule).inc()
        span = request[SPAN]
        span.set_decision(label, route.rule)
        if decision.principal is not None:
            span.set_principal_sub(decision.principal.identity.sub)
        return decision
