"""Sessions in Redis, so that any replica serves any user.

The browser holds only the encrypted session id; Redis holds the session, encrypted with the
same keys (Redis never sees a token in clear), under a key that expires with the session.
Ending a session deletes its key, so a replayed cookie finds nothing on any replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import redis.asyncio as redis
from aiohttp import web
from redis.exceptions import RedisError

from gateway.errors import SessionStoreUnavailable
from gateway.sessions.cipher import Cipher
from gateway.sessions.cookies import CookiePolicy
from gateway.sessions.model import Session
from gateway.sessions.store import Refresher, SessionStore

KEY_PREFIX = "cognito-gateway:session:"
LOCK_PREFIX = "cognito-gateway:refresh-lock:"
LOCK_MILLISECONDS = 15000
WAIT_STEP = 0.05


def _unavailable() -> SessionStoreUnavailable:
    # Words only: Redis's own text names addresses and errno ("Error 111 connecting to
    # 10.0.0.5:6379"), which must never reach a client; the cause is logged with the request.
    return SessionStoreUnavailable("the session store is not answering; try again shortly")


class RedisSessionStore(SessionStore):
    def __init__(self, cookies: CookiePolicy, cipher: Cipher, lifetime: int, *,
                 redis_url: str) -> None:
        super().__init__(cookies, cipher, lifetime)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=2.0,
                                           socket_connect_timeout=2.0)

    @staticmethod
    def _key(sid: str) -> str:
        return KEY_PREFIX + hashlib.sha256(sid.encode()).hexdigest()

    def _sid(self, request: web.Request) -> str | None:
        sealed = self.cookies.read(request)
        data = self.cipher.open(sealed, ttl=self.lifetime) if sealed else None
        sid = data.get("sid") if data else None
        return sid if isinstance(sid, str) else None

    async def load(self, request: web.Request) -> Session | None:
        sid = self._sid(request)
        return await self._get(sid) if sid is not None else None

    async def save(self, request: web.Request, response: web.StreamResponse,
                   session: Session) -> None:
        await self._put(session)
        if self._sid(request) != session.sid:
            self.cookies.write(request, response, self.cipher.seal({"sid": session.sid}),
                               max_age=self._max_age(session))

    async def _get(self, sid: str) -> Session | None:
        try:
            sealed = await self._redis.get(self._key(sid))
        except RedisError as exc:
            raise _unavailable() from exc
        if isinstance(sealed, bytes):
            sealed = sealed.decode("ascii", "replace")
        data = self.cipher.open(sealed, ttl=self.lifetime) if sealed else None
        try:
            session = Session.from_dict(data) if data else None
        except (KeyError, TypeError, ValueError):
            return None
        if session is None or session.sid != sid or session.expired(time.time()):
            return None
        return session

    async def _put(self, session: Session) -> None:
        try:
            await self._redis.set(self._key(session.sid), self.cipher.seal(session.to_dict()),
                                  ex=self._max_age(session))
        except RedisError as exc:
            raise _unavailable() from exc

    async def end(self, request: web.Request, response: web.StreamResponse,
                  session: Session | None) -> None:
        sid = session.sid if session else self._sid(request)
        if sid is not None:
            try:
                await self._redis.delete(self._key(sid))
            except RedisError as exc:
                raise _unavailable() from exc
        self.cookies.clear(request, response)

    def coordinate(self, refresher: Refresher) -> Refresher:
        """Refresh under a Redis lock per session: the replica that takes it refreshes and saves;
        the others wait for the saved result instead of spending the refresh token again."""

        async def refresh(session: Session) -> Session:
            lock = LOCK_PREFIX + self._key(session.sid)[len(KEY_PREFIX):]
            try:
                acquired = await self._redis.set(lock, "1", nx=True, px=LOCK_MILLISECONDS)
            except RedisError as exc:
                raise _unavailable() from exc
            if not acquired:
                return await self._wait_for_refresh(session)
            try:
                fresh = await refresher(session)
                await self._put(fresh)
                return fresh
            finally:
                await self._redis.delete(lock)

        return refresh

    async def _wait_for_refresh(self, session: Session) -> Session:
        for _ in range(int(LOCK_MILLISECONDS / 1000 / WAIT_STEP)):
            await asyncio.sleep(WAIT_STEP)
            current = await self._get(session.sid)
            if current is None:
                raise SessionStoreUnavailable("the session ended during a refresh elsewhere")
            if current.tokens_expire_at > session.tokens_expire_at:
                return current
        raise SessionStoreUnavailable("another replica's refresh did not finish in time")

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def close(self) -> None:
        await self._redis.aclose()


