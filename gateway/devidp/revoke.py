"""POST /oauth2/revoke: revoke a refresh token and every token of its origin_jti."""

from __future__ import annotations

from aiohttp import web

from gateway.devidp.clientauth import ClientAuthError, authenticate_client
from gateway.devidp.responses import oauth_error
from gateway.devidp.state import state_of


async def revoke(request: web.Request) -> web.Response:
    """POST /oauth2/revoke with form `token=<refresh token>`.

    200 with an empty body on success, and also for an unknown, expired or already revoked
    token, or one issued to another client (which is left alone). 400 invalid_request when no
    client is named, the token is missing, or the client has revocation disabled;
    400 unsupported_token_type for a JWT (an access or ID token); 401 invalid_client when
    client authentication fails.
    """
    st = state_of(request)
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    try:
        client = authenticate_client(st.pool, request.headers.get("Authorization"), form)
    except ClientAuthError as exc:
        return oauth_error(exc.error, status=401 if exc.error == "invalid_client" else 400)
    token = form.get("token", "")
    if not token or not client.revocation_enabled:
        return oauth_error("invalid_request")
    if token.count(".") == 2:
        return oauth_error("unsupported_token_type")
    grant = st.grants.refresh.get(token)
    if grant is not None and grant.sign_in.client_id == client.client_id:
        st.grants.revoke_origin(grant.origin_jti)
    return web.Response(status=200)
