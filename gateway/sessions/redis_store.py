"""Sessions in Redis, so that any replica serves any user.

The browser holds only the encrypted session id; Redis holds the session, encrypted with the
same keys (Redis never sees a token in clear), under a key that expires with the session.
Ending a session deletes its key, so a replayed cookie finds nothing on any replica.
"""

from __future__ import annotations

import hashlib
import time

import redis.asyncio as redis
from aiohttp import web
from redis.exceptions import RedisError

from gateway.errors import SessionStoreUnavailable
from gateway.sessions.cipher import Cipher
from gateway.sessions.cookies import CookiePolicy
from gateway.sessions.model import Session
from gateway.sessions.store import SessionStore

KEY_PREFIX = "cognito-gateway:session:"


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
        if sid is None:
            return None
        try:
            sealed = await self._redis.get(self._key(sid))
        except RedisError as exc:
            raise SessionStoreUnavailable(f"redis: {exc}") from exc
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

    async def save(self, request: web.Request, response: web.StreamResponse,
                   session: Session) -> None:
        ttl = self._max_age(session)
        sealed = self.cipher.seal(session.to_dict())
        try:
            await self._redis.set(self._key(session.sid), sealed, ex=ttl)
        except RedisError as exc:
            raise SessionStoreUnavailable(f"redis: {exc}") from exc
        if self._sid(request) != session.sid:
            self.cookies.write(request, response, self.cipher.seal({"sid": session.sid}),
                               max_age=ttl)

    async def end(self, request: web.Request, response: web.StreamResponse,
                  session: Session | None) -> None:
        sid = session.sid if session else self._sid(request)
        if sid is not None:
            try:
                await self._redis.delete(self._key(sid))
            except RedisError as exc:
                raise SessionStoreUnavailable(f"redis: {exc}") from exc
        self.cookies.clear(request, response)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def close(self) -> None:
        await self._redis.aclose()


