"""Token refresh, once per refresh token however many requests ask at the same time.

Requests of one session share its refresh token, so the refresh is keyed by a hash of it: the
first request starts the token call as its own task (a client disconnect cannot cancel it), the
others await the same task, and the outcome is kept for `RESULT_TTL` seconds so that requests
still carrying the old cookie get the new tokens instead of refreshing again. That is what makes
rotation with a grace period of 0 safe: the old refresh token is used exactly once.

Failure policy:
- `invalid_grant` (revoked, expired), or another replica's refresh of this session rejected:
  RefreshRejected, the session is over.
- anything else (IdP down, slow, misconfigured): the current session keeps serving while its
  tokens are valid. A transient failure is retried at once twice (`RETRY_PAUSES`); after that,
  further attempts for that token back off (`BACKOFF` seconds, doubling, up to `MAX_BACKOFF`).
  Once the tokens have expired: SessionUnavailable (the session is kept for the next try).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from gateway.cache import BoundedCache
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import (
    GatewayError,
    RefreshRejected,
    SessionUnavailable,
    TokenEndpointError,
)
from gateway.observability.metrics import Metrics
from gateway.sessions.model import Session
from gateway.sessions.store import Refresher

RESULT_TTL = 60.0
BACKOFF = 1.0
MAX_BACKOFF = 30.0
RETRY_PAUSES = (0.25, 0.5)
MEMORY_SIZE = 65536  # refresh outcomes and backoffs kept: one per recently refreshed session


@dataclass(frozen=True)
class _Backoff:
    next_try: float
    delay: float


def longest_refresh(token_timeout: float) -> float:
    """The longest a refresh can take: every attempt timing out, plus the pauses between."""
    return token_timeout * (len(RETRY_PAUSES) + 1) + sum(RETRY_PAUSES)


class RefreshCoordinator:
    """Single-flight refresh with a short memory of outcomes and a retry backoff."""

    def __init__(self, refresher: Refresher, metrics: Metrics, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._refresher = refresher
        self._metrics = metrics
        self._clock = clock
        self._inflight: dict[str, asyncio.Task[Session]] = {}  # bounded by sessions refreshing
        self._results: BoundedCache[str, Session] = BoundedCache(MEMORY_SIZE, clock=clock)
        self._backoff: BoundedCache[str, _Backoff] = BoundedCache(MEMORY_SIZE, clock=clock)

    async def refresh(self, session: Session) -> Session:
        """The session with fresh tokens, or the same session while a failure is tolerable."""
        assert session.refresh_token is not None
        key = hashlib.sha256(session.refresh_token.encode()).hexdigest()
        done = self._results.get(key)
        if done is not None:
            self._metrics.session_refreshes.labels(outcome="shared").inc()
            return done
        backoff = self._backoff.get(key)
        task = self._inflight.get(key)
        if backoff is not None and backoff.next_try > self._clock.time() and task is None:
            return self._tolerate(session)
        if task is None:
            task = asyncio.create_task(self._run(key, session))
            self._inflight[key] = task
        else:
            self._metrics.session_refreshes.labels(outcome="shared").inc()
        try:
            return await asyncio.shield(task)
        except GatewayError as exc:
            if _rejected(exc):
                raise RefreshRejected(str(exc)) from exc
            return self._tolerate(session)

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

    async def _run(self, key: str, session: Session) -> Session:
        try:
            fresh = await self._attempt(session)
        except GatewayError as exc:
            self._metrics.session_refreshes.labels(
                outcome="rejected" if _rejected(exc) else "failed").inc()
            previous = self._backoff.get(key)
            delay = min(previous.delay * 2, MAX_BACKOFF) if previous else BACKOFF
            now = self._clock.time()
            self._backoff.put(key, _Backoff(now + delay, delay), expires_at=now + MAX_BACKOFF * 2)
            raise
        finally:
            self._inflight.pop(key, None)
        self._metrics.session_refreshes.labels(outcome="ok").inc()
        self._results.put(key, fresh, expires_at=self._clock.time() + RESULT_TTL)
        self._backoff.discard(key)
        return fresh

    def _tolerate(self, session: Session) -> Session:
        if session.tokens_valid(self._clock.time()):
            return session
        raise SessionUnavailable("the identity provider is unavailable and the session's "
                                 "tokens have expired; try again shortly")


def _rejected(exc: GatewayError) -> bool:
    return isinstance(exc, RefreshRejected) or (
        isinstance(exc, TokenEndpointError) and exc.error == "invalid_grant")
