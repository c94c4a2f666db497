"""Who makes a request (a session or a bearer token) and what the upstream is told about it.

`Principals.of(request)` finds the principal: a bearer token when one is sent and accepted,
else the request's session. The `Principal` it returns carries the identity headers for the
upstream (built once per session tokens and cached), when its authorisation expires, and how a
long-lived connection may extend it; the guard puts it on the request (`PRINCIPAL`) for the
proxy and the WebSocket code to read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from aiohttp import web

from gateway.auth.classify import bearer_token
from gateway.auth.headers import IdentityHeaders
from gateway.cache import BoundedCache
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.identity import Identity
from gateway.sessions.layer import SessionLayer

Renewal = Callable[[], Awaitable[float | None]]
HEADERS_CACHE_SIZE = 8192  # identity headers of recently seen session tokens


async def cannot_renew() -> float | None:
    """The renewal of a bearer token: there is none; its client reconnects with a new one."""
    return None


@dataclass(frozen=True)
class Principal:
    kind: Literal["session", "bearer"]
    identity: Identity
    expires_at: float
    headers: Mapping[str, str]
    session_id: str | None = None
    renew: Renewal = cannot_renew


PRINCIPAL = web.RequestKey("principal", Principal)


class BearerPrincipals(Protocol):
    """What Principals needs of auth/bearer.py's BearerTokens."""

    async def principal(self, token: str) -> Principal:
        """The principal of a bearer token; InvalidBearerToken when it does not verify."""


class Principals:
    def __init__(self, sessions: SessionLayer, bearer: BearerPrincipals | None,
                 headers: IdentityHeaders, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = sessions
        self._bearer = bearer
        self._headers = headers
        self._built: BoundedCache[tuple[str, float], Mapping[str, str]] = BoundedCache(
            HEADERS_CACHE_SIZE, clock=clock)

    async def of(self, request: web.Request) -> Principal | None:
        """The request's principal; InvalidBearerToken for a bearer token that fails."""
        if self._bearer is not None:
            token = bearer_token(request)
            if token is not None:
                return await self._bearer.principal(token)
        session = await self._sessions.session(request)
        if session is None:
            return None
        key = (session.sid, session.tokens_expire_at)
        headers = self._built.get(key)
        if headers is None:
            headers = self._headers.build(session.identity, access_token=session.access_token,
                                          exp=session.tokens_expire_at)
            self._built.put(key, headers, expires_at=session.tokens_expire_at)
        return Principal("session", session.identity, session.tokens_expire_at, headers,
                         session.sid, self._sessions.renewal(session))
