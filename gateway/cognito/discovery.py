"""Provider metadata: endpoints from `<issuer>/.well-known/openid-configuration`.

Cognito's document has no code_challenge_methods_supported and no grant_types_supported, so
fields are read additively: only issuer, authorization/token endpoints and jwks_uri are required.
A configured hosted-UI `domain` replaces the discovered hosted-UI endpoints (custom domains).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.cognito.http import fetch_json
from gateway.errors import DiscoveryError

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True)
class ProviderMetadata:
    """The endpoints of the IdP, from its OpenID discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    revocation_endpoint: str | None
    end_session_endpoint: str | None

    @classmethod
    def from_document(cls, doc: dict[str, Any], *, expected_issuer: str) -> ProviderMetadata:
        """Validate a discovery document; the issuer must equal the configured one exactly."""
        missing = [k for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
                   if not isinstance(doc.get(k), str) or not doc[k]]
        if missing:
            raise DiscoveryError(f"discovery document lacks {', '.join(missing)}",
                                 reason="malformed")
        if doc["issuer"].rstrip("/") != expected_issuer.rstrip("/"):
            raise DiscoveryError(
                f"discovery issuer {doc['issuer']!r} differs from the configured issuer "
                f"{expected_issuer!r}", reason="issuer_mismatch")

        def optional(key: str) -> str | None:
            value = doc.get(key)
            return value if isinstance(value, str) and value else None

        return cls(issuer=doc["issuer"], authorization_endpoint=doc["authorization_endpoint"],
                   token_endpoint=doc["token_endpoint"], jwks_uri=doc["jwks_uri"],
                   userinfo_endpoint=optional("userinfo_endpoint"),
                   revocation_endpoint=optional("revocation_endpoint"),
                   end_session_endpoint=optional("end_session_endpoint"))

    def with_domain(self, domain: str) -> ProviderMetadata:
        """Hosted-UI endpoints on `domain` (Cognito's paths), issuer and JWKS unchanged."""
        base = domain.rstrip("/")
        return ProviderMetadata(
            issuer=self.issuer, jwks_uri=self.jwks_uri,
            authorization_endpoint=f"{base}/oauth2/authorize",
            token_endpoint=f"{base}/oauth2/token", userinfo_endpoint=f"{base}/oauth2/userInfo",
            revocation_endpoint=f"{base}/oauth2/revoke",
            end_session_endpoint=f"{base}/logout")


async def discover(http: aiohttp.ClientSession, issuer: str, domain: str = "") -> ProviderMetadata:
    """Fetch and validate the provider's metadata."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    doc = await fetch_json(http, url, error=DiscoveryError)
    metadata = ProviderMetadata.from_document(doc, expected_issuer=issuer)
    return metadata.with_domain(domain) if domain else metadata
