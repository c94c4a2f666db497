"""The one place where a GatewayError becomes an HTTP response.

| error                       | browser navigation             | anything else              |
|-----------------------------|--------------------------------|----------------------------|
| Unauthenticated             | (guard redirects to sign-in)   | 401 JSON + WWW-Authenticate|
| Forbidden                   | 403 page                       | 403 JSON                   |
| SessionUnavailable, IdPError| 503 page with retry link       | 503 JSON                   |
| SignInError                 | page with code, hint, retry    | same page                  |
| UpstreamError               | 502 / 504 / 413 (plain JSON)   | same                       |
| RequestRefused              | 400 / 404 / 405 (plain JSON)   | same                       |
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from gateway.auth.redirects import safe_return_path
from gateway.errors import (
    AuthError,
    ClientRequestError,
    GatewayError,
    IdPError,
    MethodNotAllowed,
    RequestRefused,
    SignInError,
    Unauthenticated,
    UpstreamError,
)
from gateway.keys import CONTEXT, REQUEST_ID, TARGET
from gateway.pages import error_page, json_response


def error_response(request: web.Request, exc: GatewayError) -> web.Response:
    request_id = request.get(REQUEST_ID, "-")
    ctx = request.app[CONTEXT]
    navigation = ctx.guard.is_navigation(request)
    target = request.get(TARGET)
    here = safe_return_path(target.forwarded if target else None, ctx.settings.server.public_url)
    retry = f"/oauth2/sign_in?rd={quote(here, safe='/')}"
    if isinstance(exc, SignInError):
        return error_page(exc.status, title="Sign-in failed", code=exc.code, hint=exc.hint,
                          request_id=request_id, retry_url="/oauth2/sign_in")
    if isinstance(exc, Unauthenticated):
        detail = str(exc)
        challenge = 'Bearer error="invalid_token"' if "bearer" in detail else "Bearer"
        return json_response(401, {"error": exc.code, "message": detail,
                                   "sign_in_url": retry, "request_id": request_id},
                             headers={"WWW-Authenticate": challenge})
    if isinstance(exc, AuthError):
        if navigation:
            return error_page(exc.status, title="Access denied" if exc.status == 403 else
                              "Sign-in unavailable", code=exc.code, hint=str(exc),
                              request_id=request_id,
                              retry_url=None if exc.status == 403 else here)
        return json_response(exc.status, {"error": exc.code, "message": str(exc),
                                          "request_id": request_id})
    if isinstance(exc, IdPError):
        message = "the identity provider is not available yet; try again shortly"
        if navigation:
            return error_page(503, title="Sign-in unavailable", code="idp_unavailable",
                              hint=message, request_id=request_id, retry_url=here)
        return json_response(503, {"error": "idp_unavailable", "message": message,
                                   "request_id": request_id})
    if isinstance(exc, RequestRefused):
        allow = {"Allow": ", ".join(exc.allowed)} if isinstance(exc, MethodNotAllowed) else None
        return json_response(exc.status, {"error": exc.code, "message": str(exc),
                                          "request_id": request_id}, headers=allow)
    if isinstance(exc, ClientRequestError):
        return json_response(exc.status, {"error": exc.code, "message": str(exc),
                                          "request_id": request_id})
    if isinstance(exc, UpstreamError):
        return json_response(exc.status, {"error": f"upstream_{exc.reason}",
                                          "message": str(exc), "request_id": request_id})
    return json_response(500, {"error": "internal_error", "request_id": request_id})
