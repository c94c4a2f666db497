"""The browser sign-in flow against the dev IdP, end to end over real HTTP."""

from __future__ import annotations

import pytest
from yarl import URL

from tests.conftest import ALICE, BOB, GatewayFactory, RunningGateway
from tests.support.browser import ScriptedBrowser


async def test_browser_without_session_is_sent_to_the_idp_with_pkce_state_and_nonce(
        gateway: RunningGateway) -> None:
    """A navigation without a session gets 302 to the discovered authorize endpoint."""
    async with ScriptedBrowser() as browser:
        page = await browser.request("GET", f"{gateway.url}/some/page?x=1",
                                     follow_redirects=False)
    assert page.status == 302
    location = URL(page.headers["Location"])
    assert str(location.with_query(None)) == gateway.provider.metadata.authorization_endpoint
    q = location.query
    assert q["response_type"] == "code"
    assert q["client_id"] == gateway.settings.cognito.client_id
    assert q["redirect_uri"] == f"{gateway.url}/oauth2/callback"
    assert q["code_challenge_method"] == "S256"
    assert len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 32
    assert len(q["nonce"]) >= 32
    assert q["scope"] == "openid email profile"


async def test_sign_in_returns_to_the_original_url_with_identity_headers(
        gateway: RunningGateway) -> None:
    """After the hosted-UI form, the browser lands on the URL it first asked for."""
    async with ScriptedBrowser() as browser:
        page = await browser.sign_in(f"{gateway.url}/deep/link?a=1&b=two%20words",
                                     ALICE.username, ALICE.password)
        assert page.status == 200
        echoed = page.json()
        assert isinstance(echoed, dict)
        assert echoed["raw_path"] == "/deep/link?a=1&b=two%20words"
        headers = {k.lower(): v for k, v in echoed["headers"]}
        assert headers["x-auth-request-user"] == "alice"
        assert headers["x-auth-request-email"] == "alice@example.com"
        assert headers["x-auth-request-groups"] == "admins,staff"
        assert headers["x-auth-request-sub"] == ALICE.subject
        again = await browser.get(f"{gateway.url}/next")
        assert again.status == 200


async def test_federated_user_without_email_signs_in(gateway: RunningGateway) -> None:
    """No email claim is not a reason to refuse anyone; the header is simply absent."""
    async with ScriptedBrowser() as browser:
        page = await browser.sign_in(f"{gateway.url}/", BOB.username, BOB.password)
    assert page.status == 200
    echoed = page.json()
    assert isinstance(echoed, dict)
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert headers["x-auth-request-user"] == BOB.username
    assert "x-auth-request-email" not in headers


@pytest.mark.parametrize("headers", [
    {"Accept": "application/json"},
    {"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"},
    {"Accept": "text/html", "Sec-Fetch-Mode": "cors"},
])
async def test_non_navigation_without_session_gets_401_json(
        gateway: RunningGateway, headers: dict[str, str]) -> None:
    """XHR, fetch and API calls get 401 with WWW-Authenticate instead of a redirect."""
    async with ScriptedBrowser() as browser:
        page = await browser.request("GET", f"{gateway.url}/api/data", headers=headers,
                                     follow_redirects=False)
    assert page.status == 401
    assert page.headers["WWW-Authenticate"].startswith("Bearer")
    body = page.json()
    assert isinstance(body, dict)
    assert body["error"] == "unauthorized"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_unsafe_methods_without_session_get_401(gateway: RunningGateway,
                                                      method: str) -> None:
    """Only GET/HEAD navigations are redirected: a form POST must not be lost in a redirect."""
    async with ScriptedBrowser() as browser:
        page = await browser.request(method, f"{gateway.url}/form", follow_redirects=False)
    assert page.status == 401


async def test_api_paths_get_401_even_for_browsers(make_gateway: GatewayFactory) -> None:
    """api_paths turn navigations into 401 JSON."""
    gateway = await make_gateway(GATEWAY_AUTH_API_PATHS="/api/*")
    async with ScriptedBrowser() as browser:
        page = await browser.request("GET", f"{gateway.url}/api/x", follow_redirects=False)
        other = await browser.request("GET", f"{gateway.url}/ui", follow_redirects=False)
    assert page.status == 401
    assert other.status == 302


async def test_public_paths_are_proxied_without_sign_in(make_gateway: GatewayFactory) -> None:
    """public_paths reach the upstream without a session and without identity headers."""
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/health,/static/*")
    async with ScriptedBrowser() as browser:
        page = await browser.request("GET", f"{gateway.url}/static/app.js",
                                     headers={"X-Auth-Request-User": "mallory"},
                                     follow_redirects=False)
    assert page.status == 200
    echoed = page.json()
    assert isinstance(echoed, dict)
    assert not [k for k, _ in echoed["headers"] if k.lower().startswith("x-auth-request")]


async def test_callback_with_unknown_state_shows_an_error_page(gateway: RunningGateway) -> None:
    """A callback whose state this browser never started is refused with a page, not a 500."""
    async with ScriptedBrowser() as browser:
        page = await browser.get(f"{gateway.url}/oauth2/callback?code=abc&state=forged")
    assert page.status == 400
    assert "state_mismatch" in page.text
    assert "Request id" in page.text
    assert "/oauth2/sign_in" in page.text


async def test_replayed_callback_is_refused(gateway: RunningGateway) -> None:
    """The callback URL works once: the pending sign-in is consumed and the code is single-use."""
    async with ScriptedBrowser() as browser:
        await browser.sign_in(f"{gateway.url}/", ALICE.username, ALICE.password)
        callback = _callback_url(browser)
        page = await browser.get(callback)
    assert page.status == 400
    assert "state_mismatch" in page.text


async def test_callback_replayed_with_its_state_cookie_fails_at_the_idp(
        gateway: RunningGateway) -> None:
    """Even with the pending-sign-in cookie copied, the code is spent: invalid_grant."""
    async with ScriptedBrowser() as browser:
        first = await browser.request("GET", f"{gateway.url}/", follow_redirects=False)
        pending_cookie = first.headers.getall("Set-Cookie")
        page = await browser.sign_in(first.headers["Location"], ALICE.username, ALICE.password)
        assert page.status == 200
        callback = _callback_url(browser)
    async with ScriptedBrowser() as thief:
        thief.jar.update_cookies_from_headers(pending_cookie, URL(gateway.url))
        page = await thief.get(callback)
    assert page.status == 400
    assert "invalid_grant" in page.text
    assert "already used" in page.text


async def test_idp_error_on_callback_is_explained(gateway: RunningGateway) -> None:
    """error=... from the authorize endpoint becomes a page with the code and a hint."""
    async with ScriptedBrowser() as browser:
        page = await browser.get(f"{gateway.url}/oauth2/callback?error=unauthorized_client"
                                 "&state=x")
    assert page.status == 400
    assert "unauthorized_client" in page.text
    assert "Authorization code grant" in page.text


PHISHING = "Your account is suspended. Call +1-555-0100 now"


async def test_idp_error_text_is_shown_only_for_this_browsers_own_sign_in(
        gateway: RunningGateway) -> None:
    """A crafted callback link never puts its text on the gateway's page; the IdP's
    error_description for the browser's own pending sign-in (matching state) is shown."""
    query = {"error": "invalid_request", "error_description": PHISHING}
    async with ScriptedBrowser() as browser:
        crafted = await browser.get(URL(f"{gateway.url}/oauth2/callback").with_query(
            query | {"state": "made-up"}))
        started = await browser.request("GET", f"{gateway.url}/oauth2/sign_in",
                                        follow_redirects=False)
        state = URL(started.headers["Location"]).query["state"]
        own = await browser.get(URL(f"{gateway.url}/oauth2/callback").with_query(
            query | {"state": state}))
        odd = await browser.get(URL(f"{gateway.url}/oauth2/callback").with_query(
            {"error": "<b>Call us</b>", "state": "x"}))
    assert crafted.status == own.status == 400
    assert "invalid_request" in crafted.text
    assert "suspended" not in crafted.text
    assert "555" not in crafted.text
    assert PHISHING in own.text
    assert "Call us" not in odd.text
    assert "idp_error" in odd.text


@pytest.mark.parametrize(("rd", "landing"), [
    ("/after?x=1", "/after?x=1"),
    ("https://evil.example/", "/"),
    ("//evil.example/", "/"),
    ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"),
])
async def test_sign_in_endpoint_returns_only_to_same_origin_paths(
        gateway: RunningGateway, rd: str, landing: str) -> None:
    """rd is honoured for same-origin paths only; anything else lands on /."""
    async with ScriptedBrowser() as browser:
        start = URL(f"{gateway.url}/oauth2/sign_in").with_query(rd=rd)
        page = await browser.sign_in(str(start), ALICE.username, ALICE.password)
    assert page.status == 200
    echoed = page.json()
    assert isinstance(echoed, dict)
    assert echoed["raw_path"] == landing


async def test_new_session_on_every_sign_in(gateway: RunningGateway) -> None:
    """Signing in again replaces the session id (no fixation) and the old cookie is dead."""
    async with ScriptedBrowser() as browser:
        await browser.sign_in(f"{gateway.url}/", ALICE.username, ALICE.password)
        first = browser.cookies_for(gateway.url)["_cognito_gateway"]
        await browser.sign_in(f"{gateway.url}/oauth2/sign_in", ALICE.username, ALICE.password)
        second = browser.cookies_for(gateway.url)["_cognito_gateway"]
    assert first != second
    async with ScriptedBrowser() as replay:
        replay.jar.update_cookies({"_cognito_gateway": first}, URL(gateway.url))
        page = await replay.request("GET", f"{gateway.url}/", follow_redirects=False)
    assert page.status == 302


def _callback_url(browser: ScriptedBrowser) -> str:
    return next(str(h.url) for h in browser.history if URL(str(h.url)).path == "/oauth2/callback")
