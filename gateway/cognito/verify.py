"""Token verification rules (AWS's checklist and aws-jwt-verify's, for Cognito and generic OIDC).

Every token: three parts, header alg RS256 (never `none`, never HMAC), a string kid found in the
provider's JWKS, a valid signature, `iss` equal to the issuer, `exp` not passed and `nbf`/`iat`
not in the future (with `leeway`, on the gateway's clock).
ID tokens: `aud` contains the client id (and `azp` equals it when several audiences), `nonce`
matches the sign-in's. Access tokens carry no `aud` at Cognito: `client_id` must be one of the
accepted clients. With a Cognito issuer, `token_use` must be "id" or "access" as expected.
Failures raise TokenValidationError with a bounded `reason` and count in
`token_validation_failures_total`.

ID tokens reach the gateway only in token-endpoint responses (the sign-in's code exchange, a
refresh), over the gateway's own connection to the IdP. So an ID token's unknown kid reloads the
key set at once (JWKSCache.get with `issued`), whatever a burst of forged kids did to the
cache. When the signing key still cannot be had (the JWKS endpoint failing, or the IdP not
publishing the kid yet) and that connection is authenticated (https with a verified
certificate, or loopback), the channel stands in for the signature, as OpenID Connect Core
3.1.3.7 allows for tokens received directly from the token endpoint: every claim is checked
as usual and the acceptance is logged (`id_token_key_unavailable`). A signature that a known
key rejects is never accepted. Without an authenticated channel the key's absence is
JWKSError: an IdP failure, to be retried, never a verdict on the token.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jwt

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import JWKSError, TokenValidationError
from gateway.observability.logging import get_logger

if TYPE_CHECKING:
    from gateway.cognito.jwks import JWKSCache
    from gateway.observability.metrics import Metrics

log = get_logger(__name__)

ALGORITHMS = ["RS256"]
Claims = dict[str, Any]

_PYJWT_REASONS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAlgorithmError, "unsupported_alg"),
]


class TokenVerifier:
    """Verifies ID and access tokens of one provider for one app client."""

    def __init__(self, jwks: JWKSCache, *, issuer: str, client_id: str,  # noqa: PLR0913 - keyword options
                 bearer_client_ids: frozenset[str], cognito: bool, metrics: Metrics,
                 leeway: float = 30.0, clock: Clock = SYSTEM_CLOCK,
                 token_channel_authenticated: bool = False) -> None:
        self._clock = clock
        self._channel_authenticated = token_channel_authenticated
        self._jwks = jwks
        self._issuer = issuer
        self._client_id = client_id
        self._bearer_client_ids = bearer_client_ids
        self._cognito = cognito
        self._metrics = metrics
        self._leeway = leeway

    async def verify_id_token(self, token: str, *, nonce: str | None) -> Claims:
        """Claims of a valid ID token for our client, received from the token endpoint;
        `nonce` must match when given. JWKSError when its key cannot be had and the channel
        cannot stand in for the signature (see the module docstring)."""
        try:
            claims = await self._decode(token, audience=self._client_id, issued=True)
            self._check_token_use(claims, "id")
            aud = claims.get("aud")
            if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self._client_id:
                raise TokenValidationError("wrong_audience", "azp is not this client")
            if nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
                raise TokenValidationError("nonce_mismatch", "nonce does not match the sign-in")
        except TokenValidationError as exc:
            self._metrics.token_validation_failures.labels(reason=exc.reason).inc()
            raise
        return claims

    async def verify_access_token(self, token: str) -> Claims:
        """Claims of a valid access token issued to one of the accepted app clients."""
        try:
            claims = await self._decode(token, audience=None)
            self._check_token_use(claims, "access")
            client = claims.get("client_id")
            if not isinstance(client, str) or client not in self._bearer_client_ids:
                raise TokenValidationError("wrong_client", "token was issued to another client")
        except TokenValidationError as exc:
            self._metrics.token_validation_failures.labels(reason=exc.reason).inc()
            raise
        return claims

    def _check_token_use(self, claims: Claims, expected: str) -> None:
        if self._cognito and claims.get("token_use") != expected:
            raise TokenValidationError("wrong_token_use", f"token_use is not {expected!r}")

    async def _decode(self, token: str, *, audience: str | None,
                      issued: bool = False) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenValidationError("malformed", "not a JWT") from None
        kid, alg = header.get("kid"), header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise TokenValidationError("unsupported_alg", f"alg {alg!r} is not accepted")
        if not isinstance(kid, str):
            raise TokenValidationError("malformed", "header has no kid")
        key = await self._key(kid, issued=issued)
        if key is not None and key.algorithm_name and key.algorithm_name != alg:
            raise TokenValidationError("unsupported_alg", "JWK alg differs from the header's")
        required = ["exp", "iat", "iss", "sub"] + (["aud"] if audience else [])
        try:
            claims: Claims = jwt.decode(
                token, key="" if key is None else key, algorithms=ALGORITHMS,
                issuer=self._issuer, audience=audience, leeway=self._leeway, options={
                    "verify_signature": key is not None, "verify_iss": True,
                    "require": required, "verify_aud": bool(audience), "verify_exp": False,
                    "verify_nbf": False, "verify_iat": False})
        except jwt.PyJWTError as exc:
            raise TokenValidationError(_reason(exc), str(exc)) from None
        self._check_times(claims)
        return claims

    async def _key(self, kid: str, *, issued: bool) -> jwt.PyJWK | None:
        """The signing key; None for an issued token whose key cannot be had over an
        authenticated channel (the channel stands in for the signature)."""
        try:
            return await self._jwks.get(kid, issued=issued)
        except JWKSError as exc:
            if not (issued and self._channel_authenticated):
                raise
            log.warning("id_token_key_unavailable", reason=exc.reason,
                        accepted_by="token_endpoint_channel")
            return None

    def _check_times(self, claims: Claims) -> None:
        """exp, nbf and iat against the gateway's clock (PyJWT would read the system's)."""
        now, leeway = self._clock.time(), self._leeway
        times = {name: claims.get(name) for name in ("exp", "nbf", "iat")}
        if any(value is not None and (not isinstance(value, (int, float))
                                      or isinstance(value, bool)) for value in times.values()):
            raise TokenValidationError("malformed", "a time claim is not a number")
        if now >= float(claims["exp"]) + leeway:
            raise TokenValidationError("expired", "the token has expired")
        if any(value is not None and now < float(value) - leeway
               for value in (times["nbf"], times["iat"])):
            raise TokenValidationError("not_yet_valid", "the token is not valid yet")


def _reason(exc: jwt.PyJWTError) -> str:
    for cls, reason in _PYJWT_REASONS:
        if isinstance(exc, cls):
            return reason
    return "malformed"


def authenticated_channel(url: str) -> bool:
    """True when a connection to `url` authenticates the server: https (aiohttp verifies the
    certificate) or a loopback host (the traffic never leaves the machine)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
