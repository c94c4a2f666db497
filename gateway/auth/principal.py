"""Who makes a request (a session or a bearer token) and what the upstream is told about it.

`Principals.of(request)` finds the principal: a bearer token when one is sent and accepted,
else the request's session. The `Principal` it returns carries the identity headers for the
upstream and the access token's scopes (a session's Principal is built once per session
tokens and cached), when its authorisation expires, and how a long-lived connection may extend
it; the guard judges it against the route's rule and puts it on the request (`PRINCIPAL`) for
the proxy and the WebSocket code to read.

A session's scopes are read from the access token it holds, without verifying it again: the
gateway received it from the token endpoint itself, over TLS, in the response that also carried
the verified ID token. A session that keeps no access token has no scopes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Protocol

from aiohttp import web

from gateway.auth.classify import bearer_token, bearer_token_in
from gateway.cache import BoundedCache
from gateway.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from gateway.auth.headers import IdentityHeaders
    from gateway.identity import Identity
    from gateway.sessions.layer import SessionLayer

Renewal = Callable[[], Awaitable[float | None]]
HEADERS_CACHE_SIZE = 8192  # principals (identity headers) of recently seen session tokens


async def cannot_renew() -> float | None:
    """The renewal of a bearer token: there is none; its client reconnects with a new one."""
    return None


@dataclass(frozen=True)
class Principal:
    """Who makes a request. `scopes` are the access token's (None: not read yet)."""

    kind: Literal["session", "bearer"]
    identity: Identity
    expires_at: float
    headers: Mapping[str, str]
    session_id: str | None = None
    renew: Renewal = cannot_renew
    scopes: frozenset[str] | None = None


def token_scopes(access_token: str | None) -> frozenset[str]:
    """The `scope` claim of a JWT access token, read without verifying it (see the module
    docstring for when that is right); empty when there is none or it cannot be read."""
    if not access_token or access_token.count(".") != 2:
        return frozenset()
    payload = access_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:  # bad base64 (binascii.Error), bad UTF-8 or bad JSON
        return frozenset()
    scope = claims.get("scope") if isinstance(claims, dict) else None
    return frozenset(scope.split()) if isinstance(scope, str) else frozenset()


PRINCIPAL = web.RequestKey("principal", Principal)


class BearerPrincipals(Protocol):
    """What Principals needs of auth/bearer.py's BearerTokens."""

    async def principal(self, token: str) -> Principal:
        """The principal of a bearer token; InvalidBearerToken when it does not verify."""

    def settled(self, token: str) -> Principal | None:
        """The principal of a bearer token verified already; None when it has to be."""


class Principals:
    """Who makes a request: a bearer token's principal, else the session's, else nobody.

    Identity headers are built once per session tokens and cached (bounded).
    """

    def __init__(self, sessions: SessionLayer, bearer: BearerPrincipals | None,
                 headers: IdentityHeaders, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = sessions
        self._bearer = bearer
        self._headers = headers
        self._clock = clock
        self._built: BoundedCache[tuple[str, float], Principal] = BoundedCache(
            HEADERS_CACHE_SIZE, clock=clock)

    def forget_headers(self) -> None:
        """Build every session's headers again (a reload changed how they are signed)."""
        self._built = BoundedCache(HEADERS_CACHE_SIZE, clock=self._clock)

    def settled(self, headers: Mapping[str, str]) -> Principal | None:
        """The principal `of` would return for a request with these headers, when it is known
        without any I/O: a bearer token's verified already, or a session's
        (SessionLayer.settled) whose Principal was built already. None otherwise (the caller
        then asks `of`)."""
        if self._bearer is not None:
            token = bearer_token_in(headers)
            if token is not None:
                principal = self._bearer.settled(token)
                return principal if principal is not None and principal.scopes is not None \
                    else None
        session = self._sessions.settled(headers.get("Cookie", ""))
        if session is None:
            return None
        return self._built.get((session.sid, session.tokens_expire_at))

    async def of(self, request: web.Request) -> Principal | None:
        """The request's principal; InvalidBearerToken for a bearer token that fails."""
        if self._bearer is not None:
            token = bearer_token(request)
            if token is not None:
                principal = await self._bearer.principal(token)
                if principal.scopes is None:
                    principal = replace(principal, scopes=token_scopes(token))
                return principal
        session = await self._sessions.session(request)
        if session is None:
            return None
        key = (session.sid, session.tokens_expire_at)
        cached = self._built.get(key)
        if cached is None:
            headers = self._headers.build(session.identity, access_token=session.access_token,
                                          exp=session.tokens_expire_at)
            cached = Principal("session", session.identity, session.tokens_expire_at,
                               headers, session.sid, self._sessions.renewal(session),
                               token_scopes(session.access_token))
            self._built.put(key, cached, expires_at=session.tokens_expire_at)
        return cached
