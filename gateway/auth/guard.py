"""The per-request decision: public, bearer, session, or sign-in.

For every path outside the gateway's own endpoints, in this order:
1. `auth.public_paths`: proxied without identity (decision "public").
2. `Authorization: Bearer <access token>` (when accepted): verified, or 401 invalid_token.
3. The session cookie: loaded, refreshed when its tokens are due, saved before the response
   starts. A rejected refresh ends the session.
4. Nobody: a browser navigation is redirected to the IdP's authorize endpoint; anything else
   gets 401 JSON with `WWW-Authenticate: Bearer`.
A signed-in user outside `auth.allowed_groups` gets 403.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from aiohttp import web

from gateway.auth.headers import IdentityHeaders
from gateway.auth.pending import PendingSignIn, PendingSignIns
from gateway.auth.redirects import safe_return_path
from gateway.cognito.pkce import code_challenge, random_token
from gateway.cognito.provider import IdentityProvider
from gateway.config import Settings
from gateway.errors import Forbidden, TokenValidationError, Unauthenticated
from gateway.identity import Identity
from gateway.keys import (
    BEFORE_PREPARE,
    SOCKET_DEADLINE,
    TARGET,
    UPSTREAM_IDENTITY,
    BeforePrepare,
)
from gateway.observability.metrics import Metrics
from gateway.sessions.model import Session
from gateway.sessions.refresh import RefreshCoordinator, RefreshRejected
from gateway.sessions.store import SessionStore
from gateway.target import RequestTarget
from gateway.websocket import SocketDeadline, cannot_renew

BEARER_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Principal:
    identity: Identity
    expires_at: float
    access_token: str | None
    session: Session | None


class Guard:
    def __init__(self, settings: Settings, *, provider: IdentityProvider, store: SessionStore,
                 refresher: RefreshCoordinator, headers: IdentityHeaders,
                 pending: PendingSignIns, metrics: Metrics) -> None:
        self._settings = settings
        self._provider = provider
        self._store = store
        self._refresher = refresher
        self._headers = headers
        self._pending = pending
        self._metrics = metrics
        self._bearer_cache: OrderedDict[str, Principal] = OrderedDict()
        # Only the cookie store needs periodic re-checks: Redis sees sign-outs at once.
        self._revalidate_after = (settings.session.revalidate_seconds
                                  if settings.session.store == "cookie" else 0)

    def identity_headers(self, request: web.Request) -> dict[str, str]:
        """The identity headers `check` decided for this request."""
        headers: dict[str, str] = request.get(UPSTREAM_IDENTITY, {})
        return headers

    def count_redirect(self) -> None:
        self._metrics.auth_decisions.labels(decision="redirected", rule="default").inc()

    def is_public(self, target: RequestTarget) -> bool:
        """True when `auth.public_paths` matches the decoded normalised path."""
        return any(fnmatchcase(target.decoded, p) for p in self._settings.auth.public_paths)

    def is_api(self, target: RequestTarget) -> bool:
        """True when `auth.api_paths` matches the decoded normalised path."""
        return any(fnmatchcase(target.decoded, p) for p in self._settings.auth.api_paths)

    def path_class(self, target: RequestTarget) -> tuple[bool, bool]:
        """What the path alone decides (public, api): equal for every reading of a target."""
        return self.is_public(target), self.is_api(target)

    def is_navigation(self, request: web.Request) -> bool:
        """A browser page load, which may be redirected to sign-in (XHR/fetch get 401)."""
        target = request.get(TARGET)
        if request.method not in {"GET", "HEAD"} or (target is not None and self.is_api(target)):
            return False
        if request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
            return False
        mode = request.headers.get("Sec-Fetch-Mode")
        if mode is not None and mode != "navigate":
            return False
        return "text/html" in request.headers.get("Accept", "")

    async def check(self, request: web.Request, target: RequestTarget | None) -> None:
        """Let the request through (setting its identity headers) or raise AuthError.

        `target` is the path decided on; None when it is unknown (forward-auth without a
        trusted original URI): then no path is public.
        """
        if target is not None and self.is_public(target):
            self._metrics.auth_decisions.labels(decision="public", rule="default").inc()
            return
        principal = await self.principal(request)
        if principal is None:
            self._metrics.auth_decisions.labels(decision="unauthorized", rule="default").inc()
            raise Unauthenticated("sign-in required")
        allowed = self._settings.auth.allowed_groups
        if allowed and not set(allowed) & set(principal.identity.groups):
            self._metrics.auth_decisions.labels(decision="forbidden", rule="default").inc()
            raise Forbidden("not a member of an allowed group")
        decision = "allowed" if principal.session is not None else "bearer"
        self._metrics.auth_decisions.labels(decision=decision, rule="default").inc()
        request[UPSTREAM_IDENTITY] = self._headers.build(
            principal.identity, access_token=principal.access_token, exp=principal.expires_at,
            session_id=principal.session.sid if principal.session else None)
        if principal.session is not None:
            request[SOCKET_DEADLINE] = SocketDeadline(
                principal.session.tokens_expire_at, self._socket_renewer(principal.session),
                principal.session.sid)
        else:
            request[SOCKET_DEADLINE] = SocketDeadline(principal.expires_at, cannot_renew)

    async def principal(self, request: web.Request) -> Principal | None:
        """Who makes this request (bearer token or session), or None."""
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if self._settings.auth.accept_bearer_tokens and scheme.lower() == "bearer" and token:
            return await self._bearer(token.strip())
        session = await self.session(request)
        if session is None:
            return None
        return Principal(session.identity, session.tokens_expire_at, session.access_token, session)

    async def session(self, request: web.Request) -> Session | None:
        """The request's session, refreshed if due; cookies for it are queued on the request."""
        session = await self._store.load(request)
        if session is None:
            return None
        now = time.time()
        if not session.refresh_due(now, self._settings.session.refresh_before_expiry_seconds,
                                   self._revalidate_after):
            return session if session.tokens_valid(now) else None
        try:
            fresh = await self._refresher.refresh(session)
        except RefreshRejected:
            self._on_prepare(request, lambda resp: self._store.end(request, resp, session))
            return None
        if fresh is not session:
            self._on_prepare(request, lambda resp: self._store.save(request, resp, fresh))
        return fresh

    def _on_prepare(self, request: web.Request, hook: BeforePrepare) -> None:
        request.setdefault(BEFORE_PREPARE, []).append(hook)

    async def _bearer(self, token: str) -> Principal:
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._bearer_cache.get(key)
        if cached is not None and cached.expires_at > time.time():
            self._bearer_cache.move_to_end(key)
            return cached
        try:
            claims = await self._provider.verifier.verify_access_token(token)
        except TokenValidationError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc.reason}") from exc
        principal = Principal(Identity.from_claims(claims), float(claims["exp"]), token, None)
        self._bearer_cache[key] = principal
        if len(self._bearer_cache) > BEARER_CACHE_SIZE:
            self._bearer_cache.popitem(last=False)
        return principal

    def _socket_renewer(self, session: Session) -> Callable[[], Awaitable[float | None]]:
        async def renew() -> float | None:
            if session.refresh_token is None or session.expired(time.time()):
                return None
            try:
                fresh = await self._refresher.refresh(session)
            except RefreshRejected:
                return None
            return fresh.tokens_expire_at if fresh is not session else None

        return renew

    def start_sign_in(self, response: web.StreamResponse, return_to: str) -> str:
        """Remember a new sign-in on the response; return the IdP URL to send the browser to.

        `return_to` passes the same-origin check here, whoever chose it.
        """
        verifier = random_token(48) if self._settings.cognito.pkce else None
        pending = PendingSignIn(
            state=random_token(), nonce=random_token(), code_verifier=verifier,
            return_to=safe_return_path(return_to, self._settings.server.public_url))
        self._pending.remember(response, pending)
        return self._provider.authorize_url(
            state=pending.state, nonce=pending.nonce,
            code_challenge=code_challenge(verifier) if verifier else None)
