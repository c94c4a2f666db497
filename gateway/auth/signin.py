"""The sign-in flow: start it (PKCE, state, nonce), and finish it at the callback.

`SignIn.redirect` answers a navigation that needs a principal: 302 to the IdP's authorize
endpoint, with the sign-in remembered in its own short-lived cookie (auth/pending.py) and the
return path checked for same-origin, at the identity provider of the rule that asked for it
(`identity_provider=` at /authorize: Cognito skips its provider choice).
`GET /oauth2/sign_in?rd=&identity_provider=` starts one explicitly; `identity_provider` is
honoured only when `cognito.identity_providers` or a rule names it (anything else is ignored).
`GET /oauth2/callback` checks the state against this browser's pending sign-ins, exchanges the
code, verifies the ID token (auth/issuer.py) and starts the session (sessions/layer.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.auth.pending import PendingSignIn, PendingSignIns
from gateway.auth.redirects import safe_return_path
from gateway.cognito.pkce import code_challenge, random_token
from gateway.errors import SignInError, TokenEndpointError, TokenValidationError
from gateway.observability.logging import get_logger
from gateway.routing import Endpoint

if TYPE_CHECKING:
    from gateway.auth.issuer import SessionIssuer
    from gateway.cognito.provider import IdentityProvider
    from gateway.observability.metrics import Metrics
    from gateway.sessions.layer import SessionLayer

log = get_logger(__name__)

AUTHORIZE_ERRORS = frozenset({
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
    "invalid_scope", "server_error", "temporarily_unavailable", "login_required",
    "interaction_required", "consent_required", "account_selection_required",
})
"""Error codes of the authorization endpoint (RFC 6749 4.1.2.1, OIDC Core 3.1.2.6); any
other value is shown as `idp_error`."""


@dataclass(frozen=True)
class SignInSettings:
    """What the sign-in endpoints read from the settings (replaced whole on a reload)."""

    public_url: str
    redirect_uri: str
    pkce: bool
    identity_providers: frozenset[str]


class SignIn:
    """/oauth2/sign_in and /oauth2/callback: the redirect to the IdP and the code exchange.

    A successful callback begins a session and redirects to the page first asked for.
    """

    def __init__(self, settings: SignInSettings, *, provider: IdentityProvider,
                 pending: PendingSignIns, issuer: SessionIssuer, sessions: SessionLayer,
                 metrics: Metrics) -> None:
        self._settings = settings
        self._provider = provider
        self._pending = pending
        self._issuer = issuer
        self._sessions = sessions
        self._metrics = metrics

    def use(self, settings: SignInSettings) -> None:
        """Sign in with these settings from now on (a reload)."""
        self._settings = settings

    def endpoints(self) -> dict[str, Endpoint]:
        return {"/oauth2/sign_in": Endpoint({"GET": self.sign_in}),
                "/oauth2/callback": Endpoint({"GET": self.callback})}

    def redirect(self, return_to: str, *, identity_provider: str | None = None) -> web.Response:
        """302 to the IdP with a new pending sign-in; `return_to` passes the same-origin
        check here, whoever chose it."""
        verifier = random_token(48) if self._settings.pkce else None
        pending = PendingSignIn(
            state=random_token(), nonce=random_token(), code_verifier=verifier,
            return_to=safe_return_path(return_to, self._settings.public_url))
        location = self._provider.authorize_url(
            state=pending.state, nonce=pending.nonce,
            code_challenge=code_challenge(verifier) if verifier else None,
            identity_provider=identity_provider)
        response = web.Response(status=302, headers={"Location": location,
                                                     "Cache-Control": "no-store"})
        self._pending.remember(response, pending)
        return response

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        """GET /oauth2/sign_in: start a sign-in and come back to `rd`."""
        chosen = request.query.get("identity_provider")
        allowed = chosen if chosen in self._settings.identity_providers else None
        self._metrics.auth_decisions.labels(decision="redirected", rule="default").inc()
        return self.redirect(request.query.get("rd", "/"), identity_provider=allowed)

    async def callback(self, request: web.Request) -> web.StreamResponse:
        """GET /oauth2/callback: check state, exchange the code, start a session."""
        query = request.query
        state = query.get("state", "")
        pending = self._pending.recall(request, state) if state else None
        if "error" in query:
            self._refuse_idp_error(query.get("error", ""),
                                   query.get("error_description", "")[:200], pending)
        if pending is None:
            self._metrics.sign_ins.labels(outcome="state_mismatch").inc()
            raise SignInError("state_mismatch", "This sign-in link is unknown, expired or was "
                              "already used (the state does not match one this browser "
                              "started). Start again.")
        code = query.get("code")
        if not code:
            raise SignInError("invalid_request", "The identity provider returned no code.")
        try:
            tokens = await self._provider.tokens.exchange_code(
                code=code, redirect_uri=self._settings.redirect_uri,
                code_verifier=pending.code_verifier)
            session = await self._issuer.sign_in(tokens, nonce=pending.nonce)
        except TokenEndpointError as exc:
            self._metrics.sign_ins.labels(outcome="token_error").inc()
            raise SignInError(exc.outcome, exc.hint, transient=exc.transient) from exc
        except TokenValidationError as exc:
            self._metrics.sign_ins.labels(outcome="invalid_token").inc()
            raise SignInError(f"invalid_id_token:{exc.reason}", "The ID token from the "
                              "identity provider failed verification: " + str(exc)) from exc
        await self._sessions.begin(request, session)
        self._metrics.sign_ins.labels(outcome="ok").inc()
        log.info("signed_in", sub=session.identity.sub)
        response = web.Response(status=302, headers={
            "Location": safe_return_path(pending.return_to, self._settings.public_url),
            "Cache-Control": "no-store"})
        self._pending.forget(response, state)
        return response

    def _refuse_idp_error(self, error: str, description: str,
                          pending: PendingSignIn | None) -> None:
        self._metrics.sign_ins.labels(outcome="idp_error").inc()
        code = error if error in AUTHORIZE_ERRORS else "idp_error"
        log.warning("sign_in_idp_error", error=code, error_description=description,
                    own_sign_in=pending is not None)
        # The IdP's words are shown only for this browser's own sign-in: anyone can send a
        # link to /oauth2/callback?error=...&error_description=<a phishing text>.
        raise SignInError(code, authorize_error_hint(
            code, description if pending is not None else None))


def authorize_error_hint(error: str, description: str | None) -> str:
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
