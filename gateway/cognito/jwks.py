"""An asynchronous JWKS cache, following aws-jwt-verify's rules for tokens that clients present.

Keys are cached by kid with no TTL. An unknown kid triggers one refetch; concurrent refetches
share one request; after a refetch that still lacks the kid, further refetches wait
`UNKNOWN_KID_BACKOFF` seconds (a token with a made-up kid cannot make the gateway hammer the IdP).
A fetch that fails blocks refetches for `FAILURE_BACKOFF` seconds, doubling with each failure
up to `MAX_FAILURE_BACKOFF`, while the cached keys keep verifying tokens: unauthenticated load
never reaches a struggling IdP as more than one fetch per window.

Tokens the gateway received itself, in a token-endpoint response (`get(kid, issued=True)`),
are different: their kid is the IdP's, not a client's invention, so an unknown one means the IdP
rotated its keys. Such a kid loads the key set once whatever the blocks above say, at most once
per kid every `ISSUED_KID_RELOAD` seconds (the sign-ins and refreshes that follow a rotation
share that fetch). No client can reach that path: a forged kid stays rate limited, and a burst
of them can no longer keep a rotated key out.

Only RSA/EC signing keys (`use` absent or "sig") are kept.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import jwt

from gateway.cache import BoundedCache
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.cognito.http import fetch_json
from gateway.errors import JWKSError, TokenValidationError
from gateway.observability.tracing import TRACING_OFF, Tracing

if TYPE_CHECKING:
    import aiohttp

    from gateway.observability.metrics import Metrics

UNKNOWN_KID_BACKOFF = 10.0
FAILURE_BACKOFF = 1.0
MAX_FAILURE_BACKOFF = 60.0
ISSUED_KID_RELOAD = 5.0
ISSUED_KIDS_REMEMBERED = 64  # kids of the IdP's own tokens that reloaded the key set lately


class JWKSCache:
    """Signing keys of one provider, fetched with aiohttp (never blocking the loop)."""

    def __init__(self, http: aiohttp.ClientSession, uri: str, metrics: Metrics, *,
                 clock: Clock = SYSTEM_CLOCK, tracing: Tracing = TRACING_OFF) -> None:
        self._http = http
        self._tracing = tracing
        self._clock = clock
        self._uri = uri
        self._metrics = metrics
        self._keys: dict[str, jwt.PyJWK] = {}  # bounded by the IdP's key set
        self._inflight: asyncio.Task[None] | None = None
        self._blocked_until = 0.0
        self._failure_delay = 0.0
        self._issued_reloads: BoundedCache[str, bool] = BoundedCache(
            ISSUED_KIDS_REMEMBERED, clock=clock)

    @property
    def loaded(self) -> bool:
        return bool(self._keys)

    async def refresh(self) -> None:
        """Fetch the key set now (shared with any fetch already in flight)."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch())
        task = self._inflight
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._inflight is task:
                self._inflight = None

    async def get(self, kid: str, *, issued: bool = False) -> jwt.PyJWK:
        """The key with this kid, refetching once for an unknown kid.

        A client's token (`issued` False): TokenValidationError (unknown_kid) when the key set
        lacks the kid, JWKSError when it could not be fetched (now, or recently: the failure
        backoff is running). A token from the token endpoint (`issued`): see `_issued_key`.
        """
        key = self._keys.get(kid)
        if key is not None:
            return key
        if issued:
            return await self._issued_key(kid)
        if self._clock.time() >= self._blocked_until or self._inflight is not None:
            await self.refresh()
            key = self._keys.get(kid)
            if key is not None:
                return key
            self._blocked_until = max(self._blocked_until,
                                      self._clock.time() + UNKNOWN_KID_BACKOFF)
        elif self._failure_delay:
            raise JWKSError("the signing keys could not be fetched; retrying later",
                            reason="backoff")
        raise TokenValidationError("unknown_kid", "no signing key with this kid")

    async def _issued_key(self, kid: str) -> jwt.PyJWK:
        """The key of a token the IdP just issued: a fetch in flight is joined, and unless this
        kid reloaded the key set in the last ISSUED_KID_RELOAD seconds, it is reloaded now
        (a fetch in flight may have been sent before the IdP rotated). JWKSError when the key
        cannot be had: the fetch failed, or the IdP does not publish the kid (yet)."""
        if self._inflight is not None:
            await self.refresh()
            key = self._keys.get(kid)
            if key is not None:
                return key
        if self._issued_reloads.get(kid) is None:
            self._issued_reloads.put(kid, True,
                                     expires_at=self._clock.time() + ISSUED_KID_RELOAD)
            await self.refresh()
            key = self._keys.get(kid)
            if key is not None:
                return key
        raise JWKSError("the identity provider's key set has no key with the kid of a token "
                        "it just issued (yet)", reason="unknown_kid")

    async def _fetch(self) -> None:
        with self._tracing.client_span("cognito.jwks") as span:
            try:
                keys = await self._fetch_keys()
            except JWKSError as exc:
                span.set_outcome(exc.reason)
                self._metrics.jwks_fetches.labels(outcome=exc.reason).inc()
                self._failure_delay = min(max(self._failure_delay * 2, FAILURE_BACKOFF),
                                          MAX_FAILURE_BACKOFF)
                self._blocked_until = self._clock.time() + self._failure_delay
                raise
            span.set_outcome("ok")
        self._metrics.jwks_fetches.labels(outcome="ok").inc()
        self._failure_delay = 0.0
        self._keys = keys

    async def _fetch_keys(self) -> dict[str, jwt.PyJWK]:
        """The usable signing keys at the JWKS URI; JWKSError when there are none."""
        doc = await fetch_json(self._http, self._uri, error=JWKSError)
        keys = {}
        for jwk in doc.get("keys", []):
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            if jwk.get("use", "sig") != "sig" or jwk.get("kty") not in {"RSA", "EC"}:
                continue
            try:
                keys[jwk["kid"]] = jwt.PyJWK.from_dict(jwk)
            except jwt.PyJWTError:
                continue
        if not keys:
            raise JWKSError(f"{self._uri} holds no usable signing key", reason="malformed")
        return keys
