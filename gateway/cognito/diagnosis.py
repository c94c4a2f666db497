"""What a token-endpoint failure most probably means, and how to fix it.

One table, searched top to bottom: the first row whose error code, error_description fragment,
grant type and client kind match gives the hint. Causes follow Cognito's documented behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    """A known IdP failure and the hint that explains it.

    It matches when `error` (and, when set, `description`, `grant_type` and `public_client`)
    match the failure.
    """

    error: str | None            # OAuth error code, None for transport failures / bare statuses
    hint: str
    description: str | None = None  # substring of error_description that must match
    grant_type: str | None = None
    public_client: bool | None = None


OAUTH_ERRORS = frozenset({
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "unsupported_token_type", "access_denied",
    "server_error", "temporarily_unavailable",
})
"""Error codes used as metric labels as they are; any other code counts as "other_error"."""

CREDENTIALS_FIX = ("Set cognito.client_secret to the app client's secret (Cognito console: App "
              "integration > App clients > Client secret), or leave it empty for a public client")

DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis("unauthorized_client", description="invalid_redirect", hint=(
        "The redirect_uri at /oauth2/token differs from the one sent to /authorize, or is not "
        "registered. Register exactly server.public_url + /oauth2/callback as a callback URL on "
        "the app client (same scheme, host, port, path and trailing slash).")),
    Diagnosis("unauthorized_client", grant_type="refresh_token", hint=(
        "The app client may not use refresh tokens. Enable the authorization code grant on the "
        "app client and keep ALLOW_REFRESH_TOKEN_AUTH in its authentication flows.")),
    Diagnosis("unauthorized_client", hint=(
        "The app client is not allowed this grant. Enable 'Authorization code grant' under the "
        "app client's OAuth 2.0 grant types (hosted UI settings).")),
    Diagnosis("invalid_client", public_client=True, hint=(
        "Client authentication failed and no secret was sent: the app client has a secret "
        "(a confidential client), or the client id is unknown or disabled. "
        + CREDENTIALS_FIX + ".")),
    Diagnosis("invalid_client", hint=(
        "Client authentication failed: the client secret is wrong, the app client has no secret "
        "(a public client must not send one), the client id is unknown in this user pool, or "
        "the client was deleted or disabled. Check cognito.client_id. "
        + CREDENTIALS_FIX + "; `cognito-gateway doctor` tells these causes apart.")),
    Diagnosis("invalid_grant", grant_type="refresh_token", hint=(
        "The refresh token is revoked or expired (sign-out, global sign-out, an admin action, "
        "or the app client's refresh token validity passed). The user must sign in again.")),
    Diagnosis("invalid_grant", hint=(
        "The authorization code was already used, expired (codes live 5 minutes) or was issued "
        "to another client, or the PKCE code_verifier does not match. Usually a replayed or "
        "slow callback; if it happens on every sign-in, check that only one gateway replica "
        "handles the callback and that clocks are in sync.")),
    Diagnosis("invalid_scope", hint=(
        "A requested scope is not allowed for this app client. Compare cognito.scopes with the "
        "app client's allowed OAuth scopes (openid, email, profile, ...).")),
    Diagnosis("unsupported_grant_type", hint=(
        "The IdP does not support this grant type at this endpoint; check cognito.issuer "
        "points at the right provider.")),
    Diagnosis("invalid_request", hint=(
        "The IdP rejected the request as malformed (missing or duplicated parameter). Check "
        "cognito.client_id and that the token endpoint from discovery is the user pool's.")),
    Diagnosis("unsupported_token_type", hint=(
        "The revocation endpoint only revokes refresh tokens.")),
    Diagnosis("timeout", hint=(
        "The IdP did not answer in time. Check network egress to the Cognito domain (NAT, "
        "security groups, proxies) and the IdP's status.")),
    Diagnosis("network_error", hint=(
        "The IdP could not be reached. Check DNS and egress to cognito.domain / the issuer.")),
    Diagnosis("http_5xx", grant_type="authorization_code", hint=(
        "The IdP failed (HTTP 5xx) while exchanging the sign-in code. Usually transient: sign "
        "in again. If it persists, check the IdP's status (AWS Health Dashboard).")),
    Diagnosis("http_5xx", hint=(
        "The IdP failed (HTTP 5xx). Usually transient; the gateway retries and keeps serving "
        "while current tokens are valid.")),
    Diagnosis("http_4xx", hint=(
        "The IdP answered an HTTP error without an OAuth error code: the token endpoint URL is "
        "probably wrong (check cognito.domain and cognito.issuer).")),
    Diagnosis("malformed", hint=(
        "The IdP answered something that is not a token response (HTML or non-JSON): the token "
        "endpoint URL is probably wrong or a proxy intercepted the request.")),
)


def diagnose(outcome: str, *, description: str | None, grant_type: str,
             public_client: bool) -> str:
    """The hint for a token-endpoint outcome (OAuth code, `http_<status>`, timeout, ...)."""
    key = outcome
    if outcome.startswith("http_") and outcome[5:].isdigit():
        key = "http_5xx" if int(outcome[5:]) >= 500 else "http_4xx"
    for row in DIAGNOSES:
        if row.error != key:
            continue
        if row.description and row.description not in (description or ""):
            continue
        if row.grant_type and row.grant_type != grant_type:
            continue
        if row.public_client is not None and row.public_client != public_client:
            continue
        return row.hint
    return (f"The IdP answered the OAuth error {outcome!r}; see the IdP's documentation for "
            "this code and check the app client settings.")


def hint_table() -> str:
    """The table as Markdown, rows in match order (docs/observability.md embeds it verbatim)."""
    lines = ["| outcome | error_description | grant_type | client | hint |",
             "|---|---|---|---|---|"]
    for row in DIAGNOSES:
        client = {True: "public", False: "confidential", None: "any"}[row.public_client]
        lines.append(f"| `{row.error}` | {f'`{row.description}`' if row.description else 'any'} "
                     f"| {row.grant_type or 'any'} | {client} | {row.hint.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
