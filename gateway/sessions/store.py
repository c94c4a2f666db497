"""Session stores: where a session lives between requests.

A store loads the session a request's cookie names, persists and forgets sessions, and says
what the cookie holds (`cookie_value`). It never writes a cookie itself: the session layer
(sessions/layer.py) writes them, in one place, as the response starts.

`CookieSessionStore` keeps the whole session in the browser, encrypted and chunked; sessions
signed out on this replica are remembered until they would have ended, so a replayed cookie
grants nothing here (other replicas find out at their next re-check with the IdP).
`RedisSessionStore` (sessions/redis_store.py) keeps it in Redis so any replica serves any user.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.cache import BoundedCache
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.sessions.model import Absent, Session

if TYPE_CHECKING:
    from gateway.sessions.cipher import Cipher
    from gateway.sessions.cookies import CookiePolicy

Refresher = Callable[[Session], Awaitable[Session]]
DECODED_CACHE_SIZE = 4096      # decrypted cookies: one per active browser, least recent evicted,
                               # each forgotten when its tokens expire (a refresh replaces it)
SIGNED_OUT_SIZE = 100_000      # sessions signed out here, remembered until they would end


class SessionStore(ABC):
    """Where sessions live, and what the session cookie carries to find them."""

    def __init__(self, cookies: CookiePolicy, cipher: Cipher, lifetime: int, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.cookies = cookies
        self.cipher = cipher
        self.lifetime = lifetime
        self.clock = clock

    @abstractmethod
    async def load(self, request: web.BaseRequest) -> Session | Absent:
        """The request's live session, or why there is none."""

    def settled(self, cookie_header: str) -> Session | None:  # noqa: ARG002 - see docstring
        """The session `load` would return for a request with this Cookie header, when it is
        known here without any I/O or decoding and its cookie needs no resealing; None
        otherwise, and always for a store that must ask its backend (Redis: a revocation on
        another replica takes effect at once)."""
        return None

    @abstractmethod
    def cookie_value(self, session: Session) -> str:
        """What the browser's cookie holds for this session (sealed)."""

    def cookie_changed(self, carried: Session | None, current: Session) -> bool:
        """True when the browser's cookie must be rewritten for `current`."""
        return current is not carried

    def sealed_with_retired_key(self, request: web.BaseRequest) -> bool:
        """True when the request's cookie was sealed with a key other than the first session
        key (a rotation is under way): its response seals it again with the first."""
        return self._retired(self.cookies.read(request))

    def _retired(self, sealed: str | None) -> bool:
        """`sealed_with_retired_key` of a cookie's sealed value."""
        return self.cipher.rotating and sealed is not None and not self.cipher.current(sealed)

    def rekey(self, keys: list[str]) -> None:
        """Use these session keys from now on (a reload): a cookie no key opens is no
        session, even one this store has already read."""
        self.cipher.rekey(keys)

    async def persist(self, session: Session) -> None:  # noqa: B027 - the cookie is the store
        """Keep a new or refreshed session where the store keeps sessions."""

    @abstractmethod
    async def forget(self, session: Session) -> None:
        """End a session for good: its cookie, replayed, finds nothing."""

    def coordinate(self, refresher: Refresher) -> Refresher:
        """Wrap a refresher so that replicas sharing this store refresh a session once."""
        return refresher

    async def ping(self) -> bool:
        """True when the store can serve sessions."""
        return True

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections."""

    def max_age(self, session: Session) -> int:
        return max(1, round(session.expires_at - self.clock.time()))


class CookieSessionStore(SessionStore):
    """The whole session, encrypted with the session keys, in the browser's cookies.

    Decrypted sessions are remembered by their cookie value, so a browser's steady stream of
    requests pays for decryption once; expiry and sign-out are still checked on every request.
    """

    def __init__(self, cookies: CookiePolicy, cipher: Cipher, lifetime: int, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(cookies, cipher, lifetime, clock=clock)
        self._signed_out: BoundedCache[str, bool] = BoundedCache(SIGNED_OUT_SIZE, clock=clock)
        self._decoded: BoundedCache[str, Session] = BoundedCache(DECODED_CACHE_SIZE, clock=clock)

    async def load(self, request: web.BaseRequest) -> Session | Absent:
        sealed = self.cookies.read(request)
        if sealed is None:
            return Absent.NO_COOKIE
        session = self._decoded.get(sealed)
        if session is None:
            session = self._decode(sealed)
            if session is None:
                return Absent.UNREADABLE
            self._decoded.put(sealed, session, expires_at=session.tokens_expire_at)
        return self._live(session)

    def settled(self, cookie_header: str) -> Session | None:
        sealed = self.cookies.sealed_in(cookie_header)
        session = self._decoded.get(sealed) if sealed is not None else None  # decoded before
        if session is None or self._retired(sealed):  # retired: its response reseals it
            return None
        live = self._live(session)
        return live if isinstance(live, Session) else None

    def _live(self, session: Session) -> Session | Absent:
        """`session`, or why it no longer serves: its lifetime is over, or it signed out."""
        if session.expired(self.clock.time()):
            return Absent.LIFETIME
        if self._signed_out.get(session.sid):
            return Absent.SIGNED_OUT
        return session

    def _decode(self, sealed: str) -> Session | None:
        data = self.cipher.open(sealed, ttl=self.lifetime)
        try:
            return Session.from_dict(data) if data else None
        except (KeyError, TypeError, ValueError):
            return None

    def cookie_value(self, session: Session) -> str:
        return self.cipher.seal(session.to_dict())

    def rekey(self, keys: list[str]) -> None:
        super().rekey(keys)
        self._decoded = BoundedCache(DECODED_CACHE_SIZE, clock=self.clock)

    async def forget(self, session: Session) -> None:
        self._signed_out.put(session.sid, True, expires_at=session.expires_at)


SESSION_STORE = web.AppKey("session_store", SessionStore)
