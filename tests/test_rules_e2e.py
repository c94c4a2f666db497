"""Rules end to end: the gateway in front of the echo app, signing in at the real dev IdP.

The pool has alice (groups admins, staff), bob (no groups), a resource server `orders` whose
`orders/read` scope API clients may ask for, and a SAML partner `PartnerSAML` whose users
sign in on its own (simulated) page and become pool users in group `<pool>_PartnerSAML`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import aiohttp
import pytest
from yarl import URL

from gateway.devidp import DevIdp, UserPool
from gateway.devidp.authorize import UNSUPPORTED_PROVIDER
from gateway.devidp.providers import IdentityProvider, ProviderUser
from tests.conftest import (
    ALICE,
    BOB,
    CLIENT_ID,
    CLIENT_SECRET,
    GatewayFactory,
    RunningGateway,
    Secrets,
    gateway_client,
    log_events,
    sign_in_cookies,
)
from tests.support.browser import NAVIGATION_HEADERS, ScriptedBrowser
from tests.support.tokens import user_tokens

if TYPE_CHECKING:
    import io
    from collections.abc import Mapping

POOL_ID = "local-1_DevPool01"
PARTNER_GROUP = f"{POOL_ID}_PartnerSAML"
CAROL = ProviderUser("carol@partner.example", "carol-Password-1", email="carol@partner.example",
                     email_verified=True)
ORDERS = "orders/read"
RULES = [
    {"paths": ["/health"], "action": "public"},                                    # 0
    {"paths": ["/*"], "methods": ["OPTIONS"], "action": "public"},                 # 1
    {"paths": ["/admin", "/admin/*"], "groups": ["admins"]},                       # 2
    {"paths": ["/api/orders", "/api/orders/*"], "scopes": [ORDERS]},               # 3
    {"paths": ["/blog", "/blog/*"], "unauthenticated": "allow"},                   # 4
    {"paths": ["/partner", "/partner/*"], "groups": [PARTNER_GROUP],               # 5
     "identity_provider": "PartnerSAML"},
]
ENV = {"GATEWAY_AUTH_RULES": json.dumps(RULES)}
PAGE = {"Accept": NAVIGATION_HEADERS["Accept"]}
XHR = {"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def pool(gateway_url: str, upstream: str) -> UserPool:
    """The pool above; the app client also calls back to the echo app, for bearer tokens."""
    client = gateway_client(
        gateway_url, callback_urls=[f"{gateway_url}/oauth2/callback", f"{upstream}/cb"],
        allowed_scopes=["openid", "email", "profile", ORDERS],
        supported_identity_providers=["COGNITO", "PartnerSAML"])
    return UserPool(pool_id=POOL_ID, users=[ALICE, BOB], clients=[client],
                    resource_servers={"orders": ["read"]},
                    identity_providers=[IdentityProvider("PartnerSAML", "SAML",
                                                         identifiers=["partner.example"],
                                                         users=[CAROL])])


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> RunningGateway:
    return await make_gateway(**ENV)


async def session_cookie(gateway: RunningGateway, who: str, secrets: Secrets) -> str:
    """The Cookie header of a session of `who` (alice or bob); signing in lands on `/`, which
    no rule governs."""
    user = {ALICE.username: ALICE, BOB.username: BOB}[who]
    cookie = await sign_in_cookies(gateway.url, user.username, user.password)
    secrets.add(*cookie.split("; "))
    return cookie


async def bearer(idp: DevIdp, upstream: str, secrets: Secrets, scope: str) -> str:
    """An Authorization header with alice's access token for `scope`."""
    tokens = await user_tokens(idp.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                               callback=f"{upstream}/cb", username=ALICE.username,
                               password=ALICE.password, scope=scope)
    secrets.add(tokens["access_token"], tokens["id_token"], tokens["refresh_token"])
    return f"Bearer {tokens['access_token']}"


async def fetch(gateway: RunningGateway, method: str, path: str,
                headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], str]:
    async with aiohttp.ClientSession() as http, http.request(
            method, URL(gateway.url + path, encoded=True), headers=dict(headers),
            allow_redirects=False) as resp:
        return resp.status, resp.headers, await resp.text()


def echoed(body: str) -> dict[str, str] | None:
    """The headers the echo app received (lower-case names), or None when it did not answer."""
    try:
        seen = json.loads(body)
    except ValueError:
        return None
    if not isinstance(seen, dict) or "raw_path" not in seen:
        return None
    return {k.lower(): v for k, v in seen["headers"]}


def decisions(gateway: RunningGateway, decision: str, rule: str) -> float:
    value = gateway.metrics.registry.get_sample_value(
        "cognito_gateway_auth_decisions_total", {"decision": decision, "rule": rule})
    return value or 0.0


@pytest.mark.parametrize(("who", "headers", "status"), [
    pytest.param(ALICE.username, PAGE, 200, id="member"),
    pytest.param(BOB.username, PAGE, 403, id="non-member-page"),
    pytest.param(BOB.username, JSON, 403, id="non-member-json"),
    pytest.param(None, PAGE, 302, id="anonymous-navigation"),
    pytest.param(None, XHR, 401, id="anonymous-xhr"),
])
async def test_admin_area_by_group(gateway: RunningGateway, idp: DevIdp, secrets: Secrets,
                                   who: str | None, headers: dict[str, str],
                                   status: int) -> None:
    """/admin/ lets members of admins through with their identity; other users get 403 (a
    page naming them and the group required, or JSON), anonymous navigations go to sign in
    and anonymous XHR gets 401; only members reach the app."""
    cookie = {"Cookie": await session_cookie(gateway, who, secrets)} if who else {}
    answered, answer_headers, body = await fetch(gateway, "GET", "/admin/users",
                                                 {**headers, **cookie})
    assert answered == status, body[:300]
    seen = echoed(body)
    assert (seen is not None) == (status == 200)
    if seen is not None:
        assert seen["x-auth-request-user"] == ALICE.username
    elif status == 403 and headers is PAGE:
        assert "Access denied" in body
        assert f"<strong>{BOB.username}</strong>" in body
        assert "<code>admins</code>" in body
        assert 'action="/oauth2/sign_out?rd=/admin/users"' in body
        assert answer_headers["X-Request-Id"] in body
    elif status == 403:
        assert json.loads(body) == {
            "error": "forbidden", "required": {"groups": ["admins"]},
            "message": "the signed-in principal does not meet the rule's requirements",
            "request_id": answer_headers["X-Request-Id"]}
    elif status == 302:
        assert answer_headers["Location"].startswith(f"{idp.base_url}/oauth2/authorize?")
        assert "identity_provider" not in URL(answer_headers["Location"]).query
    else:
        assert json.loads(body)["sign_in_url"] == "/oauth2/sign_in?rd=/admin/users"
    assert decisions(gateway, {200: "allowed", 403: "forbidden", 302: "redirected",
                               401: "unauthorized"}[status], "2") == 1


async def test_a_denial_is_counted_and_logged_with_its_rule(
        gateway: RunningGateway, secrets: Secrets, log_buffer: io.StringIO) -> None:
    """The deciding rule labels the decisions metric and names itself in the access log."""
    cookie = await session_cookie(gateway, BOB.username, secrets)
    _, headers, _ = await fetch(gateway, "GET", "/a/../admin/x", {**JSON, "Cookie": cookie})
    _, public_headers, _ = await fetch(gateway, "GET", "/health", JSON)
    assert decisions(gateway, "forbidden", "2") == 1
    assert decisions(gateway, "public", "0") == 1
    lines = {line["request_id"]: line for line in log_events(log_buffer)
             if line.get("event") == "request"}
    assert lines[headers["X-Request-Id"]]["rule"] == "2"
    assert lines[headers["X-Request-Id"]]["path"] == "/admin/x"
    assert lines[public_headers["X-Request-Id"]]["rule"] == "0"


async def test_public_health_check_reaches_the_app_without_identity(
        gateway: RunningGateway) -> None:
    """A public rule serves anonymous requests, and a forged identity header is removed."""
    answered, _, body = await fetch(gateway, "GET", "/health",
                                    {**JSON, "X-Auth-Request-User": "mallory"})
    assert answered == 200
    seen = echoed(body)
    assert seen is not None
    assert "x-auth-request-user" not in seen


@pytest.mark.parametrize(("scope", "status"), [
    pytest.param(f"openid {ORDERS}", 200, id="with-scope"),
    pytest.param("openid email", 403, id="without-scope"),
])
async def test_api_area_by_scope(gateway: RunningGateway, idp: DevIdp, upstream: str,
                                 secrets: Secrets, scope: str, status: int) -> None:
    """/api/orders needs orders/read in the bearer token's scope; without it, 403 JSON
    naming the scope."""
    authorization = await bearer(idp, upstream, secrets, scope)
    answered, _, body = await fetch(gateway, "POST", "/api/orders/7",
                                    {**JSON, "Authorization": authorization})
    assert answered == status, body[:300]
    if status == 200:
        assert (echoed(body) or {})["x-auth-request-user"] == ALICE.username
    else:
        assert json.loads(body)["required"] == {"scopes": [ORDERS]}


@pytest.mark.parametrize(("scopes", "status"), [
    pytest.param(f"openid,email,profile,{ORDERS}", 200, id="signed-in-with-scope"),
    pytest.param("openid,email,profile", 403, id="signed-in-without"),
])
async def test_a_sessions_scopes_come_from_its_access_token(
        make_gateway: GatewayFactory, secrets: Secrets, scopes: str, status: int) -> None:
    """A browser session passes a scope rule when the access token it signed in with has the
    scope: the session keeps that token because a rule needs it, and still never passes it
    upstream (pass_access_token is off)."""
    gateway = await make_gateway(**ENV, GATEWAY_COGNITO_SCOPES=scopes)
    cookie = await session_cookie(gateway, ALICE.username, secrets)
    answered, _, body = await fetch(gateway, "GET", "/api/orders", {**JSON, "Cookie": cookie})
    assert answered == status, body[:300]
    if status == 200:
        seen = echoed(body) or {}
        assert "x-auth-request-access-token" not in seen
        assert "x-amzn-oidc-accesstoken" not in seen


@pytest.mark.parametrize("who", [None, ALICE.username])
async def test_unauthenticated_allow_serves_everyone(gateway: RunningGateway, secrets: Secrets,
                                                     who: str | None) -> None:
    """unauthenticated = "allow" proxies anonymous requests without identity headers (a forged
    one removed) and signed-in ones with theirs."""
    cookie = {"Cookie": await session_cookie(gateway, who, secrets)} if who else {}
    answered, _, body = await fetch(gateway, "GET", "/blog/post",
                                    {**PAGE, "X-Auth-Request-User": "mallory", **cookie})
    assert answered == 200
    seen = echoed(body)
    assert seen is not None
    assert seen.get("x-auth-request-user") == who
    assert decisions(gateway, "anonymous" if who is None else "allowed", "4") == 1


async def test_cors_preflight_is_let_through_by_a_method_rule(gateway: RunningGateway) -> None:
    """An anonymous OPTIONS preflight of a protected API path reaches the app (rule 1); the
    same path with the real method does not."""
    preflight = {"Origin": "https://spa.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    answered, _, body = await fetch(gateway, "OPTIONS", "/api/orders/7", preflight)
    assert answered == 200
    seen = echoed(body)
    assert seen is not None
    assert seen["access-control-request-method"] == "POST"
    answered, _, _ = await fetch(gateway, "POST", "/api/orders/7",
                                 {"Origin": "https://spa.example"})
    assert answered == 401


@pytest.mark.usefixtures("idp")
async def test_partner_area_signs_in_at_its_identity_provider(
        gateway: RunningGateway, secrets: Secrets) -> None:
    """A navigation to the partner area goes to /authorize with identity_provider=PartnerSAML,
    straight to the partner's sign-in page; once signed in there, the linked pool user (in
    the partner's group) lands on the page asked for."""
    async with ScriptedBrowser() as browser:
        first = await browser.request("GET", f"{gateway.url}/partner/reports?q=1",
                                      follow_redirects=False)
        authorize = URL(first.headers["Location"])
        assert authorize.query["identity_provider"] == "PartnerSAML"
        provider_page = await browser.follow(authorize)
        assert "/simulated-idp/PartnerSAML/sign-in" in provider_page.url
        (form,) = provider_page.forms()
        page = await browser.submit(provider_page, form, {"user_id": CAROL.user_id,
                                                          "password": CAROL.password})
        secrets.add(*browser.cookies_for(gateway.url).values())
    assert page.status == 200, page.text[:300]
    assert page.url == f"{gateway.url}/partner/reports?q=1"
    seen = echoed(page.text)
    assert seen is not None
    assert seen["x-auth-request-user"] == f"PartnerSAML_{CAROL.user_id}"
    assert PARTNER_GROUP in seen["x-auth-request-groups"].split(",")


@pytest.mark.parametrize(("chosen", "sent"), [
    pytest.param("PartnerSAML", "PartnerSAML", id="a-rules-provider"),
    pytest.param("Google", "Google", id="allow-listed"),
    pytest.param("Evil", None, id="not-listed-ignored"),
])
async def test_sign_in_passes_only_allowed_identity_providers(
        make_gateway: GatewayFactory, chosen: str, sent: str | None) -> None:
    """/oauth2/sign_in?identity_provider= reaches /authorize only for a provider that
    cognito.identity_providers or a rule names."""
    gateway = await make_gateway(**ENV, GATEWAY_COGNITO_IDENTITY_PROVIDERS="Google")
    answered, headers, _ = await fetch(
        gateway, "GET", f"/oauth2/sign_in?rd=/x&identity_provider={chosen}", PAGE)
    assert answered == 302
    assert URL(headers["Location"]).query.get("identity_provider") == sent


@pytest.mark.parametrize(("path", "status"), [
    pytest.param("/admin;v=1/users", 400, id="params-hide-the-area"),
    pytest.param("/%61dmin/users", 401, id="encoded-letter"),
    pytest.param("/blog/../admin/users", 401, id="dot-segments"),
    pytest.param("/admin/%2e%2e/blog/x", 400, id="encoded-dot-segment"),
])
async def test_paths_are_decided_after_normalisation(gateway: RunningGateway, path: str,
                                                     status: int) -> None:
    """Another spelling of an admin path is decided as the admin path, or refused."""
    answered, _, body = await fetch(gateway, "GET", path, JSON)
    assert answered == status, body[:300]
    assert echoed(body) is None



async def test_a_provider_the_pool_lacks_ends_on_the_sign_in_failure_page(
        make_gateway: GatewayFactory) -> None:
    """A rule naming a provider the user pool does not have: the IdP refuses /authorize as
    Cognito does (invalid_request with its description), and the browser lands on the
    gateway's sign-in failure page saying so."""
    gateway = await make_gateway(GATEWAY_AUTH_RULES=json.dumps(
        [{"paths": ["/x/*"], "identity_provider": "Nobody"}]))
    async with ScriptedBrowser() as browser:
        page = await browser.get(f"{gateway.url}/x/y")
    assert page.status == 400
    assert "invalid_request" in page.text
    assert UNSUPPORTED_PROVIDER in page.text
