"""GET /oauth2/authorize: validate the request, then issue a code (or implicit tokens).

The same validation guards /login, so a sign-in form is only ever shown for a request that
could complete. `identity_provider` (a ProviderName, or COGNITO) and `idp_identifier` (one of
a provider's identifiers) choose where the user signs in: an external provider skips the
hosted UI and goes straight to that provider's (simulated) sign-in page, COGNITO goes to the
username and password form. A provider the pool does not have, or the app client does not
support, is refused with a 302 to the redirect_uri carrying error=invalid_request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from aiohttp import web

from gateway.devidp.grants import HOSTED_UI_SESSION_SECONDS, AuthorizationCode, SignIn
from gateway.devidp.providers import COGNITO, IdentityProvider, provider_sign_in_path
from gateway.devidp.responses import redirect
from gateway.devidp.state import IdpState, state_of
from gateway.devidp.tokens import mint_user_tokens

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.devidp.model import AppClient, User, UserPool

HOSTED_UI_COOKIE = "cognito"
_FLOW_OF_RESPONSE_TYPE = {"code": "code", "token": "implicit"}
# UNCONFIRMED: AWS documents federation failures at /authorize as
# error=invalid_request&error_description=..., not the description's text.
UNSUPPORTED_PROVIDER = "Login option is not available. Please try another one"


@dataclass(frozen=True)
class AuthorizeRequest:
    """A validated authorization request."""

    client: AppClient
    redirect_uri: str
    response_type: str
    state: str | None
    scopes: tuple[str, ...]
    code_challenge: str | None
    nonce: str | None
    prompt: str | None
    provider: IdentityProvider | None = None  # an external provider chosen by the request


def parse_authorize(st: IdpState, query: Mapping[str, str]) -> AuthorizeRequest | web.Response:
    """The validated request, or the error response Cognito gives for it.

    An unknown client or an unregistered redirect_uri never redirects to the app: it goes to
    the /error page. Every other problem is a 302 back to the redirect_uri with `error=`.
    """
    client = st.pool.client(query.get("client_id", ""))
    redirect_uri = query.get("redirect_uri", "")
    if client is None or redirect_uri not in client.callback_urls:
        return redirect(
            f"{st.base_url}/error?error=redirect_mismatch"
            f"&client_id={quote(query.get('client_id', ''), safe='')}"
        )
    app_state = query.get("state")

    def fail(error: str) -> web.Response:
        return error_redirect(redirect_uri, error, app_state)

    response_type = query.get("response_type", "")
    challenge = query.get("code_challenge")
    method = query.get("code_challenge_method")
    # An unknown response_type is "not formatted correctly" in Cognito's words: invalid_request.
    if response_type not in _FLOW_OF_RESPONSE_TYPE:
        return fail("invalid_request")
    # PKCE: a challenge needs method S256 (plain is rejected), and a method needs a challenge.
    if (challenge is None) != (method is None) or (method is not None and method != "S256"):
        return fail("invalid_request")
    if not client.enabled or _FLOW_OF_RESPONSE_TYPE[response_type] not in client.allowed_flows:
        return fail("unauthorized_client")
    scopes = resolve_scopes(st.pool, client, query.get("scope"))
    if scopes is None:
        # Documented form; Cognito has also been seen answering
        # error=invalid_request&error_description=invalid_scope (COMMUNITY).
        return fail("invalid_scope")
    chosen = chosen_provider(st.pool, client, query)
    if chosen is False:
        return error_redirect(redirect_uri, "invalid_request", app_state, UNSUPPORTED_PROVIDER)
    return AuthorizeRequest(
        client=client,
        redirect_uri=redirect_uri,
        response_type=response_type,
        state=app_state,
        scopes=scopes,
        code_challenge=challenge,
        nonce=query.get("nonce"),
        prompt=query.get("prompt"),
        provider=chosen if isinstance(chosen, IdentityProvider) else None,
    )


def chosen_provider(
    pool: UserPool, client: AppClient, query: Mapping[str, str]
) -> IdentityProvider | bool:
    """The external provider the request names; True for COGNITO or no choice; False when
    the choice is unknown to the pool or not supported by the client.

    identity_provider wins over idp_identifier when both are sent (UNCONFIRMED).
    """
    name = query.get("identity_provider")
    if name is not None:
        if name == COGNITO:
            return COGNITO in client.supported_identity_providers
        provider = pool.provider(name)
    elif "idp_identifier" in query:
        provider = pool.provider_by_identifier(query["idp_identifier"])
    else:
        return True
    if provider is None or provider.name not in client.supported_identity_providers:
        return False
    return provider


def resolve_scopes(
    pool: UserPool, client: AppClient, requested: str | None
) -> tuple[str, ...] | None:
    """The granted scopes, or None when the request is invalid_scope.

    No scope sent grants every scope the client is allowed. Known scopes the client is not
    allowed are dropped silently; a scope the pool does not know at all, or a request left
    with nothing granted, is invalid_scope.
    """
    if requested is None or not requested.strip():
        return tuple(client.allowed_scopes)
    names = list(dict.fromkeys(requested.split()))
    if any(name not in pool.known_scopes for name in names):
        return None
    granted = tuple(name for name in names if name in client.allowed_scopes)
    return granted or None


def error_redirect(
    redirect_uri: str, error: str, app_state: str | None, description: str | None = None
) -> web.Response:
    """302 to the app's redirect_uri with error=, error_description= and state= as given."""
    params = {"error": error}
    if description is not None:
        params["error_description"] = description
    if app_state is not None:
        params["state"] = app_state
    return redirect(_with_query(redirect_uri, params))


def complete_sign_in(
    st: IdpState, req: AuthorizeRequest, user: User, auth_time: int
) -> web.Response:
    """Finish a signed-in authorization: 302 with a code, or with tokens in the fragment."""
    sign_in = SignIn(
        username=user.username,
        client_id=req.client.client_id,
        scopes=req.scopes,
        auth_time=auth_time,
        event_id=str(uuid.uuid4()),
        nonce=req.nonce,
    )
    if req.response_type == "token":
        issued = mint_user_tokens(
            issuer=st.issuer,
            keys=st.keys,
            user=user,
            client=req.client,
            sign_in=sign_in,
            origin_jti=str(uuid.uuid4()),
            include_nonce=True,
            now=st.now(),
        )
        fragment = {"access_token": issued.access_token}
        if issued.id_token is not None:
            fragment["id_token"] = issued.id_token
        fragment |= {
            "token_type": "Bearer",
            "expires_in": str(req.client.access_token_validity_seconds),
        }
        if req.state is not None:
            fragment["state"] = req.state
        return redirect(f"{req.redirect_uri}#{urlencode(fragment)}")
    code = str(uuid.uuid4())
    st.grants.codes[code] = AuthorizationCode(
        sign_in=sign_in,
        redirect_uri=req.redirect_uri,
        code_challenge=req.code_challenge,
        expires_at=st.now() + req.client.auth_code_validity_seconds,
    )
    params = {"code": code}
    if req.state is not None:
        params["state"] = req.state
    return redirect(_with_query(req.redirect_uri, params))


def sign_in_with_session(
    request: web.Request, req: AuthorizeRequest, user: User
) -> web.Response:
    """A fresh hosted-UI session for `user` (its 1-hour cookie) and the redirect with a code."""
    st = state_of(request)
    auth_time = int(st.now())
    st.grants.close_session(request.cookies.get(HOSTED_UI_COOKIE))
    session_id = st.grants.open_session(user.username, auth_time)
    response = complete_sign_in(st, req, user, auth_time)
    response.set_cookie(
        HOSTED_UI_COOKIE,
        session_id,
        max_age=HOSTED_UI_SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Lax",
    )
    return response


async def authorize(request: web.Request) -> web.Response:
    """GET /oauth2/authorize."""
    st = state_of(request)
    req = parse_authorize(st, request.query)
    if isinstance(req, web.Response):
        return req
    if req.provider is not None:
        # Cognito "silently redirects your user to the sign-in page for that identity
        # provider", whatever hosted-UI session the browser has.
        relay_state = st.grants.begin_federation(req.provider.name,
                                                 request.rel_url.raw_query_string)
        return redirect(f"{st.base_url}{provider_sign_in_path(req.provider.name)}?"
                        f"{urlencode({'RelayState': relay_state})}")
    session = st.grants.session(request.cookies.get(HOSTED_UI_COOKIE))
    user = st.pool.user(session.username) if session is not None else None
    if session is None or user is None or req.prompt == "login":
        if req.prompt == "none":
            return error_redirect(req.redirect_uri, "login_required", req.state)
        return redirect(f"{st.base_url}/login?{request.rel_url.raw_query_string}")
    return complete_sign_in(st, req, user, session.auth_time)


def _with_query(url: str, params: Mapping[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
