"""POST /oauth2/token: the authorization_code, refresh_token and client_credentials grants.

Checks run in this order: grant_type present and known, client authentication, the grant
enabled on the client, the grant's own parameters, then the code or refresh token itself.
Every response carries `Access-Control-Allow-Origin: *` and `x-amz-cognito-request-id`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from typing import TYPE_CHECKING

from gateway.devidp.clientauth import ClientAuthError, authenticate_client
from gateway.devidp.grants import RefreshGrant
from gateway.devidp.responses import json_response, oauth_error
from gateway.devidp.state import IdpState, state_of
from gateway.devidp.tokens import mint_client_token, mint_user_tokens

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiohttp import web

    from gateway.devidp.faults import Handler
    from gateway.devidp.model import AppClient

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
_NO_STORE = {
    "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
    "Pragma": "no-cache",
}


class TokenError(Exception):
    """A token request refused with an OAuth error code (and Cognito's description, if any)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.description = description


def counting(handler: Handler) -> Handler:
    """Count every call by its grant_type (as sent; '' when missing), before any fault."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        grant_type = form.get("grant_type", "")
        state_of(request).token_requests[grant_type if isinstance(grant_type, str) else ""] += 1
        return await handler(request)

    return wrapped


async def token(request: web.Request) -> web.Response:
    """POST /oauth2/token."""
    headers = {"Access-Control-Allow-Origin": "*", "x-amz-cognito-request-id": str(uuid.uuid4())}
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    try:
        body = _grant(state_of(request), request.headers.get("Authorization"), form)
    except TokenError as exc:
        return oauth_error(exc.error, exc.description, headers=headers)
    return json_response(body, headers={**headers, **_NO_STORE})


def _grant(st: IdpState, authorization: str | None, form: Mapping[str, str]) -> dict[str, object]:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise TokenError("invalid_request")
    if grant_type not in GRANT_TYPES:
        raise TokenError("unsupported_grant_type")
    try:
        client = authenticate_client(st.pool, authorization, form)
    except ClientAuthError as exc:
        raise TokenError(exc.error) from exc
    if grant_type == "authorization_code":
        return _authorization_code(st, client, form)
    if grant_type == "refresh_token":
        return _refresh_token(st, client, form)
    return _client_credentials(st, client, form)


def _authorization_code(
    st: IdpState, client: AppClient, form: Mapping[str, str]
) -> dict[str, object]:
    if "code" not in client.allowed_flows:
        raise TokenError("unauthorized_client")
    code, redirect_uri = form.get("code"), form.get("redirect_uri")
    if not code or not redirect_uri:
        raise TokenError("invalid_request")
    # Consumed at its first presentation, whatever the outcome: a retry after any failure
    # gets invalid_grant (UNCONFIRMED whether Cognito burns a code on a failed exchange).
    record = st.grants.take_code(code)
    if (
        record is None
        or record.sign_in.client_id != client.client_id
        or st.now() >= record.expires_at
    ):
        raise TokenError("invalid_grant")
    if redirect_uri != record.redirect_uri:
        raise TokenError("unauthorized_client", "invalid_redirect")
    if record.code_challenge is not None and not _pkce_matches(
        form.get("code_verifier"), record.code_challenge
    ):
        # A wrong or missing verifier: invalid_grant is likely but UNCONFIRMED for Cognito.
        raise TokenError("invalid_grant")
    user = st.pool.user(record.sign_in.username)
    if user is None:
        raise TokenError("invalid_grant")
    origin_jti = str(uuid.uuid4())
    issued = mint_user_tokens(
        issuer=st.issuer,
        keys=st.keys,
        user=user,
        client=client,
        sign_in=record.sign_in,
        origin_jti=origin_jti,
        include_nonce=True,
        now=st.now(),
    )
    refresh_token = st.grants.add_refresh(
        RefreshGrant(
            sign_in=record.sign_in,
            origin_jti=origin_jti,
            expires_at=st.now() + client.refresh_token_validity_seconds,
            grace_seconds=client.rotation_grace_seconds,
        )
    )
    body: dict[str, object] = {}
    if issued.id_token is not None:
        body["id_token"] = issued.id_token
    body |= {
        "access_token": issued.access_token,
        "refresh_token": refresh_token,
        "expires_in": client.access_token_validity_seconds,
        "token_type": "Bearer",
    }
    return body


def _refresh_token(st: IdpState, client: AppClient, form: Mapping[str, str]) -> dict[str, object]:
    # Refresh tokens come only from the code flow; a client without it cannot hold one.
    if "code" not in client.allowed_flows:
        raise TokenError("unauthorized_client")
    presented = form.get("refresh_token")
    if not presented:
        raise TokenError("invalid_request")
    now = st.now()
    grant = st.grants.live_refresh(presented, now)
    if grant is None or grant.sign_in.client_id != client.client_id:
        raise TokenError("invalid_grant")
    user = st.pool.user(grant.sign_in.username)
    if user is None:
        raise TokenError("invalid_grant")
    issued = mint_user_tokens(
        issuer=st.issuer,
        keys=st.keys,
        user=user,
        client=client,
        sign_in=grant.sign_in,
        origin_jti=grant.origin_jti,
        # A refreshed ID token carries no nonce: the nonce belonged to the authorize request.
        include_nonce=False,
        now=st.now(),
    )
    body: dict[str, object] = {}
    if issued.id_token is not None:
        body["id_token"] = issued.id_token
    body["access_token"] = issued.access_token
    if client.refresh_token_rotation:
        # The new refresh token gets a full lifetime from now (UNCONFIRMED: Cognito might keep
        # the original expiry); the presented one survives only the retry grace period.
        if grant.retired_at is None:
            grant.retired_at = now
        body["refresh_token"] = st.grants.add_refresh(
            RefreshGrant(
                sign_in=grant.sign_in,
                origin_jti=grant.origin_jti,
                expires_at=now + client.refresh_token_validity_seconds,
                grace_seconds=client.rotation_grace_seconds,
            )
        )
    body |= {"expires_in": client.access_token_validity_seconds, "token_type": "Bearer"}
    return body


def _client_credentials(
    st: IdpState, client: AppClient, form: Mapping[str, str]
) -> dict[str, object]:
    if "client_credentials" not in client.allowed_flows:
        raise TokenError("unauthorized_client")
    custom = [s for s in client.allowed_scopes if "/" in s]
    requested = form.get("scope")
    if requested is None or not requested.strip():
        scopes = tuple(custom)
    else:
        scopes = tuple(dict.fromkeys(requested.split()))
        # Only custom scopes the client is allowed; openid and the other standard scopes fail.
        if any(s not in custom for s in scopes):
            raise TokenError("invalid_scope")
    if not scopes:
        raise TokenError("invalid_scope")
    access_token = mint_client_token(issuer=st.issuer, keys=st.keys, client=client, scopes=scopes,
                                     now=st.now())
    return {
        "access_token": access_token,
        "expires_in": client.access_token_validity_seconds,
        "token_type": "Bearer",
    }


def _pkce_matches(verifier: str | None, challenge: str) -> bool:
    if not verifier:
        return False
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(computed, challenge)
