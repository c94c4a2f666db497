"""The hosted UI's browser pages: the classic sign-in page (/login), /logout and /error."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlencode

from aiohttp import web

from gateway.devidp.authorize import (
    HOSTED_UI_COOKIE,
    AuthorizeRequest,
    parse_authorize,
    sign_in_with_session,
)
from gateway.devidp.providers import COGNITO
from gateway.devidp.responses import error_page, html_page, redirect
from gateway.devidp.signin_page import ProviderButton, sign_in_page
from gateway.devidp.state import state_of

CSRF_COOKIE = "XSRF-TOKEN"
# With PreventUserExistenceErrors ENABLED (the default of every pool created since 2020) an
# unknown user and a wrong password get the same sentence, so the form reveals no usernames.
BAD_CREDENTIALS = "Incorrect username or password."
UNKNOWN_USER = "User does not exist."  # PreventUserExistenceErrors LEGACY only
LOGOUT_MISMATCH = "Required String parameter 'redirect_uri' is not present."
_PROVIDER_CHOICE = ("identity_provider", "idp_identifier")


async def login_form(request: web.Request) -> web.Response:
    """GET /login: the sign-in page, with a fresh CSRF token in a cookie and a hidden field."""
    req = parse_authorize(state_of(request), request.query)
    if isinstance(req, web.Response):
        return req
    token = secrets.token_urlsafe(32)
    response = _page(request, req, token, error=None)
    response.set_cookie(CSRF_COOKIE, token, path="/", httponly=True, samesite="Lax")
    return response


async def login_submit(request: web.Request) -> web.Response:
    """POST /login: check CSRF, then the credentials; success signs in and redirects."""
    st = state_of(request)
    req = parse_authorize(st, request.query)
    if isinstance(req, web.Response):
        return req
    if COGNITO not in req.client.supported_identity_providers:
        # The page offers no form then; a hand-made POST is refused (UNCONFIRMED).
        return error_page()
    form = await request.post()
    sent = form.get("_csrf")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        # Spring Security (behind the classic hosted UI) refuses a bad CSRF token with 403.
        return error_page(status=403)
    username, password = form.get("username"), form.get("password")
    user = st.pool.user(username) if isinstance(username, str) else None
    if user is None and not st.pool.prevent_user_existence_errors:
        return _page(request, req, expected, error=UNKNOWN_USER)
    if (
        user is None
        or user.federated  # EXTERNAL_PROVIDER users have no password here
        or not isinstance(password, str)
        or not hmac.compare_digest(password.encode(), user.password.encode())
    ):
        return _page(request, req, expected, error=BAD_CREDENTIALS)
    return sign_in_with_session(request, req, user)


def _page(request: web.Request, req: AuthorizeRequest, csrf: str, *,
          error: str | None) -> web.Response:
    st = state_of(request)
    client = req.client
    params = [(k, v) for k, v in request.query.items() if k not in _PROVIDER_CHOICE]
    buttons = [
        ProviderButton(name, "/oauth2/authorize?"
                       + urlencode([*params, ("identity_provider", name)]))
        for name in client.supported_identity_providers
        if name != COGNITO and st.pool.provider(name) is not None
    ]
    action = (f"/login?{request.rel_url.raw_query_string}"
              if COGNITO in client.supported_identity_providers else None)
    return html_page(sign_in_page(app_name=client.display_name, action=action, csrf=csrf,
                                  buttons=buttons, error=error))


async def logout(request: web.Request) -> web.Response:
    """GET /logout: end the hosted-UI session, then go to logout_uri or back to /login.

    logout_uri must exactly match one of the client's sign-out URLs. Without a usable
    logout_uri Cognito falls through to its redirect_uri form; when that is missing too it
    shows its error page naming the missing parameter (tokens are not revoked either way).
    """
    st = state_of(request)
    query = request.query
    client = st.pool.client(query.get("client_id", ""))
    if client is None:
        return error_page("Required String parameter 'client_id' is not present.")
    logout_uri = query.get("logout_uri")
    if logout_uri is not None and logout_uri in client.logout_urls:
        response = redirect(logout_uri)
    elif "redirect_uri" in query:
        login = parse_authorize(st, query)
        if isinstance(login, web.Response):
            return login
        keep = ("client_id", "redirect_uri", "response_type", "scope", "state")
        params = {k: query[k] for k in keep if k in query}
        response = redirect(f"{st.base_url}/login?{urlencode(params)}")
    else:
        return error_page(LOGOUT_MISMATCH)
    st.grants.close_session(request.cookies.get(HOSTED_UI_COOKIE))
    response.del_cookie(HOSTED_UI_COOKIE, path="/")
    return response


async def error(_request: web.Request) -> web.Response:
    """GET /error: Cognito's generic error page, HTTP 400."""
    return error_page()
