"""Token refresh: in the background while a session can still serve, waited for once it cannot;
once per session however many requests ask at the same time.

A session's refresh runs as its own task, keyed by the session id (a client disconnect cannot
cancel it; every request of the session shares it):
- `start(session)`: the session is still usable (sessions/model.py): the refresh begins and the
  request is served at once with the current tokens. A slow or failing token endpoint is never
  felt by a user whose tokens are valid.
- `refresh(session)`: the session is not usable any more (tokens expired, re-check overdue):
  the request waits for the refresh, joining one in flight.
- `newest(session)`: the newest generation of the session this replica knows. A refresh's
  result is kept by session id until a request of that session shows it has it (its cookie,
  or Redis, carries that generation), then `RESULT_TTL` longer for requests already on their
  way with the older cookie; at most until the session ends. With the cookie store, a
  background refresh reaches the browser only on a later response: the session layer puts the
  newer generation in the next response of that session. With Redis, the store has it already.

Failure policy:
- `invalid_grant` (revoked, expired, or a rotated refresh token spent by another replica): the
  refresh is rejected, and the session ends when it can no longer serve without it. Until
  then it keeps serving its valid tokens, no further call is made for that generation, and a
  newer cookie from the replica that did refresh (cookie store, several replicas) is honoured.
- the refreshed ID token fails verification for good (a signature a known key rejects, a wrong
  issuer, audience, token use or subject): the session ends at its next request, and
  `refresh_failed` is logged with the reason and a hint.
- anything else (IdP down or slow; the ID token's key unavailable without an authenticated
  channel, see cognito/verify.py): transient. Retried at once twice (`RETRY_PAUSES`), then
  further attempts for that session back off (`BACKOFF` seconds, doubling, up to
  `MAX_BACKOFF`). The session keeps serving while its tokens are valid; once they have
  expired: SessionUnavailable (the session is kept for the next try).

Invariant: a token-endpoint 200 is never lost. A transient failure after the 200 is retried
with the same refresh token, which cognito/client.py answers from memory instead of spending a
rotated token twice; a success is kept (above) until the browser or the store has it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.cache import BoundedCache
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import (
    GatewayError,
    RefreshRejected,
    SessionUnavailable,
    TokenEndpointError,
    TokenValidationError,
)
from gateway.observability.logging import get_logger

if TYPE_CHECKING:
    from gateway.observability.metrics import Metrics
    from gateway.sessions.model import Session
    from gateway.sessions.store import Refresher

log = get_logger(__name__)

RESULT_TTL = 60.0
BACKOFF = 1.0
MAX_BACKOFF = 30.0
RETRY_PAUSES = (0.25, 0.5)
# Refreshed sessions not yet seen back from their browser (cookie store: idle users after a
# background refresh), about 3 KB each: at most ~50 MB. Beyond it the least recently used is
# forgotten; with rotation, that user signs in again at their next visit.
NEWEST_REMEMBERED = 16384
FAILURES_REMEMBERED = 16384  # sessions whose refresh failed or was rejected lately

_HINTS = {
    "bad_signature": "The refreshed ID token's signature does not match the identity "
                     "provider's key with its kid: it did not come from the configured user "
                     "pool, or something on the way changed it.",
    "wrong_issuer": "The refreshed ID token names another issuer: check cognito.issuer (or "
                    "cognito.region and cognito.user_pool_id).",
    "wrong_audience": "The refreshed ID token was issued to another app client: check "
                      "cognito.client_id.",
    "wrong_token_use": "The identity provider answered the refresh with a token that is not "
                       "an ID token where the ID token belongs.",
    "wrong_subject": "The refreshed ID token names another user than the session's.",
    "expired": "The refreshed ID token is already expired: check this host's clock (NTP).",
    "not_yet_valid": "The refreshed ID token is not valid yet: check this host's clock (NTP).",
}
_DEFAULT_HINT = "The identity provider answered the refresh with an ID token that fails " \
                "verification."


@dataclass(frozen=True)
class _Backoff:
    next_try: float
    delay: float


@dataclass(frozen=True)
class _Newest:
    session: Session
    seen: bool  # a request of the session has shown it has this generation


@dataclass(frozen=True)
class _Rejection:
    generation: int
    definitive: bool  # the ID token failed verification: end the session at once


def longest_refresh(token_timeout: float) -> float:
    """The longest a refresh can take: every attempt timing out, plus the pauses between."""
    return token_timeout * (len(RETRY_PAUSES) + 1) + sum(RETRY_PAUSES)


def refresh_failed_hint(reason: str) -> str:
    """What a refreshed ID token failing verification for `reason` probably means."""
    return _HINTS.get(reason, _DEFAULT_HINT)


class RefreshCoordinator:
    """Single-flight refresh per session, in the background or waited for, with a memory of
    results, failures and rejections (each map bounded, see the constants)."""

    def __init__(self, refresher: Refresher, metrics: Metrics, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._refresher = refresher
        self._metrics = metrics
        self._clock = clock
        self._inflight: dict[str, asyncio.Task[Session]] = {}  # bounded by refreshes running
        self._newest: BoundedCache[str, _Newest] = BoundedCache(NEWEST_REMEMBERED, clock=clock)
        self._backoff: BoundedCache[str, _Backoff] = BoundedCache(FAILURES_REMEMBERED,
                                                                  clock=clock)
        self._rejected: BoundedCache[str, _Rejection] = BoundedCache(FAILURES_REMEMBERED,
                                                                     clock=clock)

    def newest(self, session: Session) -> Session:
        """The newest generation of `session` known here (`session` itself when it is)."""
        known = self._newest.get(session.sid)
        if known is None:
            return session
        if known.session.generation > session.generation:
            self._metrics.session_refreshes.labels(outcome="shared").inc()
            return known.session
        if not known.seen:
            expires_at = min(self._clock.time() + RESULT_TTL, known.session.expires_at)
            self._newest.put(session.sid, _Newest(known.session, seen=True),
                             expires_at=expires_at)
        return session

    def quiet(self, session: Session) -> bool:
        """True when `newest(session)` is `session` itself (nothing newer is known here, so
        asking changes nothing) and `ended(session)` is False."""
        return self._newest.get(session.sid) is None and not self.ended(session)

    def ended(self, session: Session) -> bool:
        """True when the refresh of this generation failed verification for good."""
        rejection = self._rejected.get(session.sid)
        return rejection is not None and rejection.definitive \
            and rejection.generation >= session.generation

    def start(self, session: Session) -> None:
        """Refresh `session` in the background, unless a refresh of it is running, backing off
        after a failure, or was rejected."""
        if session.sid in self._inflight or self._rejection(session) is not None:
            return
        if self._backing_off(session):
            return
        self._launch(session)

    async def refresh(self, session: Session) -> Session:
        """The session with fresh tokens, or the same session while a failure is tolerable;
        RefreshRejected when the IdP refused this generation's refresh token."""
        if self._rejection(session) is not None:
            raise RefreshRejected("the identity provider refused this session's refresh")
        task = self._inflight.get(session.sid)
        if task is None:
            if self._backing_off(session):
                return self._tolerate(session)
            task = self._launch(session)
        else:
            self._metrics.session_refreshes.labels(outcome="shared").inc()
        try:
            return await asyncio.shield(task)
        except RefreshRejected:
            raise
        except GatewayError:
            return self._tolerate(session)

    def forget(self, session: Session) -> None:
        """Drop what is known of the session (it ended: signed out, or replaced)."""
        for cache in (self._newest, self._backoff, self._rejected):
            cache.discard(session.sid)

    def _launch(self, session: Session) -> asyncio.Task[Session]:
        task = asyncio.create_task(self._run(session))
        self._inflight[session.sid] = task
        task.add_done_callback(_observed)
        return task

    def _rejection(self, session: Session) -> _Rejection | None:
        rejection = self._rejected.get(session.sid)
        if rejection is None or rejection.generation < session.generation:
            return None
        return rejection

    def _backing_off(self, session: Session) -> bool:
        backoff = self._backoff.get(session.sid)
        return backoff is not None and backoff.next_try > self._clock.time()

    async def _attempt(self, session: Session) -> Session:
        """The refresh, retried briefly (RETRY_PAUSES) while the failure is transient."""
        for pause in RETRY_PAUSES:
            try:
                return await self._refresher(session)
            except TokenEndpointError as exc:
                if not exc.transient:
                    raise
            await self._clock.sleep(pause)
        return await self._refresher(session)

    async def _run(self, session: Session) -> Session:
        key = session.sid
        try:
            fresh = await self._attempt(session)
        except TokenValidationError as exc:
            self._reject(session, definitive=True)
            log.warning("refresh_failed", reason=exc.reason, hint=refresh_failed_hint(exc.reason),
                        sub=session.identity.sub)
            raise RefreshRejected(f"the refreshed ID token failed verification: {exc.reason}") \
                from exc
        except GatewayError as exc:
            if isinstance(exc, RefreshRejected) or (
                    isinstance(exc, TokenEndpointError) and exc.error == "invalid_grant"):
                self._reject(session, definitive=False)
                raise RefreshRejected(str(exc)) from exc
            self._metrics.session_refreshes.labels(outcome="failed").inc()
            previous = self._backoff.get(key)
            delay = min(previous.delay * 2, MAX_BACKOFF) if previous else BACKOFF
            now = self._clock.time()
            self._backoff.put(key, _Backoff(now + delay, delay), expires_at=now + MAX_BACKOFF * 2)
            raise
        finally:
            self._inflight.pop(key, None)
        self._metrics.session_refreshes.labels(outcome="ok").inc()
        self._newest.put(key, _Newest(fresh, seen=False), expires_at=fresh.expires_at)
        self._backoff.discard(key)
        return fresh

    def _reject(self, session: Session, *, definitive: bool) -> None:
        self._metrics.session_refreshes.labels(outcome="rejected").inc()
        self._rejected.put(session.sid, _Rejection(session.generation, definitive),
                           expires_at=session.expires_at)
        self._backoff.discard(session.sid)

    def _tolerate(self, session: Session) -> Session:
        if session.tokens_valid(self._clock.time()):
            return session
        raise SessionUnavailable("the identity provider is unavailable and the session's "
                                 "tokens have expired; try again shortly")


def _observed(task: asyncio.Task[Session]) -> None:
    """Mark a refresh task's failure as seen: a background refresh may have no one awaiting
    it, and its failure is already counted and logged."""
    if not task.cancelled():
        task.exception()
