"""nginx `auth_request` in front of an app, running the shipped deploy/forward-auth/nginx.conf.

Real Debian nginx on loopback serves the snippet with its placeholders filled in (the gateway's
and the app's addresses); the gateway answers /oauth2/auth and serves the sign-in through
nginx, on nginx's origin; the echo app behind nginx answers with the headers it received.
Requests to decide on go out as raw bytes (`raw_request`) so that dot segments and escapes
reach nginx exactly as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from yarl import URL

from gateway.devidp import DevIdp, User, UserPool
from gateway.translate import sign_in_path
from tests.conftest import (
    ALICE,
    BOB,
    CLIENT_ID,
    CLIENT_SECRET,
    GatewayFactory,
    RunningGateway,
    Secrets,
    gateway_client,
)
from tests.support.browser import NAVIGATION_HEADERS, Page, ScriptedBrowser
from tests.support.nginx import RunningNginx, start_nginx
from tests.support.rawhttp import RawResponse, raw_request
from tests.support.tokens import user_tokens

if TYPE_CHECKING:
    import socket

SNIPPET = Path(__file__).resolve().parents[1] / "deploy" / "forward-auth" / "nginx.conf"
COOKIE = "_cognito_gateway"
JSON = {"Accept": "application/json"}
PAGE = {"Accept": NAVIGATION_HEADERS["Accept"]}
PUBLIC = {"GATEWAY_AUTH_PUBLIC_PATHS": '["/public/*"]'}
# A user whose tokens carry enough groups to spread the session over several cookie chunks.
CAROL = User(username="carol", password="carol-Password-1", email="carol@example.com",
             email_verified=True,
             groups=[f"team-{i:03d}-with-a-rather-long-group-name" for i in range(25)])
USERS = {user.username: user for user in (ALICE, BOB, CAROL)}
LANDING = "/oauth2/sign_in?rd=/oauth2/userinfo"   # a sign-in that lands where no rule applies
ORDERS_SCOPE = "orders/read"     # a resource server's scope, for API rules by scope
RULES = {"GATEWAY_AUTH_RULES": json.dumps([
    {"paths": ["/health"], "action": "public"},
    {"paths": ["/admin", "/admin/*"], "groups": ["admins"]},
    {"paths": ["/api/orders", "/api/orders/*"], "scopes": [ORDERS_SCOPE]},
])}


def render_snippet(gateway: str, app: str) -> tuple[str, str]:
    """The shipped snippet as (http-context part, inside of its server block), filled in.

    Placeholders are substituted; the server block's own `listen` and TLS lines are left out
    because `start_nginx` listens on a plain loopback port itself. Nothing else is changed.
    """
    text = SNIPPET.read_text()
    for name, value in {"GATEWAY_ADDRESS": gateway, "APP_ADDRESS": app,
                        "PUBLIC_HOST": "127.0.0.1"}.items():
        text = text.replace("${" + name + "}", value)
    head, opening, rest = text.partition("\nserver {\n")
    assert opening, "the snippet has no top-level server block"
    body, closing, tail = rest.rpartition("\n}")
    assert closing, "the snippet's server block is not closed"
    assert not tail.strip(), "the server block must end the snippet"
    body = re.sub(r"(?m)^\s*(listen|ssl_certificate|ssl_certificate_key)\s.*\n", "", body)
    directives = re.sub(r"(?m)#.*$", "", head + body)
    assert "${" not in directives, "a placeholder was left unfilled"
    return head, body


@dataclass(frozen=True)
class Credential:
    """Who makes a request: nobody, a browser session, or a bearer access token."""

    kind: str = "anonymous"          # anonymous | session | bearer
    username: str = ALICE.username
    scope: str = "openid email profile"

    @property
    def user(self) -> User:
        return USERS[self.username]


ANONYMOUS = Credential()
ALICE_SESSION = Credential("session")
ALICE_BEARER = Credential("bearer")
ALICE_ORDERS_BEARER = Credential("bearer", scope=f"openid {ORDERS_SCOPE}")
BOB_SESSION = Credential("session", BOB.username)


@dataclass(frozen=True)
class Case:
    """One request through nginx and what the client must get."""

    who: Credential
    target: str
    status: int
    env: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=lambda: JSON)
    method: str = "GET"


Stack = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
def front(upstream: str, gateway_port: int) -> Iterator[RunningNginx]:
    """nginx serving the shipped snippet, in front of the echo app and the gateway's port."""
    http_conf, body = render_snippet(f"127.0.0.1:{gateway_port}", URL(upstream).raw_authority)
    nginx = start_nginx(body, http_conf=http_conf)
    yield nginx
    nginx.stop()


@pytest.fixture
def pool(front: RunningNginx, upstream: str) -> UserPool:
    """The app client registers nginx's origin: the browser only ever talks to nginx."""
    callbacks = [f"{front.url}/oauth2/callback", f"{upstream}/cb"]
    client = gateway_client(front.url, callback_urls=callbacks,
                            allowed_scopes=["openid", "email", "profile", ORDERS_SCOPE])
    return UserPool(users=[ALICE, BOB, CAROL], clients=[client],
                    resource_servers={"orders": ["read"]})


@pytest.fixture
def behind_nginx(make_gateway: GatewayFactory, front: RunningNginx) -> Stack:
    """Start the gateway for nginx's public origin, trusting nginx (loopback) as its proxy."""
    async def start(**env: str) -> RunningGateway:
        return await make_gateway(GATEWAY_SERVER_PUBLIC_URL=front.url,
                                  GATEWAY_SERVER_TRUSTED_PROXIES="127.0.0.1/32", **env)

    return start


async def sign_in_through(front: RunningNginx, browser: ScriptedBrowser, user: User,
                          start: str = "/") -> Page:
    """Sign `user` in with `browser`, starting at `start` on nginx; the page it lands on."""
    page = await browser.sign_in(URL(front.url + start, encoded=True), user.username,
                                 user.password)
    assert COOKIE in browser.cookies_for(front.url), page.text[:300]
    return page


async def credential_headers(who: Credential, front: RunningNginx, idp: DevIdp, upstream: str,
                             secrets: Secrets) -> dict[str, str]:
    """The Cookie or Authorization header that makes a request come from `who`."""
    if who.kind == "session":
        async with ScriptedBrowser() as browser:
            # Landing on a JSON page: a 403 page's sign-out form would pass for a consent form.
            await sign_in_through(front, browser, who.user, LANDING)
            cookies = browser.cookies_for(front.url)
        secrets.add(*cookies.values())
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    if who.kind == "bearer":
        tokens = await user_tokens(idp.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                   callback=f"{upstream}/cb", username=who.user.username,
                                   password=who.user.password, scope=who.scope)
        secrets.add(tokens["access_token"], tokens["id_token"], tokens["refresh_token"])
        return {"Authorization": f"Bearer {tokens['access_token']}"}
    return {}


async def send(front: RunningNginx, method: str, target: str,
               headers: Mapping[str, str]) -> RawResponse:
    return await raw_request(front.port, f"{method} {target} HTTP/1.1".encode(), dict(headers))


def app_view(response: RawResponse | str | bytes) -> dict[str, Any]:
    """What the echo app received: its method, raw path, and headers (lower-case names)."""
    body = response.body if isinstance(response, RawResponse) else response
    echoed = json.loads(body)
    assert isinstance(echoed, dict), body
    assert "raw_path" in echoed, body
    return {"raw_path": echoed["raw_path"],
            "headers": {k.lower(): v for k, v in echoed["headers"]}}


def served(response: RawResponse) -> bool:
    """True when the answer is the app's (the echo), whatever its status."""
    try:
        return "raw_path" in json.loads(response.body)
    except ValueError:
        return False


def nginx_warnings(front: RunningNginx) -> list[str]:
    """Warnings and worse in nginx's log, other than the expected unexpected-auth-status."""
    return [line for line in front.error_log().splitlines()
            if re.search(r"\[(warn|error|crit|alert|emerg)\]", line)
            and "auth request unexpected status: 400" not in line]


DECISIONS = [
    pytest.param(Case(ALICE_SESSION, "/page", 200), id="session"),
    pytest.param(Case(ALICE_SESSION, "/page", 200, headers=PAGE), id="session-navigation"),
    pytest.param(Case(ALICE_SESSION, "/form", 200, method="POST"), id="session-post"),
    pytest.param(Case(ALICE_BEARER, "/api/items", 200), id="bearer"),
    pytest.param(Case(ALICE_ORDERS_BEARER, "/api/orders", 200), id="bearer-with-api-scope"),
    pytest.param(Case(ALICE_SESSION, "/page", 200,
                      env={"GATEWAY_AUTH_ALLOWED_GROUPS": '["staff"]'}), id="in-allowed-group"),
    pytest.param(Case(ALICE_SESSION, "/page", 403, headers=PAGE,
                      env={"GATEWAY_AUTH_ALLOWED_GROUPS": '["finance"]'}),
                 id="outside-allowed-groups-navigation"),
    pytest.param(Case(ALICE_SESSION, "/page", 403,
                      env={"GATEWAY_AUTH_ALLOWED_GROUPS": '["finance"]'}),
                 id="outside-allowed-groups-api"),
    pytest.param(Case(ALICE_BEARER, "/api/items", 403,
                      env={"GATEWAY_AUTH_ALLOWED_GROUPS": '["finance"]'}),
                 id="outside-allowed-groups-bearer"),
    pytest.param(Case(BOB_SESSION, "/page", 403, headers=PAGE,
                      env={"GATEWAY_AUTH_ALLOWED_GROUPS": '["admins"]'}),
                 id="no-groups-at-all"),
    pytest.param(Case(ANONYMOUS, "/public/page", 200, env=PUBLIC), id="public"),
    pytest.param(Case(ANONYMOUS, "/public/page?q=1", 200, headers=PAGE, env=PUBLIC),
                 id="public-navigation"),
    pytest.param(Case(ANONYMOUS, "/secret", 401, env=PUBLIC), id="not-public"),
    # nginx resolves the dot segment for its own routing but passes the target on as sent; the
    # gateway resolves it too, and decides on /secret.
    pytest.param(Case(ANONYMOUS, "/public/../secret", 401, env=PUBLIC), id="dot-segment"),
    pytest.param(Case(ANONYMOUS, "/public//../secret", 401, env=PUBLIC),
                 id="dot-segment-after-double-slash"),
    # Targets that servers read differently: the gateway refuses them (400), nginx reports an
    # unexpected auth status as 500, and the snippet hands the client the gateway's 400.
    pytest.param(Case(ANONYMOUS, "/public/%2e%2e/secret", 400, env=PUBLIC),
                 id="encoded-dot-segment"),
    pytest.param(Case(ANONYMOUS, "/public%2F..%2Fsecret", 400, env=PUBLIC),
                 id="encoded-slash"),
    pytest.param(Case(ANONYMOUS, "/public/..;/secret", 400, env=PUBLIC),
                 id="dot-segment-with-parameters"),
    # A client naming another target in the headers the gateway reads from its proxy.
    pytest.param(Case(ANONYMOUS, "/secret", 401, env=PUBLIC, headers={
        **JSON, "X-Forwarded-Uri": "/public/page", "X-Original-URI": "/public/page",
        "X-Original-URL": "/public/page", "X-Forwarded-Method": "GET"}),
        id="forged-original-uri"),
    pytest.param(Case(ANONYMOUS, "/oauth2/auth", 404, env=PUBLIC), id="auth-endpoint-internal"),
    pytest.param(Case(ALICE_SESSION, "/oauth2/auth", 404), id="auth-endpoint-internal-signed-in"),
    # Per-route rules ([[auth.rules]]): the admin area by group, the API by scope, a public
    # health check; the gateway's answer reaches the client through the snippet's second call.
    pytest.param(Case(ALICE_SESSION, "/admin/users", 200, env=RULES, headers=PAGE),
                 id="admin-in-group"),
    pytest.param(Case(BOB_SESSION, "/admin/users", 403, env=RULES, headers=PAGE),
                 id="admin-not-in-group"),
    pytest.param(Case(BOB_SESSION, "/admin/users", 403, env=RULES), id="admin-not-in-group-api"),
    pytest.param(Case(ANONYMOUS, "/admin/users", 302, env=RULES, headers=PAGE),
                 id="admin-anonymous-navigation"),
    pytest.param(Case(ANONYMOUS, "/a/../admin/users", 401, env=RULES),
                 id="admin-after-normalisation"),
    pytest.param(Case(ALICE_ORDERS_BEARER, "/api/orders/7", 200, env=RULES),
                 id="api-with-scope"),
    pytest.param(Case(ALICE_BEARER, "/api/orders/7", 403, env=RULES), id="api-without-scope"),
    pytest.param(Case(ANONYMOUS, "/health", 200, env=RULES), id="rule-public"),
    pytest.param(Case(ANONYMOUS, "/health/x", 401, env=RULES), id="rule-public-exact"),
]


@pytest.mark.parametrize("case", DECISIONS)
async def test_decision_through_nginx(case: Case, behind_nginx: Stack, front: RunningNginx,
                                      idp: DevIdp, upstream: str, secrets: Secrets) -> None:
    """Through the shipped nginx snippet the client gets the gateway's decision: allowed
    requests reach the app with the caller's identity; nothing else reaches the app."""
    await behind_nginx(**case.env)
    headers = {**await credential_headers(case.who, front, idp, upstream, secrets),
               **case.headers}
    response = await send(front, case.method, case.target, headers)
    assert response.status == case.status, (response.body[:300], front.error_log()[-1500:])
    assert served(response) == (case.status == 200)
    assert not nginx_warnings(front)
    if case.status != 200:
        return
    seen = app_view(response)
    assert seen["raw_path"] == case.target
    expected_user = case.who.username if case.who.kind != "anonymous" else None
    assert seen["headers"].get("x-auth-request-user") == expected_user


@pytest.mark.parametrize(("method", "headers", "expected"), [
    pytest.param("GET", PAGE, "sign-in", id="navigation"),
    pytest.param("GET", dict(NAVIGATION_HEADERS), "sign-in", id="browser-headers"),
    pytest.param("GET", {**PAGE, "Sec-Fetch-Mode": "navigate"}, "sign-in", id="fetch-navigate"),
    pytest.param("HEAD", PAGE, "sign-in", id="head-navigation"),
    pytest.param("GET", JSON, 401, id="accept-json"),
    pytest.param("GET", {}, 401, id="no-accept"),
    pytest.param("GET", {**PAGE, "Sec-Fetch-Mode": "cors"}, 401, id="fetch-cors"),
    pytest.param("GET", {**PAGE, "Sec-Fetch-Mode": "NAVIGATE"}, 401, id="fetch-mode-other-case"),
    pytest.param("GET", {**PAGE, "X-Requested-With": "XMLHttpRequest"}, 401, id="xhr"),
    pytest.param("POST", PAGE, 401, id="form-post"),
    pytest.param("GET", {**JSON, "Authorization": "Bearer not-a-token"}, 401, id="bad-bearer"),
])
async def test_anonymous_navigation_is_sent_to_sign_in_and_api_calls_get_401(
        method: str, headers: Mapping[str, str], expected: str | int, behind_nginx: Stack,
        front: RunningNginx) -> None:
    """nginx applies the gateway's navigation rule: browser page loads are redirected to the
    sign-in on the same origin, everything else gets the gateway's own 401 JSON."""
    await behind_nginx()
    response = await send(front, method, "/secret/page?tab=2", headers)
    assert not served(response)
    if expected == "sign-in":
        assert response.status == 302, response.body[:300]
        assert response.headers["location"] == front.url + sign_in_path("/secret/page?tab=2")
        return
    assert response.status == expected
    assert "location" not in response.headers
    assert response.headers["www-authenticate"].startswith("Bearer")
    if method != "HEAD":
        assert json.loads(response.body)["error"] == "unauthorized"


@pytest.mark.parametrize("target", ["/", "/deep/page", "/deep/page?tab=2", "/deep/a%C3%A9"])
async def test_sign_in_through_nginx_lands_on_the_page_asked_for(
        target: str, behind_nginx: Stack, front: RunningNginx, idp: DevIdp) -> None:
    """An anonymous browser is sent to sign in through nginx and, signed in, lands on the
    page it first asked for, served by the app with the user's identity; the browser never
    talks to the gateway directly."""
    gateway = await behind_nginx()
    async with ScriptedBrowser() as browser:
        first = await browser.request("GET", URL(front.url + target, encoded=True),
                                      follow_redirects=False)
        assert first.status == 302
        assert first.headers["Location"] == front.url + sign_in_path(target)
        page = await sign_in_through(front, browser, ALICE, target)
        hosts = {URL(hop.url).origin() for hop in browser.history}
    assert page.status == 200, page.text[:300]
    assert page.url == front.url + target
    seen = app_view(page.text)
    assert seen["raw_path"] == target
    assert seen["headers"]["x-auth-request-user"] == ALICE.username
    assert hosts == {URL(front.url).origin(), URL(idp.base_url).origin()}
    assert URL(gateway.url).origin() not in hosts


FORGED = {
    "X-Auth-Request-User": "mallory", "X-Auth-Request-Email": "mallory@example.net",
    "X-Auth-Request-Groups": "admins", "X-Auth-Request-Sub": "forged-sub",
    "X-Auth-Request-Access-Token": "forged-token", "X-Amzn-Oidc-Identity": "forged-sub",
    "X-Amzn-Oidc-Data": "forged-assertion", "X-Amzn-Oidc-Accesstoken": "forged-token",
    "X_Auth_Request_User": "mallory",
    "X-Original-URL": "/admin", "X-Rewrite-URL": "/admin", "X-Original-URI": "/admin",
    "X-Original-Host": "evil.example", "X-Host": "evil.example",
    "X-Original-Method": "DELETE", "X-Forwarded-Uri": "/admin", "X-Forwarded-Method": "DELETE",
    "X-Forwarded-Path": "/admin", "X-Forwarded-Prefix": "/admin",
    "X-HTTP-Method-Override": "DELETE", "X-HTTP-Method": "DELETE", "X-Method-Override": "DELETE",
}


ALL_SETS = {"GATEWAY_HEADERS_SETS": '["x-auth-request", "alb"]',
            "GATEWAY_HEADERS_PASS_ACCESS_TOKEN": "true"}


@pytest.mark.parametrize(("who", "target", "env", "identity"), [
    pytest.param(ALICE_SESSION, "/page", {}, {"x-auth-request-user": ALICE.username,
                                              "x-auth-request-email": ALICE.email,
                                              "x-auth-request-groups": "admins,staff",
                                              "x-auth-request-sub": ALICE.sub}, id="alice"),
    # Every header of both sets; None: present, with a value only the gateway knows.
    pytest.param(ALICE_SESSION, "/page", ALL_SETS, {
        "x-auth-request-user": ALICE.username, "x-auth-request-email": ALICE.email,
        "x-auth-request-groups": "admins,staff", "x-auth-request-sub": ALICE.sub,
        "x-auth-request-access-token": None, "x-amzn-oidc-identity": ALICE.sub,
        "x-amzn-oidc-data": None, "x-amzn-oidc-accesstoken": None}, id="alice-alb-and-token"),
    # Bob has no email and no groups: the gateway sends neither, and the forged ones stay out.
    pytest.param(BOB_SESSION, "/page", {}, {"x-auth-request-user": BOB.username,
                                            "x-auth-request-sub": BOB.sub},
                 id="bob-no-email-no-groups"),
    pytest.param(ANONYMOUS, "/public/page", {}, {}, id="anonymous-public-path"),
])
async def test_app_sees_the_gateways_identity_and_never_a_forged_one(
        who: Credential, target: str, env: dict[str, str], identity: dict[str, str | None],
        behind_nginx: Stack, front: RunningNginx, idp: DevIdp, upstream: str,
        secrets: Secrets) -> None:
    """The app gets exactly the identity headers the gateway sent; a client's copies of them,
    and its URL, host or method overrides, never reach the app."""
    await behind_nginx(**PUBLIC, **env)
    headers = {**await credential_headers(who, front, idp, upstream, secrets), **JSON, **FORGED}
    response = await send(front, "GET", target, headers)
    assert response.status == 200, response.body[:300]
    seen = app_view(response)["headers"]
    family = {k: v for k, v in seen.items() if k.startswith(("x-auth-request", "x-amzn-oidc"))}
    assert set(family) == set(identity)
    assert {k: v for k, v in identity.items() if v is not None} == {
        k: family[k] for k, v in identity.items() if v is not None}
    leaked = {k: v for k, v in FORGED.items() if seen.get(k.lower()) == v}
    assert not leaked


async def test_twelve_kilobytes_of_cookies_pass_nginx_and_the_gateway(
        behind_nginx: Stack, front: RunningNginx, idp: DevIdp, upstream: str,
        secrets: Secrets) -> None:
    """A session next to the app's own cookies, 12 KB of Cookie header (nginx's default limit
    is 8 KB, a line), is decided on and served."""
    await behind_nginx()
    headers = await credential_headers(ALICE_SESSION, front, idp, upstream, secrets)
    headers["Cookie"] += "; app_state=" + "x" * (12 * 1024 - len(headers["Cookie"]))
    response = await send(front, "GET", "/page", {**JSON, **headers})
    assert response.status == 200, response.body[:300]
    assert app_view(response)["headers"]["x-auth-request-user"] == ALICE.username


async def test_gateway_down_answers_502_and_never_serves_the_app(
        front: RunningNginx, gateway_socket: socket.socket) -> None:
    """With the gateway not answering, nothing reaches the app: the client gets 502."""
    gateway_socket.close()  # the gateway's port refuses connections: nothing listens
    response = await send(front, "GET", "/page", PAGE)
    assert response.status == 502
    assert not served(response)


async def test_sign_out_through_nginx_ends_the_session(behind_nginx: Stack,
                                                       front: RunningNginx) -> None:
    """Sign-out works on nginx's origin (same-origin POST, IdP logout, signed-out page), and
    the old session cookie grants nothing afterwards."""
    await behind_nginx()
    async with ScriptedBrowser() as browser:
        await sign_in_through(front, browser, ALICE)
        old = "; ".join(f"{k}={v}" for k, v in browser.cookies_for(front.url).items())
        confirm = await browser.get(front.url + "/oauth2/sign_out")
        done = await browser.submit(confirm, confirm.forms()[0])
    assert done.status == 200, done.text[:300]
    assert done.url == front.url + "/oauth2/signed_out"
    response = await send(front, "GET", "/page", {**JSON, "Cookie": old})
    assert response.status == 401
    assert not served(response)


async def test_session_renewed_during_the_auth_call_reaches_the_browser(
        behind_nginx: Stack, front: RunningNginx, secrets: Secrets) -> None:
    """A refresh made while answering /oauth2/auth rewrites every chunk of a multi-cookie
    session through nginx, with the gateway's attributes, and deletes a leftover chunk; the
    browser stays signed in with the renewed cookies."""
    # Tokens valid for an hour are always "due" with this margin: every request refreshes.
    await behind_nginx(GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS="3600")
    async with ScriptedBrowser() as browser:
        await sign_in_through(front, browser, CAROL)
        before = browser.cookies_for(front.url)
        secrets.add(*before.values())
        chunks = sorted(name for name in before if re.fullmatch(rf"{COOKIE}(_\d)?", name))
        assert len(chunks) >= 2, "the session must span several cookies to test chunking"
        browser.jar.update_cookies({f"{COOKIE}_7": "leftover"}, URL(front.url))
        page = await browser.get(front.url + "/page", headers=JSON)
        after = browser.cookies_for(front.url)
        secrets.add(*after.values())
        again = await browser.get(front.url + "/page", headers=JSON)
    assert page.status == 200, page.text[:300]
    renewed = {header.split("=", 1)[0]: header for header in page.hops[-1].set_cookies}
    assert set(renewed) == {*chunks, f"{COOKIE}_7"}
    for name in chunks:
        attributes = {part.strip().split("=")[0].lower() for part in renewed[name].split(";")[1:]}
        assert {"httponly", "path", "samesite", "max-age"} <= attributes, renewed[name]
        assert after[name] != before[name]
    assert renewed[f"{COOKIE}_7"].startswith(f"{COOKIE}_7=;")
    assert f"{COOKIE}_7" not in after
    assert again.status == 200
    assert app_view(again.text)["headers"]["x-auth-request-user"] == CAROL.username
