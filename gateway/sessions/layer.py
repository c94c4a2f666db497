"""The session layer: a request's session, loaded once, refreshed when due, and its cookie
written in one place, as the response starts.

`SessionLayer.session(request)` loads the session the request's cookie names (once per
request), takes the newest generation of it this replica knows (a refresh may have finished
since the cookie was written), refreshes it when due, and remembers on the request what the
response's cookie must say. A refresh is due `session.refresh_before_expiry_seconds` before the
tokens expire and, with the cookie store, before the IdP's confirmation is
`session.revalidate_seconds` old; while the session is still usable the refresh runs in the
background and the request is served at once, so only a request whose session can no longer
serve (tokens expired, re-check overdue) waits for it (sessions/refresh.py). `begin` (sign-in)
and `end` (sign-out) change the session too. `write_cookies` is registered on aiohttp's
`on_response_prepare`, which fires for every response the request gets (a proxied stream, a
WebSocket handshake, an error page, a redirect): it is the one place a session cookie is
written, so no handler can forget to, and so a refresh finished in the background reaches the
browser on the next response of its session. It adds `Set-Cookie` headers itself: aiohttp
serialises `response.cookies` before that signal.

A cookie sealed with a retired session key (a rotation, sessions/cipher.py) is written again,
sealed with the first key, on the next response.

A request whose cookie can no longer be used (unreadable, lifetime over, signed out, the
refresh rejected) has its cookie deleted and counts in
`cognito_gateway_reauthentications_total{reason}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import GatewayError, RefreshRejected
from gateway.sessions.model import Absent, Session

if TYPE_CHECKING:
    from gateway.observability.metrics import Metrics
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
    reseal: bool = False  # the cookie was sealed with a retired session key


SESSION_STATE = web.RequestKey("session_state", SessionState)


class SessionLayer:
    """A request's session: loaded once, refreshed when due, written when the response starts."""

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
        """The request's live session, refreshed when due (in the background while it is
        usable); None when there is none."""
        state = await self._state(request)
        session = state.current
        if session is None:
            return None
        now = self._clock.time()
        if session.refresh_token is None:
            return session if self._serves_as_is(session, now) else None
        reason = "refresh_rejected" if session.refresh_due(now, self._refresh_before) \
            else "revalidation_failed"
        if self._refresher.ended(session):
            await self._drop(state, session, reason)
            return None
        if self._serves_as_is(session, now):
            return session
        if session.usable(now, self._revalidate_after):
            self._refresher.start(session)
            return session
        try:
            fresh = await self._refresher.refresh(session)
        except RefreshRejected:
            await self._drop(state, session, reason)
            return None
        state.current = fresh
        return fresh

    def settled(self, cookie_header: str) -> Session | None:
        """The session `session()` would return for a request with this Cookie header when
        that takes no I/O and leaves nothing to do: the store knows it without asking
        (`SessionStore.settled`), no newer generation is known, no refresh is due, and so its
        response writes no cookie. None in every other case (the caller then takes
        `session()`'s path, which decides the same question in full)."""
        session = self._store.settled(cookie_header)
        if session is None or not self._refresher.quiet(session):
            return None
        return session if self._serves_as_is(session, self._clock.time()) else None

    def _serves_as_is(self, session: Session, now: float) -> bool:
        """True when `session` serves now without a refresh: its tokens are valid (a session
        that cannot refresh), or its refresh is not due yet."""
        if session.refresh_token is None:
            return session.tokens_valid(now)
        return now < session.refresh_starts_at(self._refresh_before, self._revalidate_after)

    async def begin(self, request: web.Request, session: Session) -> None:
        """Start `session` (a sign-in): it replaces the request's session, if any."""
        state = await self._state(request)
        if state.current is not None:
            await self._forget(state.current)
        await self._store.persist(session)
        state.current = session

    async def end(self, request: web.Request) -> Session | None:
        """End the request's session (a sign-out); return it, or None when there was none."""
        state = await self._state(request)
        session, state.current, state.clear = state.current, None, True
        if session is not None:
            await self._forget(session)
        return session

    def renewal(self, session: Session) -> Renewal:
        """How a long-lived connection extends `session`: the new tokens' expiry, or None."""

        async def renew() -> float | None:
            current = self._refresher.newest(session)
            now = self._clock.time()
            if current.refresh_token is None or current.expired(now):
                return None
            if current.tokens_valid(now):
                return current.tokens_expire_at
            try:
                fresh = await self._refresher.refresh(current)
            except GatewayError:
                return None
            return fresh.tokens_expire_at if fresh is not current else None

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
        elif state.reseal or self._store.cookie_changed(state.carried, current):
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
                state = SessionState(loaded, self._refresher.newest(loaded), own,
                                     reseal=self._store.sealed_with_retired_key(request))
            request[SESSION_STATE] = state
        return state

    async def _drop(self, state: SessionState, session: Session, reason: str) -> None:
        state.current, state.clear = None, True
        self._metrics.reauthentications.labels(reason=reason).inc()
        await self._forget(session)

    async def _forget(self, session: Session) -> None:
        self._refresher.forget(session)
        await self._store.forget(session)


def _keep_out_of_shared_caches(response: web.StreamResponse) -> None:
    """A response carrying a session cookie must never be stored by a shared cache."""
    directives = [d.strip() for d in response.headers.get("Cache-Control", "").split(",")
                  if d.strip() and d.strip().lower() != "public"]
    if not {d.lower() for d in directives} & {"private", "no-store"}:
        response.headers["Cache-Control"] = ", ".join(["private", *directives])
