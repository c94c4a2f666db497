"""Checks of the app client as DescribeUserPoolClient describes it, against the configuration.

Each names one cause of `invalid_client` / `unauthorized_client` (or of a sign-in that ends on
Cognito's error page) before a user meets it:

- `app client`: the client id is a client of this pool (else: the pool's clients are listed);
- `oauth flows`: AllowedOAuthFlowsUserPoolClient is on and AllowedOAuthFlows has `code`;
- `callback URLs` / `sign-out URLs`: redirect_uri and logout_uri are registered exactly (a near
  miss is named: scheme, host, port, trailing slash, case);
- `oauth scopes`: AllowedOAuthScopes covers cognito.scopes;
- `client secret`: both sides have one, or neither; compared as SHA-256 digests, never shown;
- `identity providers`: SupportedIdentityProviders is not empty and holds every configured one;
- `auth flows`: ALLOW_REFRESH_TOKEN_AUTH, without which refreshes are refused.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from gateway.doctor.fixes import (
    CLIENT_INFORMATION,
    LOGIN_PAGES,
    ONE_AT_A_TIME,
    ClientUpdates,
    client_console,
    with_added,
)
from gateway.doctor.redirect import difference
from gateway.doctor.report import Finding, Status

if TYPE_CHECKING:
    from gateway.aws import AppClientDescription, ClientSummary
    from gateway.doctor.facts import AppClientFacts

CLIENT = "app client"
FLOWS = "oauth flows"
CALLBACKS = "callback URLs"
SIGN_OUT = "sign-out URLs"
SCOPES = "oauth scopes"
SECRET = "client secret"  # noqa: S105 - a check's name
PROVIDERS = "identity providers"
AUTH_FLOWS = "auth flows"
REFRESH_AUTH = "ALLOW_REFRESH_TOKEN_AUTH"
LISTED_CLIENTS = 10


def missing_client_finding(facts: AppClientFacts) -> Finding:
    """FAIL for a client id the pool does not have, listing the clients it has."""
    e = facts.expected
    pool = facts.pool.name if facts.pool else e.user_pool_id
    listed = _client_list(facts.pool_clients)
    return Finding.fail(
        CLIENT, f"app client {e.client_id} is not a client of user pool {pool} "
        f"({e.user_pool_id}, {e.region}): a client id from another user pool or region, or a "
        f"deleted client; the token endpoint answers invalid_client. {listed}",
        f"Set cognito.client_id to the gateway's app client of this pool (Cognito console > "
        f"User pools > {pool} > App clients), or cognito.user_pool_id to the pool that client "
        "belongs to.")


def _client_list(clients: tuple[ClientSummary, ...]) -> str:
    if not clients:
        return "The pool's clients could not be listed, or it has none."
    shown = ", ".join(f"{c.client_name or '-'} ({c.client_id})"
                      for c in clients[:LISTED_CLIENTS])
    more = f" and {len(clients) - LISTED_CLIENTS} more" if len(clients) > LISTED_CLIENTS else ""
    return f"This pool's app clients: {shown}{more}."


def client_findings(facts: AppClientFacts, client: AppClientDescription, updates: ClientUpdates,
                    *, secret_accepted: bool | None) -> list[Finding]:
    """Every check of an app client that exists, in the order a sign-in meets them."""
    pool = facts.pool.name if facts.pool else facts.expected.user_pool_id
    rules = _Rules(facts, client, updates, pool)
    return [
        Finding.ok(CLIENT, f"{client.client_name or '-'} ({client.client_id}) is an app client "
                   f"of user pool {pool}"),
        rules.flows(), rules.callbacks(), rules.sign_out(), rules.scopes(),
        rules.secret(secret_accepted), rules.providers(), rules.auth_flows(),
    ]


class _Rules:
    def __init__(self, facts: AppClientFacts, client: AppClientDescription,
                 updates: ClientUpdates, pool: str) -> None:
        self.e = facts.expected
        self.client = client
        self.updates = updates
        self.pool = pool

    def _fail(self, check: str, detail: str, fix: str, section: str,
              changes: dict[str, object], *, note: str = "") -> Finding:
        console = client_console(self.pool, self.client, section)
        return Finding(check, Status.FAIL, detail,
                       f"{fix} ({console}).{note} {ONE_AT_A_TIME}",
                       command=self.updates.command(changes))

    def flows(self) -> Finding:
        c = self.client
        kept = [f for f in c.allowed_oauth_flows if f != "client_credentials"]
        changes: dict[str, object] = {"AllowedOAuthFlowsUserPoolClient": True,
                                      "AllowedOAuthFlows": with_added(tuple(kept), "code")}
        # Cognito refuses OAuth flows without scopes, and the code grant without a callback URL.
        if not c.allowed_oauth_scopes:
            changes["AllowedOAuthScopes"] = list(self.e.scopes)
        if not c.callback_urls:
            changes["CallbackURLs"] = [self.e.redirect_uri]
        dropped = (" client_credentials cannot be combined with code on one app client: give "
                   "machine clients their own app client." if len(kept) < len(
                       c.allowed_oauth_flows) else "")
        if not c.allowed_oauth_flows_user_pool_client:
            return self._fail(
                FLOWS, "OAuth 2.0 is off on the app client (AllowedOAuthFlowsUserPoolClient is "
                "false): /oauth2/authorize and /oauth2/token refuse it (unauthorized_client)",
                "Turn on the hosted UI / OAuth 2.0 for the app client with the 'Authorization "
                "code grant'", LOGIN_PAGES, changes, note=dropped)
        if "code" not in c.allowed_oauth_flows:
            flows = ", ".join(c.allowed_oauth_flows) or "none"
            return self._fail(
                FLOWS, f"the app client allows the OAuth flows {flows}, not the authorization "
                "code grant the gateway uses: sign-in fails with unauthorized_client",
                "Enable 'Authorization code grant' in the OAuth 2.0 grant types",
                LOGIN_PAGES, changes, note=dropped)
        return Finding.ok(FLOWS, "OAuth 2.0 is on with the authorization code grant (flows: "
                          f"{', '.join(c.allowed_oauth_flows)})")

    def _registered(self, check: str, uri: str, registered: tuple[str, ...], *, what: str,
                    member: str, consequence: str) -> Finding:
        if uri in registered:
            return Finding.ok(check, f"{uri} is registered")
        near = [f"{url} ({how})" for url in registered
                if (how := difference(uri, url)) is not None]
        instead = f"; registered instead: {'; '.join(near[:3])}" if near else (
            f"; registered: {', '.join(registered[:5])}" if registered else
            f"; the app client has no {what}")
        return self._fail(
            check, f"{uri} is not among the app client's {what}{instead}: {consequence}",
            f"Add {uri} to the {what}, exactly as written here", LOGIN_PAGES,
            {member: with_added(registered, uri)})

    def callbacks(self) -> Finding:
        return self._registered(
            CALLBACKS, self.e.redirect_uri, self.client.callback_urls,
            what="allowed callback URLs", member="CallbackURLs", consequence=
            "/oauth2/authorize sends the browser to Cognito's error page (redirect_mismatch) "
            "and /oauth2/token answers unauthorized_client (invalid_redirect)")

    def sign_out(self) -> Finding:
        return self._registered(
            SIGN_OUT, self.e.logout_uri, self.client.logout_urls, what="allowed sign-out URLs",
            member="LogoutURLs", consequence="after sign-out Cognito shows its error page "
            "instead of returning to the gateway")

    def scopes(self) -> Finding:
        allowed = self.client.allowed_oauth_scopes
        missing = [s for s in self.e.scopes if s not in allowed]
        if not missing:
            return Finding.ok(SCOPES, f"the allowed scopes ({', '.join(allowed)}) cover "
                              f"cognito.scopes ({', '.join(self.e.scopes)})")
        openid = (" Without openid Cognito issues no ID token, and email and profile come "
                  "only with openid." if "openid" in missing else "")
        custom = (" A custom scope must first exist on a resource server of the pool."
                  if any("/" in s for s in missing) else "")
        return self._fail(
            SCOPES, f"cognito.scopes asks for {', '.join(missing)}, which the app client does "
            f"not allow (it allows {', '.join(allowed) or 'none'}): sign-in fails with "
            f"invalid_scope, or the tokens lack those claims.{openid}",
            f"Allow {', '.join(missing)} in the OpenID Connect scopes, or remove "
            f"{'them' if len(missing) > 1 else 'it'} from cognito.scopes",
            LOGIN_PAGES, {"AllowedOAuthScopes": with_added(allowed, *missing)}, note=custom)

    def secret(self, accepted: bool | None) -> Finding:
        has, wants = self.client.secret_sha256, self.e.secret_sha256
        console = client_console(self.pool, self.client, "App client information")
        if has is None and wants is None:
            return Finding.ok(SECRET, "a public client: no secret on the app client and none "
                              "configured (PKCE protects the code exchange)")
        if has is not None and wants is None:
            return Finding.fail(
                SECRET, "the app client has a client secret but cognito.client_secret is "
                "empty: the token endpoint refuses the gateway with invalid_client",
                f"Set cognito.client_secret (or GATEWAY_COGNITO_CLIENT_SECRET, or "
                f"client_secret_file) to the app client's secret: {console} > Client secret > "
                "Show, or `aws cognito-idp describe-user-pool-client --region "
                f"{self.e.region} --user-pool-id {self.e.user_pool_id} --client-id "
                f"{self.client.client_id} --query UserPoolClient.ClientSecret --output text "
                "> client_secret` and point cognito.client_secret_file at that file.")
        if has is None:
            return Finding.fail(
                SECRET, "the app client has no client secret but cognito.client_secret is set: "
                "Cognito refuses a secret sent by a public client (invalid_client)",
                "Remove cognito.client_secret (and GATEWAY_COGNITO_CLIENT_SECRET / "
                "client_secret_file): the gateway then signs in as a public client with PKCE. "
                "A secret cannot be added to a public client: for a confidential client create "
                "a new app client with 'Generate a client secret'.")
        if wants is not None and hmac.compare_digest(has, wants):
            return Finding.ok(SECRET, "cognito.client_secret is the app client's secret "
                              "(compared as SHA-256 digests)")
        if accepted:
            return Finding.ok(SECRET, "cognito.client_secret is not the secret "
                              "DescribeUserPoolClient shows, but the token endpoint accepts it: "
                              "the app client has a second secret (secret rotation)")
        return Finding.fail(
            SECRET, "cognito.client_secret differs from the app client's secret (compared as "
            "SHA-256 digests): the token endpoint refuses the gateway with invalid_client",
            f"Copy the app client's secret into cognito.client_secret ({console} > Client "
            "secret > Show); check a client_secret_file for a stray newline or space. While "
            "secrets rotate the app client has two and the API shows one: the 'client auth' "
            "check says whether the token endpoint accepts yours.")

    def providers(self) -> Finding:
        supported = self.client.supported_identity_providers
        missing = sorted(self.e.identity_providers - set(supported))
        if supported and not missing:
            return Finding.ok(PROVIDERS, f"the app client allows {', '.join(supported)}")
        add = missing or ["COGNITO"]
        detail = (f"the configuration names {', '.join(missing)}, which the app client does not "
                  f"allow (it allows {', '.join(supported) or 'none'}): a sign-in through "
                  f"{'them' if len(missing) > 1 else 'it'} ends on Cognito's error page"
                  if supported else
                  "the app client allows no identity provider (SupportedIdentityProviders is "
                  "empty): the hosted UI offers no way to sign in")
        return self._fail(
            PROVIDERS, detail,
            f"Select {', '.join(add)} under Identity providers",
            LOGIN_PAGES, {"SupportedIdentityProviders": with_added(supported, *add)},
            note=" A federated provider must first exist in the pool (Authentication > Social and "
            "external providers).")

    def auth_flows(self) -> Finding:
        flows = self.client.explicit_auth_flows
        modern = [f for f in flows if f.startswith("ALLOW_")]
        if not modern:
            return Finding.ok(AUTH_FLOWS, "ExplicitAuthFlows has no ALLOW_ flows set: Cognito's "
                              f"default includes {REFRESH_AUTH}" if not flows else
                              "legacy ExplicitAuthFlows: refresh tokens are allowed")
        if REFRESH_AUTH in modern:
            return Finding.ok(AUTH_FLOWS, f"{REFRESH_AUTH} is enabled: sessions refresh "
                              "server-side")
        return self._fail(
            AUTH_FLOWS, f"ExplicitAuthFlows ({', '.join(flows)}) lacks {REFRESH_AUTH}: every "
            "refresh is refused (unauthorized_client on grant_type=refresh_token) and users "
            "are sent back to sign in whenever their tokens expire",
            f"Enable {REFRESH_AUTH} in the authentication flows", CLIENT_INFORMATION,
            {"ExplicitAuthFlows": with_added(flows, REFRESH_AUTH)})
