"""API clients' `Authorization: Bearer <Cognito access token>`, verified and remembered.

A token is verified once (signature by kid, issuer, expiry, `token_use`, `client_id` in
`auth.bearer_client_ids`; see cognito/verify.py), then its principal is remembered by the
token's hash until the token expires, so an API client's steady stream of requests costs one
verification.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway.auth.principal import Principal
from gateway.cache import BoundedCache
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import InvalidBearerToken, TokenValidationError
from gateway.identity import Identity

if TYPE_CHECKING:
    from gateway.auth.headers import IdentityHeaders

Verify = Callable[[str], Awaitable[dict[str, Any]]]
CACHE_SIZE = 4096  # verified tokens remembered, least recently used evicted


class BearerTokens:
    """Principals of `Authorization: Bearer` access tokens, verified once and cached.

    A token's principal is kept in a bounded cache until the token expires; `forget()` empties
    the cache when the identity headers change.
    """

    def __init__(self, verify: Verify, headers: IdentityHeaders, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._verify = verify
        self._headers = headers
        self._clock = clock
        self._verified: BoundedCache[str, Principal] = BoundedCache(CACHE_SIZE, clock=clock)

    def forget(self) -> None:
        """Verify and build every token's principal again (a reload changed its headers)."""
        self._verified = BoundedCache(CACHE_SIZE, clock=self._clock)

    def settled(self, token: str) -> Principal | None:
        """The token's principal when it was verified already (and has not expired); None
        when `principal` has yet to verify it."""
        return self._verified.get(hashlib.sha256(token.encode()).hexdigest())

    async def principal(self, token: str) -> Principal:
        """The token's principal; InvalidBearerToken when it does not verify."""
        key = hashlib.sha256(token.encode()).hexdigest()
        known = self._verified.get(key)
        if known is not None:
            return known
        try:
            claims = await self._verify(token)
        except TokenValidationError as exc:
            raise InvalidBearerToken(exc.reason) from exc
        identity = Identity.from_claims(claims)
        expires_at = float(claims["exp"])
        principal = Principal("bearer", identity, expires_at, self._headers.build(
            identity, access_token=token, exp=expires_at),
            scopes=frozenset(str(claims.get("scope", "")).split()))
        self._verified.put(key, principal, expires_at=expires_at)
        return principal
