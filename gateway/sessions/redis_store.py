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
too: the user signs in again instead of getting a 503.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.config import SessionSettings
from gateway.errors import RefreshRejected, SessionStoreUnavailable, TokenEndpointError
from gateway.observability.tracing import TRACING_OFF, Tracing
from gateway.sessions.cipher import Cipher
from gateway.sessions.cookies import CookiePolicy
from gateway.sessions.model import Absent, Session
from gateway.sessions.redis_client import SessionRedis
from gateway.sessions.redis_keys import SessionKeys
from gateway.sessions.store import Refresher, SessionStore

WAIT_STEP = 0.05


class RedisSessionStore(SessionStore):
    def __init__(self, cookies: CookiePolicy, cipher: Cipher, settings: SessionSettings, *,
                 lock_seconds: float, clock: Clock = SYSTEM_CLOCK,
                 tracing: Tracing = TRACING_OFF) -> None:
        super().__init__(cookies, cipher, settings.lifetime_seconds, clock=clock)
        self._redis = SessionRedis.from_settings(settings, tracing=tracing)
        self._lock_seconds = lock_seconds

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
        sealed = await self._redis.get(SessionKeys.for_session(sid).session)
        data = self.cipher.open(sealed.decode("ascii", "replace"), ttl=self.lifetime) \
            if sealed else None
        try:
            session = Session.from_dict(data) if data else None
        except (KeyError, TypeError, ValueError):
            session = None
        if session is None or session.sid != sid:
            return Absent.SIGNED_OUT
        if session.expired(self.clock.time()):
            return Absent.LIFETIME
        return session

    async def persist(self, session: Session) -> None:
        await self._redis.set(SessionKeys.for_session(session.sid).session,
                              self.cipher.seal(session.to_dict()),
                              ttl_seconds=self.max_age(session))

    async def forget(self, session: Session) -> None:
        await self._redis.delete(SessionKeys.for_session(session.sid).session)

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
                    await self._redis.delete(keys.session)
                raise
            else:
                await self.persist(fresh)
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
