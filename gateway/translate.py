"""The one place where a GatewayError becomes an HTTP response.

`STATUSES` maps each error class to its status and JSON `error` code; an error takes the entry
of the nearest class in its MRO. Browser navigations get an HTML page (a sign-in failure, an
access denial, or "unavailable" with a retry link); everything else gets JSON with the code, a
message and the request id. A 401 carries `WWW-Authenticate: Bearer` (with
`error="invalid_token"` when a bearer token was refused) and a sign-in URL; a 405 its `Allow`.
Messages are the errors' own words, written to name what failed, never an address.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from gateway.auth.classify import is_navigation
from gateway.auth.redirects import safe_return_path
from gateway.errors import (
    BadTarget,
    ClientRequestError,
    Forbidden,
    GatewayError,
    IdPError,
    InvalidBearerToken,
    MethodNotAllowed,
    RefreshRejected,
    RequestBodyTimeout,
    RequestBodyTooLarge,
    SessionStoreUnavailable,
    SessionUnavailable,
    SignInError,
    TooManyWebSockets,
    Unauthenticated,
    UnknownEndpoint,
    UpstreamConnectError,
    UpstreamTimeout,
)
from gateway.pages import error_page, json_response
from gateway.target import TARGET

STATUSES: dict[type[GatewayError], tuple[int, str]] = {
    BadTarget: (400, "bad_target"),
    UnknownEndpoint: (404, "not_found"),
    MethodNotAllowed: (405, "method_not_allowed"),
    TooManyWebSockets: (503, "too_many_websockets"),
    ClientRequestError: (400, "bad_request"),
    RequestBodyTooLarge: (413, "request_body_too_large"),
    RequestBodyTimeout: (408, "request_body_timeout"),
    Unauthenticated: (401, "unauthorized"),
    InvalidBearerToken: (401, "unauthorized"),
    RefreshRejected: (401, "unauthorized"),
    Forbidden: (403, "forbidden"),
    SessionUnavailable: (503, "idp_unavailable"),
    SessionStoreUnavailable: (503, "session_store_unavailable"),
    IdPError: (503, "idp_unavailable"),
    UpstreamConnectError: (502, "upstream_connect"),
    UpstreamTimeout: (504, "upstream_timeout"),
}
INTERNAL = (500, "internal_error")
IDP_UNAVAILABLE = "the identity provider is not available yet; try again shortly"


def status_of(exc: GatewayError) -> tuple[int, str]:
    """The status and JSON code of an error: its nearest class in STATUSES."""
    if isinstance(exc, SignInError):
        return (502 if exc.transient else 400), exc.code
    for cls in type(exc).__mro__:
        found = STATUSES.get(cls)
        if found is not None:
            return found
    return INTERNAL


class ErrorResponses:
    """Builds the response for a GatewayError (see the module docstring)."""

    def __init__(self, public_url: str) -> None:
        self._public_url = public_url

    def __call__(self, request: web.Request, exc: GatewayError, request_id: str) -> web.Response:
        status, code = status_of(exc)
        message = IDP_UNAVAILABLE if isinstance(exc, IdPError) else str(exc)
        target = request.get(TARGET)
        here = safe_return_path(target.forwarded if target else None, self._public_url)
        if isinstance(exc, SignInError):
            return error_page(status, title="Sign-in failed", code=code, hint=exc.hint,
                              request_id=request_id, retry_url="/oauth2/sign_in")
        if status == 401:
            challenge = ('Bearer error="invalid_token"' if isinstance(exc, InvalidBearerToken)
                         else "Bearer")
            return json_response(401, {
                "error": code, "message": message, "request_id": request_id,
                "sign_in_url": f"/oauth2/sign_in?rd={quote(here, safe='/')}"},
                headers={"WWW-Authenticate": challenge})
        if status in {403, 503} and is_navigation(request):
            title = "Access denied" if status == 403 else "Sign-in unavailable"
            return error_page(status, title=title, code=code, hint=message,
                              request_id=request_id, retry_url=None if status == 403 else here)
        headers = {"Allow": ", ".join(exc.allowed)} if isinstance(exc, MethodNotAllowed) else None
        return json_response(status, {"error": code, "message": message,
                                      "request_id": request_id}, headers=headers)
