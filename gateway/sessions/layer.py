"""The session layer: a request's session, loaded once, refreshed when due, and its cookie
written in one place, as the response starts.

`SessionLayer.session(request)` loads the session the request's cookie names (once per
request), refreshes it when its tokens are due or, with the cookie store, when the IdP has not
confirmed it for `session.revalidate_seconds`, and remembers on the request what the response's
cookie must say. `begin` (sign-in) and `end` (sign-out) change that too. `write_cookies` is
registered on aiohttp's `on_response_prepare`, which fires for every response the request gets
(a proxied stream, a WebSocket handshake, an error page, a redirect): it is the one place a
session cookie is written, so no handler can forget to. It adds `Set-Cookie` headers itself:
aiohttp serialises `response.cookies` before that signal.

A request whose cookie can no longer be used (unreadable, lifetime over, signed out, the
refresh rejected) has its cookie deleted and counts in
`cognito_gateway_reauthentications_total{reason}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import GatewayError, RefreshRejected
from gateway.observability.metrics import Metrics
from gateway.sessions.model import Absent, Session
from gateway.sessions.refresh import RefreshCoordinator
from gateway.sessions.store import SessionStore

Renewal = Callable[[], Awaitable[float | None]]


@dataclass
class SessionState:
    """What a request's session is, and what its response's cookie must say."""

    carried: Session | None
    current: Session | None
    own_cookies: dict[str, str] = field(default_factory=dict)
    clear: bool = False


SESSION_STATE = web.RequestKey("session_state", SessionState)


class SessionLayer:
    def __init__(self, store: SessionStore, refresher: RefreshCoordinator, metrics: Metrics, *,
                 refresh_before: float, revalidate_after: float,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._store = store
        self._refresher = refresher
        self._metrics = metrics
        self._refresh_before = refresh_before
        self._revalidate_after = revalidate_after
        self._clock = clock

    async def session(self, request: web.Request) -> Session | None:
        """The request's live session, refreshed when due; None when there is none."""
        state = await self._state(request)
        session = state.current
        if session is None:
            return None
        now = self._clock.time()
        if not session.refresh_due(now, self._refresh_before, self._revalidate_after):
            return session if session.tokens_valid(now) else None
        by_expiry = session.refresh_due(now, self._refresh_before)
        try:
            fresh = await self._refresher.refresh(session)
        except RefreshRejected:
            await self._drop(state, session,
                             "refresh_rejected" if by_expiry else "revalidation_failed")
            return None
        state.current = fresh
        return fresh

    async def begin(self, request: web.Request, session: Session) -> None:
        """Start `session` (a sign-in): it replaces the request's session, if any."""
        state = await self._state(request)
        if state.current is not None:
            await self._store.forget(state.current)
        await self._store.persist(session)
        state.current = session

    async def end(self, request: web.Request) -> Session | None:
        """End the request's session (a sign-out); return it, or None when there was none."""
        state = await self._state(request)
        session, state.current, state.clear = state.current, None, True
        if session is not None:
            await self._store.forget(session)
        return session

    def renewal(self, session: Session) -> Renewal:
        """How a long-lived connection extends `session`: the new tokens' expiry, or None."""

        async def renew() -> float | None:
            if session.refresh_token is None or session.expired(self._clock.time()):
                return None
            try:
                fresh = await self._refresher.refresh(session)
            except GatewayError:
                return None
            return fresh.tokens_expire_at if fresh is not session else None

        return renew

    async def write_cookies(self, request: web.BaseRequest,
                            response: web.StreamResponse) -> None:
        """on_response_prepare: put the session's cookie (or its deletion) on the response."""
        state = request.get(SESSION_STATE)
        if state is None:
            return
        cookies = self._store.cookies
        current = state.current
        if current is None:
            headers = cookies.deletions(state.own_cookies) if state.clear else []
        elif self._store.cookie_changed(state.carried, current):
            headers = cookies.chunks(self._store.cookie_value(current),
                                     present=state.own_cookies,
                                     max_age=self._store.max_age(current))
        else:
            return
        for header in headers:
            response.headers.add("Set-Cookie", header)
        if headers:
            _keep_out_of_shared_caches(response)

    async def _state(self, request: web.Request) -> SessionState:
        state = request.get(SESSION_STATE)
        if state is None:
            loaded = await self._store.load(request)
            own = self._store.cookies.own_cookies(request.headers.get("Cookie", ""))
            if isinstance(loaded, Absent):
                state = SessionState(None, None, own, clear=loaded is not Absent.NO_COOKIE)
                if state.clear:
                    self._metrics.reauthentications.labels(reason=loaded.value).inc()
            else:
                state = SessionState(loaded, loaded, own)
            request[SESSION_STATE] = state
        return state

    async def _drop(self, state: SessionState, session: Session, reason: str) -> None:
        state.current, state.clear = None, True
        self._metrics.reauthentications.labels(reason=reason).inc()
        await self._store.forget(session)


def _keep_out_of_shared_caches(response: web.StreamResponse) -> None:
    """A response carrying a session cookie must never be stored by a shared cache."""
    directives = [d.strip() for d in response.headers.get("Cache-Control", "").split(",")
                  if d.strip() and d.strip().lower() != "public"]
    if not {d.lower() for d in directives} & {"private", "no-store"}:
        response.headers["Cache-Control"] = ", ".join(["private", *directives])
