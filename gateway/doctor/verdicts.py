"""From probe answers to findings: which misconfiguration explains what the IdP said.

The token endpoint checks client authentication before the grant and before the code, so a
made-up code tells apart "client refused" (invalid_client), "grant not enabled"
(unauthorized_client) and "all good" (invalid_grant). invalid_client alone has several causes;
two more answers separate them:

| token, as configured | token, no secret | /authorize          | verdict                        |
|----------------------|------------------|---------------------|--------------------------------|
| invalid_client       | invalid_grant    | -                   | secret sent by a public client |
| invalid_client       | invalid_client   | sign-in page        | wrong secret / secret missing  |
| invalid_client       | invalid_client   | unauthorized_client | client disabled (or deleted)   |
| invalid_client       | invalid_client   | redirect_mismatch   | client id unknown in this pool |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.cognito.diagnosis import CREDENTIALS_FIX
from gateway.cognito.probes import AuthorizeProbe, AuthorizeVerdict, TokenProbe
from gateway.doctor.report import Finding

if TYPE_CHECKING:
    from gateway.config import Settings

CLIENT = "client auth"
GRANT = "code grant"
CALLBACK = "callback URL"
AUTHORIZE = "authorize request"
CLOCK = "clock"
CLOCK_WARN_SECONDS = 30.0
CLOCK_FAIL_SECONDS = 300.0
GRANT_FIX = ("Enable 'Authorization code grant' in the app client's OAuth 2.0 grant types "
             "(Cognito console: App integration > App clients > Login pages / Hosted UI).")


def client_findings(settings: Settings, token: TokenProbe, without_secret: TokenProbe | None,
                    authorize: AuthorizeProbe | None) -> list[Finding]:
    """The client authentication and code grant findings."""
    client_id = settings.cognito.client_id
    confidential = bool(settings.cognito.client_secret)
    how = "HTTP Basic with cognito.client_secret" if confidential else "client_id only (public)"
    if token.outcome == "invalid_grant":
        return [Finding.ok(CLIENT, f"the token endpoint authenticated client {client_id} "
                           f"({how}) and refused the doctor's made-up code as expected"),
                Finding.ok(GRANT, "the authorization code grant is enabled")]
    if token.outcome == "unauthorized_client":
        if token.error_description == "invalid_redirect":
            return [Finding.ok(CLIENT, f"client {client_id} authenticated ({how})")]
        return [Finding.ok(CLIENT, f"client {client_id} authenticated ({how})"),
                Finding.fail(GRANT, f"the token endpoint answered unauthorized_client: app "
                             f"client {client_id} does not allow the authorization code grant",
                             GRANT_FIX)]
    if token.outcome != "invalid_client":
        return [Finding.fail(CLIENT, f"the token endpoint answered {token.outcome} "
                             f"(HTTP {token.http_status or '-'}) to the probe", token.hint)]
    return [_invalid_client(client_id, confidential, without_secret, authorize)]


def _invalid_client(client_id: str, confidential: bool, without_secret: TokenProbe | None,
                    authorize: AuthorizeProbe | None) -> Finding:
    refused = f"the token endpoint refused client {client_id} (invalid_client)"
    if without_secret is not None and without_secret.outcome in {"invalid_grant",
                                                                 "unauthorized_client"}:
        return Finding.fail(CLIENT, f"{refused}, but accepted it without a secret: the app "
                            "client is a public client (it has no secret) and Cognito refuses "
                            "a secret sent by a public client",
                            "Remove cognito.client_secret (and GATEWAY_COGNITO_CLIENT_SECRET / "
                            "client_secret_file); the gateway then signs in as a public client "
                            "with PKCE. Or use an app client that has a secret.")
    verdict = authorize.verdict if authorize else None
    if verdict is AuthorizeVerdict.SIGN_IN and confidential:
        return Finding.fail(CLIENT, f"{refused} although /authorize knows the client: the "
                            "client secret is wrong",
                            "Copy the app client's secret into cognito.client_secret (Cognito "
                            "console: App integration > App clients > Client secret); check a "
                            "client_secret_file for stray whitespace.")
    if verdict is AuthorizeVerdict.SIGN_IN:
        return Finding.fail(CLIENT, f"{refused} without a secret although /authorize knows "
                            "the client: the app client has a secret (a confidential client) "
                            "and cognito.client_secret is empty", CREDENTIALS_FIX + ".")
    if verdict is AuthorizeVerdict.ERROR and authorize and authorize.error == "unauthorized_client":
        return Finding.fail(CLIENT, f"{refused}, and /authorize answers unauthorized_client: "
                            "the app client is disabled or being deleted",
                            "Re-enable the app client, or create a new one and set "
                            "cognito.client_id (and client_secret) to it.")
    if verdict is AuthorizeVerdict.REDIRECT_MISMATCH:
        return Finding.fail(CLIENT, f"{refused}"
                            + (" with and without a secret" if confidential else "")
                            + ", and /authorize sends it to Cognito's error page: client_id "
                            f"{client_id} is unknown in this user pool (or deleted)",
                            "Set cognito.client_id to an app client of this user pool (Cognito "
                            "console: App integration > App clients); a client id from another "
                            "pool fails like this.")
    return Finding.fail(CLIENT, refused, CREDENTIALS_FIX + "; check cognito.client_id too.")


def client_known(token: TokenProbe, without_secret: TokenProbe | None) -> bool:
    """True when some probe got past client authentication."""
    return token.outcome != "invalid_client" or (
        without_secret is not None and without_secret.outcome != "invalid_client")


def callback_findings(redirect_uri: str, token: TokenProbe, authorize: AuthorizeProbe,
                      registered_instead: tuple[str, str] | None) -> list[Finding]:
    """Whether redirect_uri is a registered callback URL, from /authorize (and /token)."""
    fix = (f"Add {redirect_uri} to the app client's Allowed callback URLs, exactly: same "
           "scheme, host, port and path, no trailing slash.")
    if token.outcome == "unauthorized_client" and token.error_description == "invalid_redirect":
        return [Finding.fail(CALLBACK, "the token endpoint answered unauthorized_client / "
                             f"invalid_redirect: {redirect_uri} is not registered", fix)]
    if authorize.verdict is AuthorizeVerdict.REDIRECT_MISMATCH:
        detail = (f"{redirect_uri} is not a callback URL of the app client: /authorize sends "
                  "the browser to Cognito's error page (redirect_mismatch), so nobody can sign in")
        if registered_instead:
            url, how = registered_instead
            detail += f"; {url} is registered instead ({how})"
        return [Finding.fail(CALLBACK, detail, fix)]
    if authorize.verdict is AuthorizeVerdict.UNEXPECTED:
        return [Finding.warn(CALLBACK, f"/authorize answered HTTP {authorize.status}; could not "
                             "tell whether the callback URL is registered",
                             "Check cognito.domain: /oauth2/authorize should redirect.")]
    found = [Finding.ok(CALLBACK, f"{redirect_uri} is registered (/authorize accepted it)")]
    if authorize.verdict is AuthorizeVerdict.ERROR and authorize.error != "unauthorized_client":
        found.append(Finding.fail(AUTHORIZE, f"/authorize answered error={authorize.error}"
                                  + (f" ({authorize.error_description})"
                                     if authorize.error_description else ""),
                                  _authorize_fix(authorize.error or "")))
    return found


def _authorize_fix(error: str) -> str:
    if error == "invalid_scope":
        return ("A scope in cognito.scopes is unknown to the user pool or none is allowed: "
                "compare it with the app client's allowed OAuth scopes.")
    if error == "invalid_request":
        return "Keep cognito.pkce = true (Cognito accepts only S256) and check cognito.scopes."
    return "See the IdP's documentation for this error and the app client's settings."


def clock_finding(skew_seconds: float | None) -> Finding:
    """PASS within 30 s of the IdP's Date header, WARN beyond, FAIL beyond 5 minutes."""
    if skew_seconds is None:
        return Finding.warn(CLOCK, "the IdP sent no usable Date header; clock not checked",
                            "Make sure this host's clock is synchronised (NTP).")
    direction = "ahead of" if skew_seconds > 0 else "behind"
    detail = f"this host's clock is {abs(skew_seconds):.0f} s {direction} the IdP's"
    fix = ("Synchronise this host's clock (NTP, chrony, or the cloud provider's time service): "
           "token iat/exp and the sign-in state are checked against it.")
    if abs(skew_seconds) > CLOCK_FAIL_SECONDS:
        return Finding.fail(CLOCK, detail + ": tokens will be refused as expired or not yet "
                            "valid", fix)
    if abs(skew_seconds) > CLOCK_WARN_SECONDS:
        return Finding.warn(CLOCK, detail, fix)
    return Finding.ok(CLOCK, detail)
