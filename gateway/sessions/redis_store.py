"""Sessions in Redis, so that any replica serves any user.

The browser holds only the encrypted session id; Redis holds the session, encrypted with the
same keys (Redis never sees a token in clear), under a key that expires with the session.
Ending a session deletes its key, so a replayed cookie finds nothing on any replica.

Refresh across replicas: the replica that takes a session's refresh lock (a random owner
token, `SET NX PX`) refreshes and saves; the others wait for the saved result instead of
spending the refresh token again. The lock outlives the longest refresh (every attempt of the
token call timing out) and is released only by its owner (compare-and-delete in Lua), so a slow
refresh never frees another replica's lock. A refresh the IdP rejects (`invalid_grant`) ends
the session in Redis, and a waiting replica that finds the session gone treats it as rejected
too: the user signs in again instead of getting a 503. A refreshed session is saved only over
one that still exists (`SET XX`): a session signed out or revoked while its refresh was in
flight stays ended instead of coming back with the new tokens.

Each session is also indexed under its user's `sub` (gateway/sessions/index.py), which is how
`cognito-gateway sessions list|revoke --sub` finds every session of one user.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import RefreshRejected, SessionStoreUnavailable, TokenEndpointError
from gateway.observability.tracing import TRACING_OFF, Tracing
from gateway.sessions.index import SessionIndex
from gateway.sessions.model import Absent, Session
from gateway.sessions.redis_client import SessionRedis
from gateway.sessions.redis_keys import SessionKeys, session_hash
from gateway.sessions.store import Refresher, SessionStore

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.config import SessionSettings
    from gateway.sessions.cipher import Cipher
    from gateway.sessions.cookies import CookiePolicy

WAIT_STEP = 0.05


@dataclass(frozen=True)
class StoredSession:
    """A session found through a user's index: `digest` is the hash of its id; `session` is
    None when no session key decrypts it any more."""

    digest: str
    session: Session | None


class RedisSessionStore(SessionStore):
    """Sessions kept in Redis, indexed by user; the cookie carries only the session id."""

    def __init__(self, cookies: CookiePolicy, cipher: Cipher, settings: SessionSettings, *,
                 lock_seconds: float, clock: Clock = SYSTEM_CLOCK,
                 tracing: Tracing = TRACING_OFF) -> None:
        super().__init__(cookies, cipher, settings.lifetime_seconds, clock=clock)
        self._redis = SessionRedis.from_settings(settings, tracing=tracing)
        self._index = SessionIndex(self._redis, clock)
        self._lock_seconds = lock_seconds

    @property
    def topology(self) -> str:
        """standalone, sentinel or cluster."""
        return self._redis.topology

    async def load(self, request: web.BaseRequest) -> Session | Absent:
        sealed = self.cookies.read(request)
        if sealed is None:
            return Absent.NO_COOKIE
        data = self.cipher.open(sealed, ttl=self.lifetime)
        sid = data.get("sid") if data else None
        if not isinstance(sid, str):
            return Absent.UNREADABLE
        found = await self._get(sid)
        ends = data.get("exp") if data else None
        if found is Absent.SIGNED_OUT and isinstance(ends, (int, float)) \
                and self.clock.time() >= ends:
            return Absent.LIFETIME  # Redis let the key expire with the session
        return found

    def cookie_value(self, session: Session) -> str:
        return self.cipher.seal({"sid": session.sid, "exp": session.expires_at})

    def cookie_changed(self, carried: Session | None, current: Session) -> bool:
        return carried is None or carried.sid != current.sid

    async def _get(self, sid: str) -> Session | Absent:
        session = self._open(await self._redis.get(SessionKeys.for_session(sid).session))
        if session is None or session.sid != sid:
            return Absent.SIGNED_OUT
        if session.expired(self.clock.time()):
            return Absent.LIFETIME
        return session

    def _open(self, sealed: bytes | None) -> Session | None:
        data = self.cipher.open(sealed.decode("ascii", "replace"), ttl=self.lifetime) \
            if sealed else None
        try:
            return Session.from_dict(data) if data else None
        except (KeyError, TypeError, ValueError):
            return None

    async def persist(self, session: Session) -> None:
        """Index the session under its user, then store it (see gateway/sessions/index.py for
        why in that order)."""
        await self._index.add(session)
        await self._redis.set(SessionKeys.for_session(session.sid).session,
                              self.cipher.seal(session.to_dict()),
                              ttl_seconds=self.max_age(session))

    async def forget(self, session: Session) -> None:
        await self._redis.delete(SessionKeys.for_session(session.sid).session)
        await self._index.remove(session.identity.sub, session_hash(session.sid))

    async def _replace(self, fresh: Session) -> None:
        """Save a refreshed session over the stored one; RefreshRejected if it has ended
        meanwhile (signed out, revoked or expired on another replica)."""
        await self._index.add(fresh)
        if not await self._redis.set(SessionKeys.for_session(fresh.sid).session,
                                     self.cipher.seal(fresh.to_dict()),
                                     ttl_seconds=self.max_age(fresh), only_if_exists=True):
            await self._index.remove(fresh.identity.sub, session_hash(fresh.sid))
            raise RefreshRejected("the session ended while it was being refreshed")

    async def sessions_of(self, sub: str) -> list[StoredSession]:
        """The user's sessions that have not ended, soonest-ending first.

        A member without a session is skipped but left in the index: it may be a sign-in
        between indexing and storing, and the index must keep it (writes prune it by score).
        """
        found: list[StoredSession] = []
        for digest in await self._index.live(sub):
            sealed = await self._redis.get(SessionKeys.for_hash(digest).session)
            if sealed is None:
                continue
            session = self._open(sealed)
            if session is not None and session.identity.sub != sub:
                continue  # not this user's: only a hash collision could put it here
            found.append(StoredSession(digest, session))
        return found

    async def end_sessions(self, sub: str, digests: list[str]) -> int:
        """End the user's sessions hashed `digests` on every replica at once: delete each
        session key (one at a time: on a Cluster each is in a slot of its own), then take them
        out of the index. The number of sessions that still existed."""
        ended = 0
        for digest in digests:
            ended += await self._redis.delete(SessionKeys.for_hash(digest).session)
        await self._index.remove(sub, *digests)
        return ended

    def coordinate(self, refresher: Refresher) -> Refresher:
        """Refresh under the session's Redis lock (see the module docstring)."""

        async def refresh(session: Session) -> Session:
            keys = SessionKeys.for_session(session.sid)
            owner = secrets.token_urlsafe(16)
            if not await self._redis.acquire_lock(keys.lock, owner,
                                                  ttl_seconds=self._lock_seconds):
                return await self._wait_for_refresh(session)
            try:
                fresh = await refresher(session)
            except TokenEndpointError as exc:
                if exc.error == "invalid_grant":
                    await self.forget(session)
                raise
            else:
                await self._replace(fresh)
                return fresh
            finally:
                await self._redis.release_lock(keys.lock, owner)

        return refresh

    async def _wait_for_refresh(self, session: Session) -> Session:
        deadline = self.clock.time() + self._lock_seconds
        while self.clock.time() < deadline:
            await self.clock.sleep(WAIT_STEP)
            current = await self._get(session.sid)
            if isinstance(current, Absent):
                raise RefreshRejected("the session ended while another replica refreshed it")
            if current.tokens_expire_at > session.tokens_expire_at:
                return current
        raise SessionStoreUnavailable("another replica's refresh did not finish in time")

    async def ping(self) -> bool:
        return await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
