"""The hosted UI's browser pages: the classic sign-in form (/login), /logout and /error."""

from __future__ import annotations

import hmac
import html
import secrets
import time
from urllib.parse import urlencode

from aiohttp import web

from gateway.devidp.authorize import (
    HOSTED_UI_COOKIE,
    AuthorizeRequest,
    complete_sign_in,
    parse_authorize,
)
from gateway.devidp.grants import HOSTED_UI_SESSION_SECONDS
from gateway.devidp.model import User
from gateway.devidp.responses import error_page, html_page, redirect
from gateway.devidp.state import state_of

CSRF_COOKIE = "XSRF-TOKEN"
BAD_CREDENTIALS = "Incorrect username or password."
LOGOUT_MISMATCH = "Required String parameter 'redirect_uri' is not present."


async def login_form(request: web.Request) -> web.Response:
    """GET /login: the sign-in form, with a fresh CSRF token in a cookie and a hidden field."""
    req = parse_authorize(state_of(request), request.query)
    if isinstance(req, web.Response):
        return req
    token = secrets.token_urlsafe(32)
    response = _form(request.rel_url.raw_query_string, token, error=None)
    response.set_cookie(CSRF_COOKIE, token, path="/", httponly=True, samesite="Lax")
    return response


async def login_submit(request: web.Request) -> web.Response:
    """POST /login: check CSRF, then the credentials; success signs in and redirects."""
    st = state_of(request)
    req = parse_authorize(st, request.query)
    if isinstance(req, web.Response):
        return req
    form = await request.post()
    sent = form.get("_csrf")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        # Spring Security (behind the classic hosted UI) refuses a bad CSRF token with 403.
        return error_page(status=403)
    username, password = form.get("username"), form.get("password")
    user = st.pool.user(username) if isinstance(username, str) else None
    if (
        user is None
        or not isinstance(password, str)
        or not hmac.compare_digest(password.encode(), user.password.encode())
    ):
        return _form(request.rel_url.raw_query_string, expected, error=BAD_CREDENTIALS)
    return _signed_in(request, req, user)


def _signed_in(request: web.Request, req: AuthorizeRequest, user: User) -> web.Response:
    st = state_of(request)
    auth_time = int(time.time())
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


async def error(request: web.Request) -> web.Response:
    """GET /error: Cognito's generic error page, HTTP 400."""
    return error_page()


def _form(query_string: str, csrf: str, *, error: str | None) -> web.Response:
    action = html.escape(f"/login?{query_string}", quote=True)
    message = (
        f'<p id="loginErrorMessage" class="errorMessage">{html.escape(error)}</p>\n'
        if error is not None
        else ""
    )
    return html_page(
        f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Signin</title></head>
<body><div class="modal-content background-customizable">
<span class="textDescription-customizable">Sign in with your username and password</span>
<form name="cognitoSignInForm" method="post" action="{action}" class="cognito-asf">
<input type="hidden" name="_csrf" value="{html.escape(csrf, quote=True)}"/>
{message}<label for="signInFormUsername">Username</label>
<input id="signInFormUsername" name="username" type="text"
 class="form-control inputField-customizable" autocapitalize="none" required/>
<label for="signInFormPassword">Password</label>
<input id="signInFormPassword" name="password" type="password"
 class="form-control inputField-customizable" required/>
<input type="hidden" name="cognitoAsfData" id="cognitoAsfData" value=""/>
<input name="signInSubmitButton" type="Submit" value="Sign in"
 class="btn btn-primary submitButton-customizable"/>
</form></div></body></html>
"""
    )
