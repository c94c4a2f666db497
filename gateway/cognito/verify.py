"""Token verification rules (AWS's checklist and aws-jwt-verify's, for Cognito and generic OIDC).

Every token: three parts, header alg RS256 (never `none`, never HMAC), a string kid found in the
provider's JWKS, a valid signature, `iss` equal to the issuer, `exp` not passed and `nbf`/`iat`
not in the future (with `leeway`, on the gateway's clock).
ID tokens: `aud` contains the client id (and `azp` equals it when several audiences), `nonce`
matches the sign-in's. Access tokens carry no `aud` at Cognito: `client_id` must be one of the
accepted clients. With a Cognito issuer, `token_use` must be "id" or "access" as expected.
Failures raise TokenValidationError with a bounded `reason` and count in
`token_validation_failures_total`.
"""

from __future__ import annotations

import hmac
from typing import Any

import jwt

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.cognito.jwks import JWKSCache
from gateway.errors import TokenValidationError
from gateway.observability.metrics import Metrics

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

    def __init__(self, jwks: JWKSCache, *, issuer: str, client_id: str,
                 bearer_client_ids: frozenset[str], cognito: bool, metrics: Metrics,
                 leeway: float = 30.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._jwks = jwks
        self._issuer = issuer
        self._client_id = client_id
        self._bearer_client_ids = bearer_client_ids
        self._cognito = cognito
        self._metrics = metrics
        self._leeway = leeway

    async def verify_id_token(self, token: str, *, nonce: str | None) -> Claims:
        """Claims of a valid ID token for our client; `nonce` must match when given."""
        try:
            claims = await self._decode(token, audience=self._client_id)
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

    async def _decode(self, token: str, *, audience: str | None) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenValidationError("malformed", "not a JWT") from None
        kid, alg = header.get("kid"), header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise TokenValidationError("unsupported_alg", f"alg {alg!r} is not accepted")
        if not isinstance(kid, str):
            raise TokenValidationError("malformed", "header has no kid")
        key = await self._jwks.get(kid)
        if key.algorithm_name and key.algorithm_name != alg:
            raise TokenValidationError("unsupported_alg", "JWK alg differs from the header's")
        required = ["exp", "iat", "iss", "sub"] + (["aud"] if audience else [])
        try:
            claims: Claims = jwt.decode(
                token, key=key, algorithms=ALGORITHMS, issuer=self._issuer, audience=audience,
                leeway=self._leeway, options={
                    "require": required, "verify_aud": bool(audience), "verify_exp": False,
                    "verify_nbf": False, "verify_iat": False})
        except jwt.PyJWTError as exc:
            raise TokenValidationError(_reason(exc), str(exc)) from None
        self._check_times(claims)
        return claims

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
