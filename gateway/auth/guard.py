"""The guard: for a request target, decide who may pass. It decides, and only decides.

The route of the method and path (auth/policy.py: the first matching rule, or the defaults)
says what is needed. A public route passes (`public`) and a deny rule refuses everyone
(`forbidden`) without looking for a principal; otherwise the guard asks for the request's
principal (auth/principal.py: a bearer token, else the session) and `judge`s it:
- a principal meeting every requirement passes: `allowed` (a session) or `bearer`;
- with `unauthenticated = "allow"`, anyone else passes without identity: `anonymous`;
- a principal that misses a requirement is `forbidden`;
- nobody is `redirected` to sign in when that can work (mode auto: a browser navigation;
  mode redirect: any GET or HEAD), else `unauthenticated` (401).
Every decision counts in `cognito_gateway_auth_decisions_total{decision,rule}` and names its
rule on the request (`RULE`, for the access log). Acting on it (proxying, starting a sign-in,
answering 401/403) is the caller's job; `refusal` is the error that answers a refused one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gateway.auth.policy import RULE, AccessPolicy, Route, claim_text
from gateway.errors import AccessDenied, AuthError, InvalidBearerToken, SignInRequired
from gateway.observability.tracing import SPAN

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiohttp import web

    from gateway.auth.principal import Principal, Principals
    from gateway.observability.metrics import Metrics
    from gateway.target import RequestTarget

Outcome = Literal["public", "allowed", "bearer", "anonymous", "forbidden", "unauthenticated",
                  "redirected"]
REDIRECTABLE = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Decision:
    """What the guard decided for one request: the outcome, the rule it followed, and who asked."""

    outcome: Outcome
    route: Route
    principal: Principal | None = None

    @property
    def passes(self) -> bool:
        return self.outcome in {"public", "allowed", "bearer", "anonymous"}

    @property
    def label(self) -> str:
        """The `decision` label of the metric."""
        return "unauthorized" if self.outcome == "unauthenticated" else self.outcome


def unmet(route: Route, principal: Principal) -> list[str]:
    """The requirements of `route` that `principal` misses: groups, scopes, principal, claims."""
    missing = []
    if route.groups and route.groups.isdisjoint(principal.identity.groups):
        missing.append("groups")
    if route.scopes and not route.scopes <= (principal.scopes or frozenset()):
        missing.append("scopes")
    if route.principal not in {"any", principal.kind}:
        missing.append("principal")
    if route.claims and not all(_claim_met(principal.identity.claims.get(name), accepted)
                                for name, accepted in route.claims):
        missing.append("claims")
    return missing


def _claim_met(value: object, accepted: frozenset[str]) -> bool:
    if isinstance(value, list):
        return any(claim_text(item) in accepted for item in value if not isinstance(item, dict))
    return value is not None and not isinstance(value, dict) and claim_text(value) in accepted


def judge(route: Route, principal: Principal | None, *, navigation: bool,
          redirectable: bool) -> Decision:
    """The decision for a principal (or nobody) on a route. `navigation`: a browser page
    load; `redirectable`: a redirect to sign in can work (GET or HEAD)."""
    if route.action == "public":
        return Decision("public", route)
    if route.action == "deny":
        return Decision("forbidden", route, principal)
    if principal is not None and not unmet(route, principal):
        return Decision("allowed" if principal.kind == "session" else "bearer", route, principal)
    if route.unauthenticated == "allow":
        return Decision("anonymous", route)
    if principal is not None:
        return Decision("forbidden", route, principal)
    mode = route.unauthenticated
    if (mode == "auto" and navigation) or (mode == "redirect" and redirectable):
        return Decision("redirected", route)
    return Decision("unauthenticated", route)


def refusal(decision: Decision, *, return_to: str, page: bool,
            redirect: bool = False) -> AuthError:
    """The error answering a decision that does not pass (a `redirected` one included, for
    callers that answer it with a 401 or the forward-auth redirect)."""
    route = decision.route
    if decision.outcome == "forbidden":
        who = decision.principal
        message = ("this path is closed to everyone" if route.action == "deny"
                   else "the signed-in principal does not meet the rule's requirements")
        return AccessDenied(
            message, rule=route.rule, required=route.required(), page=page,
            return_to=return_to, username=who.identity.username if who else None,
            groups=who.identity.groups if who else (), signed_in_with=who.kind if who else None)
    return SignInRequired("sign-in required", return_to=return_to,
                          identity_provider=route.identity_provider,
                          redirect=redirect and decision.outcome == "redirected")


class Guard:
    """Decides each request's outcome from the access policy and the request's principal.

    Every decision is counted in `cognito_gateway_auth_decisions_total`.
    """

    def __init__(self, policy: AccessPolicy, principals: Principals, metrics: Metrics) -> None:
        self._policy = policy
        self._principals = principals
        self._decisions = metrics.auth_decisions

    def use_policy(self, policy: AccessPolicy) -> None:
        """Decide with `policy` from now on (a reload changed the rules)."""
        self._policy = policy

    def route(self, method: str, target: RequestTarget | None) -> Route:
        return self._policy.route(method, target)

    def settled(self, method: str, target: RequestTarget, headers: Mapping[str, str], *,
                navigation: bool) -> Decision | None:
        """`decide`'s decision when it passes and takes no I/O: a public route, or a principal
        known without waiting (Principals.settled) that meets its route's requirements. It is
        counted as `decide` counts it. None in every other case, uncounted: the caller then
        asks `decide`, which decides in full."""
        route = self._policy.route(method, target)
        principal = None
        if route.action == "authenticate":
            principal = self._principals.settled(headers)
            if principal is None:
                return None
        decision = judge(route, principal, navigation=navigation,
                         redirectable=method in REDIRECTABLE)
        if not decision.passes:
            return None
        self._decisions.labels(decision.label, route.rule).inc()  # decision, rule
        return decision

    async def decide(self, request: web.Request, target: RequestTarget | None, *,
                     navigation: bool, method: str | None = None,
                     may_redirect: bool = True) -> Decision:
        """Decide on `target` (None: unknown, nothing is public) and `method` (default: the
        request's) for this request. Without `may_redirect` nobody is `redirected`."""
        method = (method or request.method).upper()
        route = self._policy.route(method, target)
        request[RULE] = route.rule
        principal = None
        if route.action == "authenticate":
            try:
                principal = await self._principals.of(request)
            except InvalidBearerToken:
                self._decisions.labels(decision="unauthorized", rule=route.rule).inc()
                raise
        decision = judge(route, principal, navigation=navigation and may_redirect,
                         redirectable=may_redirect and method in REDIRECTABLE)
        self._decisions.labels(decision.label, route.rule).inc()  # decision, rule
        span = request[SPAN]
        span.set_decision(decision.label, route.rule)
        if decision.principal is not None:
            span.set_principal_sub(decision.principal.identity.sub)
        return decision
