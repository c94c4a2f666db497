"""Minting ID and access tokens with Cognito's claim sets."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.devidp.grants import SignIn
    from gateway.devidp.keys import SigningKeys
    from gateway.devidp.model import AppClient, User


@dataclass(frozen=True)
class IssuedTokens:
    """An access token, and an ID token when the openid scope was granted."""

    access_token: str
    id_token: str | None


def mint_user_tokens(
    *,
    issuer: str,
    keys: SigningKeys,
    user: User,
    client: AppClient,
    sign_in: SignIn,
    origin_jti: str,
    include_nonce: bool,
    now: float,
) -> IssuedTokens:
    """Access token (always) and ID token (with openid) for a signed-in user, issued at `now`."""
    now = int(now)
    groups = {"cognito:groups": list(user.groups)} if user.groups else {}
    access_claims: dict[str, Any] = {
        "sub": user.subject,
        **groups,
        "iss": issuer,
        "version": 2,
        "client_id": client.client_id,
        "origin_jti": origin_jti,
        "event_id": sign_in.event_id,
        "token_use": "access",
        "scope": " ".join(sign_in.scopes),
        "auth_time": sign_in.auth_time,
        "exp": now + client.access_token_validity_seconds,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "username": user.username,
    }
    access_token = keys.access.sign(access_claims)
    if "openid" not in sign_in.scopes:
        return IssuedTokens(access_token=access_token, id_token=None)
    id_claims: dict[str, Any] = {
        "at_hash": _at_hash(access_token),
        "sub": user.subject,
        **groups,
        "iss": issuer,
        "cognito:username": user.username,
        "origin_jti": origin_jti,
        "aud": client.client_id,
        "event_id": sign_in.event_id,
        "token_use": "id",
        "auth_time": sign_in.auth_time,
        "exp": now + client.id_token_validity_seconds,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    if include_nonce and sign_in.nonce is not None:
        id_claims["nonce"] = sign_in.nonce
    # The ID token carries every attribute the user has, whatever the scopes; scopes only
    # narrow what /oauth2/userInfo returns.
    if user.email is not None:
        id_claims["email"] = user.email
        id_claims["email_verified"] = user.email_verified
    id_claims.update(user.attributes)
    if user.identities:
        id_claims["identities"] = [dict(identity) for identity in user.identities]
    return IssuedTokens(access_token=access_token, id_token=keys.id.sign(id_claims))


def mint_client_token(
    *, issuer: str, keys: SigningKeys, client: AppClient, scopes: tuple[str, ...], now: float
) -> str:
    """A client_credentials access token: sub is the client id and there is no username."""
    now = int(now)
    claims: dict[str, Any] = {
        "sub": client.client_id,
        "token_use": "access",
        "scope": " ".join(scopes),
        # auth_time and version are not in the reference's list but appear in real
        # client_credentials tokens; verifiers ignore claims they do not know.
        "auth_time": now,
        "iss": issuer,
        "exp": now + client.access_token_validity_seconds,
        "iat": now,
        "version": 2,
        "jti": str(uuid.uuid4()),
        "client_id": client.client_id,
    }
    return keys.access.sign(claims)


def _at_hash(access_token: str) -> str:
    """OIDC at_hash: base64url of the left half of SHA-256 of the access token."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
