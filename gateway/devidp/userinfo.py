"""GET /oauth2/userInfo: the signed-in user's attributes, narrowed by the access token's scopes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import jwt
from aiohttp import web

from gateway.devidp.responses import json_response
from gateway.devidp.state import IdpState, state_of

if TYPE_CHECKING:
    from gateway.devidp.model import User

_BAD_REQUEST = (
    'error="invalid_request", error_description="Bad OAuth2 request at UserInfo Endpoint"'
)
_BAD_TOKEN = (
    'error="invalid_token", error_description="Access token is expired, disabled, or deleted, '
    'or the user has globally signed out."'
)
_SCOPED = ("email", "phone", "profile")


async def userinfo(request: web.Request) -> web.Response:
    """GET /oauth2/userInfo with `Authorization: Bearer <access token>`.

    No bearer token: 400 invalid_request. A token that is not a live access token of this
    pool (bad signature, unknown kid, expired, revoked, an ID token, or without the openid
    scope): 401 invalid_token. Both carry the error only in `WWW-Authenticate`.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return web.Response(status=400, headers={"WWW-Authenticate": _BAD_REQUEST})
    st = state_of(request)
    claims = _live_access_claims(st, token.strip())
    user = st.pool.user(str(claims.get("username", ""))) if claims is not None else None
    if claims is None or user is None:
        # A token without openid is refused like an invalid one (UNCONFIRMED: Cognito's exact
        # answer for a scope-less token is not documented; RFC 6750 would say 403).
        return web.Response(status=401, headers={"WWW-Authenticate": _BAD_TOKEN})
    return json_response(user_claims(user, str(claims["scope"]).split()))


def user_claims(user: User, scopes: list[str]) -> dict[str, str]:
    """userInfo's body: sub, username and the attributes the scopes allow.

    openid alone returns every attribute; with email, phone or profile each adds only its own
    attributes (profile: everything but email and phone, custom:* included). Verified flags
    are the strings "true"/"false".
    """
    everything = not any(s in scopes for s in _SCOPED)
    body = {"sub": user.subject}
    for name, value in user.attributes.items():
        scope = "phone" if name.startswith("phone_number") else "profile"
        if everything or scope in scopes:
            body[name] = value
    if user.email is not None and (everything or "email" in scopes):
        body["email"] = user.email
        body["email_verified"] = "true" if user.email_verified else "false"
    if user.identities and (everything or "profile" in scopes):
        # userInfo carries identities as a JSON string, like its other non-string attributes.
        body["identities"] = json.dumps(user.identities, separators=(",", ":"))
    body["username"] = user.username
    return body


def _live_access_claims(st: IdpState, token: str) -> dict[str, Any] | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        return None
    if kid != st.keys.access.kid:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            st.keys.access.public_key,
            algorithms=["RS256"],
            issuer=st.issuer,
            options={"require": ["exp", "iat", "token_use"], "verify_exp": False,
                     "verify_iat": False},
        )
    except jwt.InvalidTokenError:
        return None
    if (
        not isinstance(claims["exp"], (int, float))
        or st.now() >= claims["exp"]  # on the IdP's clock, which a test may move
        or claims.get("token_use") != "access"
        or "openid" not in str(claims.get("scope", "")).split()
        or claims.get("origin_jti") in st.grants.revoked_origins
    ):
        return None
    return claims
