"""Session stores: where a session lives between requests.

`CookieSessionStore` keeps the whole session in the browser, encrypted and chunked; signed-out
session ids are remembered in memory until their expiry, so a replayed cookie grants nothing.
`RedisSessionStore` (sessions/redis_store.py) keeps it in Redis so any replica serves any user.
Both write cookies onto the response before it starts (a proxied StreamResponse cannot take
them later).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.sessions.cipher import Cipher
from gateway.sessions.cookies import CookiePolicy
from gateway.sessions.model import Session

Refresher = Callable[[Session], Awaitable[Session]]


class SessionStore(ABC):
    def __init__(self, cookies: CookiePolicy, cipher: Cipher, lifetime: int) -> None:
        self.cookies = cookies
        self.cipher = cipher
        self.lifetime = lifetime

    @abstractmethod
    async def load(self, request: web.Request) -> Session | None:
        """The request's live session, or None (no cookie, tampered, expired, signed out)."""

    @abstractmethod
    async def save(self, request: web.Request, response: web.StreamResponse,
                   session: Session) -> None:
        """Persist the session and set its cookie on the (not yet prepared) response."""

    @abstractmethod
    async def end(self, request: web.Request, response: web.StreamResponse,
                  session: Session | None) -> None:
        """Forget the session for good and delete its cookies."""

    def coordinate(self, refresher: Refresher) -> Refresher:
        """Wrap a refresher so that replicas sharing this store refresh a session once."""
        return refresher

    async def ping(self) -> bool:
        """True when the store can serve sessions."""
        return True

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections."""

    def _max_age(self, session: Session) -> int:
        return max(1, round(session.expires_at - time.time()))


class SignedOutSessions:
    """Session ids signed out in this process, remembered until the session would have ended."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def add(self, sid: str, until: float) -> None:
        now = time.time()
        self._until = {k: v for k, v in self._until.items() if v > now}
        self._until[sid] = until

    def __contains__(self, sid: str) -> bool:
        until = self._until.get(sid)
        return until is not None and until > time.time()


class CookieSessionStore(SessionStore):
    """The whole session, encrypted with the session keys, in the browser's cookies.

    Decrypted sessions are remembered by their cookie value (`DECODED_CACHE` entries), so a
    browser's steady stream of requests pays for decryption once; expiry and sign-out are still
    checked on every request.
    """

    DECODED_CACHE = 4096

    def __init__(self, cookies: CookiePolicy, cipher: Cipher, lifetime: int) -> None:
        super().__init__(cookies, cipher, lifetime)
        self.signed_out = SignedOutSessions()
        self._decoded: OrderedDict[str, Session] = OrderedDict()

    async def load(self, request: web.Request) -> Session | None:
        sealed = self.cookies.read(request)
        if sealed is None:
            return None
        session = self._decoded.get(sealed)
        if session is None:
            session = self._decode(sealed)
            if session is None:
                return None
            self._decoded[sealed] = session
            if len(self._decoded) > self.DECODED_CACHE:
                self._decoded.popitem(last=False)
        if session.expired(time.time()) or session.sid in self.signed_out:
            return None
        return session

    def _decode(self, sealed: str) -> Session | None:
        data = self.cipher.open(sealed, ttl=self.lifetime)
        try:
            return Session.from_dict(data) if data else None
        except (KeyError, TypeError, ValueError):
            return None

    async def save(self, request: web.Request, response: web.StreamResponse,
                   session: Session) -> None:
        self.cookies.write(request, response, self.cipher.seal(session.to_dict()),
                           max_age=self._max_age(session))

    async def end(self, request: web.Request, response: web.StreamResponse,
                  session: Session | None) -> None:
        if session is not None:
            self.signed_out.add(session.sid, session.expires_at)
        self.cookies.clear(request, response)
