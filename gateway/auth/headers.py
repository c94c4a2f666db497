"""Identity headers for the upstream, built from verified claims only.

The proxy removes every incoming header of these families before adding them (see
gateway/forwarding.py), so a client can never forge one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.auth.alb import AlbDataSigner
    from gateway.config import HeadersSettings
    from gateway.identity import Identity


class IdentityHeaders:
    """Builds the configured header sets (x-auth-request, alb) for an identity."""

    def __init__(self, settings: HeadersSettings, alb: AlbDataSigner | None) -> None:
        self._auth_request = "x-auth-request" in settings.sets
        self._alb = alb if "alb" in settings.sets else None
        self._pass_access_token = settings.pass_access_token
        self._pass_unverified_email = settings.pass_unverified_email

    def use_signer(self, alb: AlbDataSigner) -> None:
        """Sign `x-amzn-oidc-data` with `alb` from now on (a reload rotated the session key)."""
        if self._alb is not None:
            self._alb = alb

    def build(self, identity: Identity, *, access_token: str | None,
              exp: float) -> dict[str, str]:
        """The headers for `identity`, valid until `exp` (callers cache them per token)."""
        headers: dict[str, str] = {}
        if self._auth_request:
            headers["X-Auth-Request-User"] = identity.username
            headers["X-Auth-Request-Sub"] = identity.sub
            if identity.email and (identity.email_verified or self._pass_unverified_email):
                headers["X-Auth-Request-Email"] = identity.email
            if identity.groups:
                headers["X-Auth-Request-Groups"] = ",".join(identity.groups)
            if self._pass_access_token and access_token:
                headers["X-Auth-Request-Access-Token"] = access_token
        if self._alb is not None:
            headers["X-Amzn-Oidc-Identity"] = identity.sub
            headers["X-Amzn-Oidc-Data"] = self._alb.assertion(identity, exp=int(exp))
            if self._pass_access_token and access_token:
                headers["X-Amzn-Oidc-Accesstoken"] = access_token
        return headers
