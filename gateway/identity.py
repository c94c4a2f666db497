"""Who signed in: the identity taken from verified token claims.

Only verified claims become an Identity. Email is optional (federated users may have none), and
`email_verified` says whether the IdP confirmed the user owns it (a boolean in ID tokens, the
string "true" in Cognito's userInfo): an unverified email can be anyone's. The user name falls
back from `cognito:username` to `username` to `preferred_username` to `sub`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Protocol claims that say nothing about the user and only bloat the session.
_PROTOCOL_CLAIMS = frozenset({
    "aud", "iss", "exp", "iat", "nbf", "auth_time", "token_use", "jti", "origin_jti",
    "event_id", "at_hash", "c_hash", "nonce", "azp", "sid", "acr", "amr", "client_id", "scope",
    "version", "cognito:roles", "cognito:preferred_role", "identities", "device_key",
})


@dataclass(frozen=True)
class Identity:
    """Who signed in, read from the ID token's claims (or an access token's)."""

    sub: str
    username: str
    email: str | None = None
    email_verified: bool = False
    groups: tuple[str, ...] = ()
    claims: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Identity:
        """Identity of verified ID-token or access-token claims."""
        sub = str(claims["sub"])
        username = next((str(claims[k]) for k in ("cognito:username", "username",
                                                   "preferred_username") if claims.get(k)), sub)
        email = claims.get("email")
        groups = claims.get("cognito:groups", claims.get("groups", []))
        if isinstance(groups, str):
            groups = [groups]
        user_claims = {k: v for k, v in claims.items() if k not in _PROTOCOL_CLAIMS}
        verified = claims.get("email_verified")
        return cls(sub=sub, username=username, email=email if isinstance(email, str) else None,
                   email_verified=verified is True or verified == "true",
                   groups=tuple(str(g) for g in groups if isinstance(g, str)), claims=user_claims)

    def to_dict(self) -> dict[str, Any]:
        return {"sub": self.sub, "username": self.username, "email": self.email,
                "email_verified": self.email_verified, "groups": list(self.groups),
                "claims": self.claims}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(sub=data["sub"], username=data["username"], email=data.get("email"),
                   email_verified=data.get("email_verified") is True,
                   groups=tuple(data.get("groups", ())), claims=dict(data.get("claims", {})))
