"""Sign-out: a confirmation page, the same-origin POST that ends the session, and the landing.

GET /oauth2/sign_out shows a page with a button: sign-out changes state, so it happens only by
a POST whose Origin (or Sec-Fetch-Site) says it came from this site; otherwise any page could
sign the user out. The POST ends the session (sessions/layer.py: a replayed cookie grants
nothing), closes the session's WebSockets, revokes its refresh token at the IdP, and sends the
browser to the IdP's sign-out (Cognito's /logout, or the OIDC end_session_endpoint), which
returns to /oauth2/signed_out; an `rd` given at sign-out (same-origin only) is kept in a
short-lived cookie for that page to go on to.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from aiohttp import web

from gateway.auth.redirects import safe_return_path
from gateway.errors import GatewayError, IdPError
from gateway.observability.logging import get_logger
from gateway.pages import html_page, json_response
from gateway.routing import Endpoint

if TYPE_CHECKING:
    from gateway.cognito.provider import IdentityProvider
    from gateway.observability.metrics import Metrics
    from gateway.sessions.cookies import CookiePolicy
    from gateway.sessions.layer import SessionLayer
    from gateway.upstream.websocket import OpenSockets

log = get_logger(__name__)
SIGNED_OUT_PATH = "/oauth2/signed_out"
RETURN_TTL = 300


@dataclass(frozen=True)
class SignOutSettings:
    """What the sign-out endpoints read from the settings."""

    public_url: str
    logout_uri: str


class SignOut:
    """/oauth2/sign_out and /oauth2/signed_out: ending a session here and at the IdP.

    Sign-out ends the session, closes its WebSockets, revokes its refresh token and redirects
    to the IdP's logout; the IdP returns to /oauth2/signed_out.
    """

    def __init__(self, settings: SignOutSettings, *, provider: IdentityProvider,
                 sessions: SessionLayer, sockets: OpenSockets, cookies: CookiePolicy,
                 metrics: Metrics) -> None:
        self._settings = settings
        self._provider = provider
        self._sessions = sessions
        self._sockets = sockets
        self._cookies = cookies
        self._metrics = metrics
        self._return_cookie = f"{cookies.name}_signed_out_rd"

    def endpoints(self) -> dict[str, Endpoint]:
        return {"/oauth2/sign_out": Endpoint({"GET": self.confirm, "POST": self.sign_out}),
                SIGNED_OUT_PATH: Endpoint({"GET": self.signed_out})}

    async def confirm(self, request: web.Request) -> web.StreamResponse:
        """GET /oauth2/sign_out: a page whose button POSTs the sign-out."""
        rd = safe_return_path(request.query.get("rd"), self._settings.public_url)
        action = escape(f"/oauth2/sign_out?rd={quote(rd, safe='/')}")
        body = ('<p>Sign out of this application and of the identity provider?</p>'
                f'<form method="post" action="{action}">'
                '<button type="submit">Sign out</button></form>')
        return html_page(200, "Sign out", body)

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        """POST /oauth2/sign_out: end the session, revoke its refresh token, end the IdP's."""
        if not same_origin(request, self._settings.public_url):
            return json_response(403, {"error": "cross_site_sign_out",
                                       "message": "sign-out must come from this site"})
        session = await self._sessions.end(request)
        target = self._settings.logout_uri
        with contextlib.suppress(IdPError):
            target = self._provider.logout_url(
                id_token=session.id_token if session else None) or target
        response = web.Response(status=303, headers={"Location": target,
                                                     "Cache-Control": "no-store"})
        rd = safe_return_path(request.query.get("rd"), self._settings.public_url)
        if rd != "/":
            # The IdP only returns to the registered logout_uri; /oauth2/signed_out goes on.
            self._cookies.set(response, self._return_cookie, rd, max_age=RETURN_TTL,
                              path=SIGNED_OUT_PATH)
        self._metrics.sign_outs.inc()
        if session is not None:
            self._sockets.close_session(session.sid)
            if session.refresh_token:
                try:
                    await self._provider.tokens.revoke(session.refresh_token)
                except GatewayError as exc:
                    log.warning("revoke_failed", detail=str(exc))
        log.info("signed_out", sub=session.identity.sub if session else None)
        return response

    async def signed_out(self, request: web.Request) -> web.StreamResponse:
        """GET /oauth2/signed_out: the landing page, or on to the `rd` given at sign-out."""
        name = self._return_cookie
        rd = safe_return_path(request.cookies.get(name), self._settings.public_url)
        response: web.Response
        if name in request.cookies and rd != "/":
            response = web.Response(status=302, headers={"Location": rd,
                                                         "Cache-Control": "no-store"})
        else:
            response = html_page(200, "Signed out", '<p>You have been signed out.</p>'
                                 '<p><a href="/oauth2/sign_in">Sign in again</a></p>')
        if name in request.cookies:
            self._cookies.delete(response, name, path=SIGNED_OUT_PATH)
        return response


def same_origin(request: web.Request, public_url: str) -> bool:
    """Refuse cross-site POSTs: browsers send Origin (and Sec-Fetch-Site) on every POST."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in {"same-origin", "none"}:
        return False
    origin = request.headers.get("Origin")
    if origin is None or (origin == "null" and site == "same-origin"):
        return True
    expected = urlsplit(public_url)
    return origin == f"{expected.scheme}://{expected.netloc}"
