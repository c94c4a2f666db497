"""The gateway's own endpoints under /oauth2/ (see DESIGN.md for the contract)."""

from __future__ import annotations

import contextlib
from html import escape
from urllib.parse import quote, urlsplit

from aiohttp import web

from gateway.auth.redirects import safe_return_path
from gateway.errors import (
    BadTarget,
    GatewayError,
    IdPError,
    SignInError,
    TokenEndpointError,
    TokenValidationError,
    Unauthenticated,
)
from gateway.forwarding import TrustedProxies
from gateway.keys import CONTEXT, TARGET, run_before_prepare
from gateway.observability.logging import get_logger
from gateway.pages import html_page, json_response
from gateway.routing import Endpoint
from gateway.target import RequestTarget, parse_target

log = get_logger(__name__)
SIGNED_OUT_PATH = "/oauth2/signed_out"
SIGNED_OUT_RETURN_TTL = 300
PUBLIC_KEYS_PREFIX = "/oauth2/public-keys/"


async def sign_in(request: web.Request) -> web.StreamResponse:
    """Start a sign-in and come back to `rd` (same-origin paths only)."""
    ctx = request.app[CONTEXT]
    return_to = safe_return_path(request.query.get("rd"), ctx.settings.server.public_url)
    response = web.Response(status=302, headers={"Cache-Control": "no-store"})
    response.headers["Location"] = ctx.guard.start_sign_in(response, return_to)
    ctx.guard.count_redirect()
    return response


async def callback(request: web.Request) -> web.StreamResponse:
    """Finish a sign-in: check state, exchange the code, verify the ID token, start a session."""
    ctx = request.app[CONTEXT]
    query = request.query
    state = query.get("state", "")
    pending = ctx.pending.recall(request, state) if state else None
    if "error" in query:
        ctx.metrics.sign_ins.labels(outcome="idp_error").inc()
        error = query["error"] if query["error"] in AUTHORIZE_ERRORS else "idp_error"
        description = query.get("error_description", "")[:200]
        log.warning("sign_in_idp_error", error=error, error_description=description,
                    own_sign_in=pending is not None)
        # The IdP's words are shown only for this browser's own sign-in: anyone can send a
        # link to /oauth2/callback?error=...&error_description=<a phishing text>.
        raise SignInError(error, _authorize_error_hint(
            error, description if pending is not None else None))
    if pending is None:
        ctx.metrics.sign_ins.labels(outcome="state_mismatch").inc()
        raise SignInError("state_mismatch", "This sign-in link is unknown, expired or was already "
                          "used (the state does not match one this browser started). Start again.")
    code = query.get("code")
    if not code:
        raise SignInError("invalid_request", "The identity provider returned no code.")
    try:
        tokens = await ctx.provider.tokens.exchange_code(
            code=code, redirect_uri=ctx.settings.redirect_uri, code_verifier=pending.code_verifier)
        session = await ctx.issuer.sign_in(tokens, nonce=pending.nonce)
    except TokenEndpointError as exc:
        ctx.metrics.sign_ins.labels(outcome="token_error").inc()
        raise SignInError(exc.outcome, exc.hint, status=502 if exc.transient else 400) from exc
    except TokenValidationError as exc:
        ctx.metrics.sign_ins.labels(outcome="invalid_token").inc()
        raise SignInError(f"invalid_id_token:{exc.reason}", "The ID token from the identity "
                          "provider failed verification: " + str(exc)) from exc
    ctx.metrics.sign_ins.labels(outcome="ok").inc()
    log.info("signed_in", sub=session.identity.sub)
    return_to = safe_return_path(pending.return_to, ctx.settings.server.public_url)
    response = web.Response(status=302, headers={"Location": return_to,
                                                 "Cache-Control": "no-store"})
    ctx.pending.forget(response, state)
    old = await ctx.store.load(request)
    if old is not None:
        await ctx.store.end(request, response, old)
    await ctx.store.save(request, response, session)
    return response


async def sign_out_page(request: web.Request) -> web.StreamResponse:
    """A confirmation page: sign-out changes state, so it happens only by a same-origin POST."""
    public_url = request.app[CONTEXT].settings.server.public_url
    rd = safe_return_path(request.query.get("rd"), public_url)
    action = escape(f"/oauth2/sign_out?rd={quote(rd, safe='/')}")
    body = ('<p>Sign out of this application and of the identity provider?</p>'
            f'<form method="post" action="{action}">'
            '<button type="submit">Sign out</button></form>')
    return html_page(200, "Sign out", body)


async def sign_out(request: web.Request) -> web.StreamResponse:
    """End the session, revoke its refresh token, and end the IdP session."""
    ctx = request.app[CONTEXT]
    if not _same_origin(request, ctx.settings.server.public_url):
        return json_response(403, {"error": "cross_site_sign_out",
                                   "message": "sign-out must come from this site"})
    session = await ctx.store.load(request)
    target = ctx.settings.logout_uri
    with contextlib.suppress(IdPError):
        target = ctx.provider.logout_url(id_token=session.id_token if session else None) or target
    response = web.Response(status=303, headers={"Location": target, "Cache-Control": "no-store"})
    rd = safe_return_path(request.query.get("rd"), ctx.settings.server.public_url)
    if rd != "/":
        # The IdP only returns to the registered logout_uri; /oauth2/signed_out goes on to rd.
        ctx.store.cookies.set(response, _return_cookie(ctx.store.cookies.name), rd,
                              max_age=SIGNED_OUT_RETURN_TTL, path=SIGNED_OUT_PATH)
    await ctx.store.end(request, response, session)
    if session is not None:
        ctx.proxy.close_session_sockets(session.sid)
    ctx.metrics.sign_outs.inc()
    if session is not None and session.refresh_token:
        try:
            await ctx.provider.tokens.revoke(session.refresh_token)
        except GatewayError as exc:
            log.warning("revoke_failed", detail=str(exc))
    log.info("signed_out", sub=session.identity.sub if session else None)
    return response


async def signed_out(request: web.Request) -> web.StreamResponse:
    """The landing page after sign-out, or on to the `rd` given at sign-out."""
    ctx = request.app[CONTEXT]
    name = _return_cookie(ctx.store.cookies.name)
    rd = safe_return_path(request.cookies.get(name), ctx.settings.server.public_url)
    response: web.Response
    if name in request.cookies and rd != "/":
        response = web.Response(status=302, headers={"Location": rd, "Cache-Control": "no-store"})
    else:
        response = html_page(200, "Signed out", '<p>You have been signed out.</p>'
                             '<p><a href="/oauth2/sign_in">Sign in again</a></p>')
    if name in request.cookies:
        ctx.store.cookies.delete(response, name, path=SIGNED_OUT_PATH)
    return response


def _return_cookie(cookie_name: str) -> str:
    return f"{cookie_name}_signed_out_rd"


async def userinfo(request: web.Request) -> web.StreamResponse:
    """The signed-in identity as JSON; 401 without a session or bearer token."""
    principal = await request.app[CONTEXT].guard.principal(request)
    if principal is None:
        raise Unauthenticated("sign-in required")
    ident = principal.identity
    response = json_response(200, {"sub": ident.sub, "username": ident.username,
                                   "email": ident.email, "email_verified": ident.email_verified,
                                   "groups": list(ident.groups),
                                   "expires_at": int(principal.expires_at)})
    await run_before_prepare(request, response)
    return response


async def forward_auth(request: web.Request) -> web.StreamResponse:
    """Forward-auth (nginx auth_request, Traefik forwardAuth): 202 + identity headers, or 401.

    The original URI is believed only from `server.trusted_proxies`, and normalised like any
    request target; without it no path counts as public.
    """
    ctx = request.app[CONTEXT]
    original = _original_target(request, ctx.trusted)
    if original is not None and len({ctx.guard.path_class(r) for r in original.readings}) > 1:
        raise BadTarget("ambiguous_parameters", "path parameters change the decision")
    await ctx.guard.check(request, original)
    response = web.Response(status=202, headers=ctx.guard.identity_headers(request))
    await run_before_prepare(request, response)
    return response


async def jwks(request: web.Request) -> web.StreamResponse:
    signer = request.app[CONTEXT].alb
    return json_response(200, {"keys": [signer.jwk]}, headers={"Cache-Control": "max-age=3600"})


async def public_key(request: web.Request) -> web.StreamResponse:
    signer = request.app[CONTEXT].alb
    if request[TARGET].path[len(PUBLIC_KEYS_PREFIX):] != signer.kid:
        raise web.HTTPNotFound(text="unknown key id")
    return web.Response(text=signer.public_pem, content_type="application/x-pem-file",
                        headers={"Cache-Control": "max-age=3600"})


ENDPOINTS = {
    "/oauth2/sign_in": Endpoint({"GET": sign_in}),
    "/oauth2/callback": Endpoint({"GET": callback}),
    "/oauth2/sign_out": Endpoint({"GET": sign_out_page, "POST": sign_out}),
    SIGNED_OUT_PATH: Endpoint({"GET": signed_out}),
    "/oauth2/userinfo": Endpoint({"GET": userinfo}),
    "/oauth2/auth": Endpoint({"GET": forward_auth}),
    "/oauth2/jwks.json": Endpoint({"GET": jwks}),
}
"""The gateway's endpoints under /oauth2/, by exact normalised path."""
PREFIXED = {PUBLIC_KEYS_PREFIX: Endpoint({"GET": public_key})}
"""Endpoint families: the path continues with one segment (the key id)."""


ORIGINAL_URI_HEADERS = ("X-Forwarded-Uri", "X-Original-URI")


def _original_target(request: web.Request, trusted: TrustedProxies) -> RequestTarget | None:
    """The target of the request being authorised, from a trusted proxy's header."""
    if request.remote not in trusted:
        return None
    for name in ORIGINAL_URI_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            return parse_target(value)
    return None


def _same_origin(request: web.Request, public_url: str) -> bool:
    """Refuse cross-site POSTs: browsers send Origin (and Sec-Fetch-Site) on every POST."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in {"same-origin", "none"}:
        return False
    origin = request.headers.get("Origin")
    if origin is None or (origin == "null" and site == "same-origin"):
        return True
    expected = urlsplit(public_url)
    return origin == f"{expected.scheme}://{expected.netloc}"


AUTHORIZE_ERRORS = frozenset({
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
    "invalid_scope", "server_error", "temporarily_unavailable", "login_required",
    "interaction_required", "consent_required", "account_selection_required",
})
"""Error codes of the authorization endpoint (RFC 6749 4.1.2.1, OIDC Core 3.1.2.6); any
other value is shown as `idp_error`."""


def _authorize_error_hint(error: str, description: str | None) -> str:
    """The hint for an authorization error; the IdP's description is appended when given."""
    hints = {
        "invalid_request": "The authorization request was refused as malformed. Check "
                           "cognito.scopes, that PKCE is enabled, and the identity provider name.",
        "unauthorized_client": "The app client may not use the authorization code grant: enable "
                               "'Authorization code grant' on the app client.",
        "invalid_scope": "A requested scope is not allowed on the app client: compare "
                         "cognito.scopes with its allowed OAuth scopes.",
        "access_denied": "The sign-in was cancelled or refused.",
        "login_required": "The identity provider needs an interactive sign-in.",
        "server_error": "The identity provider failed; try again.",
    }
    hint = hints.get(error, "The identity provider refused the sign-in.")
    return f"{hint} The identity provider said: {description}" if description else hint
