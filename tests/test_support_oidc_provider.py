"""Tests of the test-support kit: npm oidc-provider, the scripted browser and headless Chromium."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.browser import ScriptedBrowser, SignInError, parse_forms
from tests.support.chromium import CHROMIUM_SKIP_REASON, chromium_available, chromium_context
from tests.support.oidc_provider import (
    NODE_SKIP_REASON,
    OidcClient,
    OidcUser,
    RunningProvider,
    node_available,
    start_oidc_provider,
)

ServerFactory = Callable[..., Awaitable[TestServer]]

needs_node = pytest.mark.skipif(not node_available(), reason=NODE_SKIP_REASON)

ALICE = OidcUser(
    username="alice",
    password="correct horse",
    sub="11111111-aaaa-4aaa-8aaa-111111111111",
    email="alice@example.com",
    groups=["admins", "staff"],
)
BOB = OidcUser(username="bob", password="hunter2", sub="bob-sub", email=None, groups=[])


def pkce_pair() -> tuple[str, str]:
    """Return a PKCE (verifier, S256 challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def relying_party(aiohttp_server: ServerFactory) -> tuple[TestServer, list[dict[str, str]]]:
    """Start a tiny relying party whose ``/callback`` records its query and says "signed in"."""
    received: list[dict[str, str]] = []

    async def callback(request: web.Request) -> web.Response:
        received.append(dict(request.query))
        return web.Response(text="<html><body>signed in</body></html>", content_type="text/html")

    async def home(_request: web.Request) -> web.Response:
        return web.Response(text="<html><body>home</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/callback", callback)
    app.router.add_get("/", home)
    server = await aiohttp_server(app, host="127.0.0.1")
    return server, received


async def verified_id_token(
    http: aiohttp.ClientSession, op: RunningProvider, token: str, audience: str
) -> dict[str, Any]:
    """Verify ``token`` against the provider's JWKS and return its claims."""
    async with http.get(f"{op.issuer}/jwks") as response:
        jwks = await response.json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=audience, issuer=op.issuer
    )
    return claims


@pytest.mark.node
@needs_node
async def test_discovery_document() -> None:
    """The provider starts on loopback and publishes the endpoints the gateway relies on."""
    client = OidcClient("app", "secret", ["http://127.0.0.1:1/callback"])
    async with (
        start_oidc_provider(clients=[client], users=[ALICE]) as op,
        aiohttp.ClientSession() as http,
        http.get(op.discovery_url) as response,
    ):
        assert response.status == 200
        document = await response.json()
    assert op.issuer.startswith("http://127.0.0.1:")
    assert document["issuer"] == op.issuer
    assert document["authorization_endpoint"] == op.authorization_endpoint
    assert document["token_endpoint"] == op.token_endpoint
    assert document["end_session_endpoint"] == op.end_session_endpoint
    assert document["revocation_endpoint"] == f"{op.issuer}/token/revocation"
    assert document["jwks_uri"] == f"{op.issuer}/jwks"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert {"openid", "email", "profile"} <= set(document["scopes_supported"])
    assert {"groups", "email", "preferred_username"} <= set(document["claims_supported"])
    assert op.process.returncode == 0  # stopped cleanly by SIGTERM


@pytest.mark.node
@needs_node
async def test_code_flow_with_pkce_refresh_and_logout(aiohttp_server: ServerFactory) -> None:
    """A confidential client signs in with PKCE, gets ID and refresh tokens, refreshes, logs out."""
    rp, received = await relying_party(aiohttp_server)
    redirect_uri = str(rp.make_url("/callback"))
    home = str(rp.make_url("/"))
    client = OidcClient("gateway", "gateway-secret", [redirect_uri], [home])
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)

    async with (
        start_oidc_provider(
            clients=[client], users=[ALICE, BOB], access_token_ttl=60, refresh_token_ttl=600
        ) as op,
        ScriptedBrowser() as browser,
        aiohttp.ClientSession() as http,
    ):
        query = urlencode(
            {
                "client_id": client.client_id,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "scope": "openid email profile",
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        start = f"{op.authorization_endpoint}?{query}"
        page = await browser.sign_in(start, "alice", ALICE.password)

        assert page.status == 200
        assert page.url.startswith(redirect_uri)
        assert "signed in" in page.text
        assert len(received) == 1
        callback = received[0]
        assert callback["state"] == state
        assert callback["iss"] == op.issuer
        methods_and_statuses = [(hop.method, hop.status) for hop in browser.history]
        assert ("POST", 303) in methods_and_statuses  # the login form submission
        assert browser.history[0].url.startswith(op.authorization_endpoint)
        assert browser.history[0].status in {302, 303}
        assert "_session" in browser.cookies_for(op.issuer)
        assert browser.set_cookie_headers_named("_session")

        auth = {"Authorization": aiohttp.encode_basic_auth(client.client_id, "gateway-secret")}
        async with http.post(
            op.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": callback["code"],
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            headers=auth,
        ) as response:
            tokens = await response.json()
            assert response.status == 200, tokens
        assert tokens["token_type"].lower() == "bearer"
        assert tokens["expires_in"] <= 60
        assert tokens["refresh_token"]
        claims = await verified_id_token(http, op, tokens["id_token"], client.client_id)
        assert claims["sub"] == ALICE.sub
        assert claims["nonce"] == nonce
        assert claims["email"] == "alice@example.com"
        assert claims["email_verified"] is True
        assert claims["groups"] == ["admins", "staff"]
        assert claims["preferred_username"] == "alice"

        async with http.post(
            op.token_endpoint,
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=auth,
        ) as response:
            refreshed = await response.json()
            assert response.status == 200, refreshed
        refreshed_claims = await verified_id_token(
            http, op, refreshed["id_token"], client.client_id
        )
        assert refreshed_claims["sub"] == ALICE.sub
        assert refreshed_claims["groups"] == ["admins", "staff"]

        logout = urlencode(
            {
                "id_token_hint": tokens["id_token"],
                "post_logout_redirect_uri": home,
                "state": "bye",
            }
        )
        page = await browser.sign_out(f"{op.end_session_endpoint}?{logout}")
        assert page.url == f"{home}?state=bye"
        assert "home" in page.text
        assert "_session" not in browser.cookies_for(op.issuer)


@pytest.mark.node
@needs_node
async def test_public_client_consent_page_and_wrong_password(
    aiohttp_server: ServerFactory,
) -> None:
    """A public client must use PKCE; the consent form is submitted; a bad password fails."""
    rp, received = await relying_party(aiohttp_server)
    redirect_uri = str(rp.make_url("/callback"))
    client = OidcClient("spa", None, [redirect_uri])
    verifier, challenge = pkce_pair()
    params = {
        "client_id": "spa",
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": "openid profile",
        "state": "s1",
    }
    async with start_oidc_provider(clients=[client], users=[BOB], consent="form") as op:
        async with ScriptedBrowser() as browser:
            page = await browser.get(f"{op.authorization_endpoint}?{urlencode(params)}")
            assert page.url.startswith(redirect_uri)
            assert received[-1]["error"] == "invalid_request"
            assert "requires PKCE" in received[-1]["error_description"]

        pkce = {**params, "code_challenge": challenge, "code_challenge_method": "S256"}
        async with ScriptedBrowser() as browser:
            with pytest.raises(SignInError) as failure:
                await browser.sign_in(f"{op.authorization_endpoint}?{urlencode(pkce)}", "bob", "x")
            assert "Incorrect username or password" in failure.value.page.text

        async with ScriptedBrowser() as browser, aiohttp.ClientSession() as http:
            page = await browser.sign_in(
                f"{op.authorization_endpoint}?{urlencode(pkce)}", "bob", BOB.password
            )
            assert page.url.startswith(redirect_uri)
            posted = [hop.url for hop in browser.history if hop.method == "POST"]
            assert [url.rsplit("/", 1)[-1] for url in posted] == ["login", "confirm"]
            async with http.post(
                op.token_endpoint,
                data={
                    "grant_type": "authorization_code",
                    "client_id": "spa",
                    "code": received[-1]["code"],
                    "redirect_uri": redirect_uri,
                    "code_verifier": verifier,
                },
            ) as response:
                tokens = await response.json()
                assert response.status == 200, tokens
            assert tokens["refresh_token"]
            claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
            assert claims["preferred_username"] == "bob"
            assert claims["groups"] == []
            assert "email" not in claims


async def test_browser_signs_in_through_a_cognito_like_hosted_ui(
    aiohttp_server: ServerFactory,
) -> None:
    """The scripted browser fills a cognitoSignInForm, keeping _csrf and cognitoAsfData."""
    posted: list[dict[str, str]] = []

    async def authorize(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/login?{request.query_string}")

    async def login_form(request: web.Request) -> web.Response:
        action = f"/login?{request.query_string}"
        html = f"""<html><body>
        <form name="cognitoSignInForm" method="post" action="{action.replace("&", "&amp;")}"
              class="cognito-asf">
          <input name="_csrf" type="hidden" value="csrf-token-1"/>
          <input id="signInFormUsername" name="username" type="text" class="form-control"/>
          <input id="signInFormPassword" name="password" type="password"/>
          <input name="cognitoAsfData" type="hidden" value="asf-blob"/>
          <input name="signInSubmitButton" type="submit" value="Sign in"/>
        </form>
        <form method="post" action="/forgotPassword"><button name="cancel">Cancel</button></form>
        </body></html>"""
        response = web.Response(text=html, content_type="text/html")
        response.set_cookie("XSRF-TOKEN", "csrf-token-1", path="/", httponly=True)
        return response

    async def login_post(request: web.Request) -> web.Response:
        form = await request.post()
        posted.append({k: str(v) for k, v in form.items()})
        if request.cookies.get("XSRF-TOKEN") != form.get("_csrf"):
            raise web.HTTPForbidden(text="csrf")
        raise web.HTTPFound(f"{request.query['redirect_uri']}?code=abc&state=xyz")

    async def callback(_request: web.Request) -> web.Response:
        return web.Response(text="app", content_type="text/html")

    app = web.Application()
    app.router.add_get("/oauth2/authorize", authorize)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login_post)
    app.router.add_get("/app/callback", callback)
    server = await aiohttp_server(app, host="127.0.0.1")
    start = server.make_url("/oauth2/authorize").with_query(
        {"redirect_uri": str(server.make_url("/app/callback")), "state": "xyz"}
    )
    async with ScriptedBrowser() as browser:
        page = await browser.sign_in(str(start), "carol@example.com", "pw!")
        assert page.text == "app"
        assert page.url.endswith("/app/callback?code=abc&state=xyz")
        assert posted == [
            {
                "_csrf": "csrf-token-1",
                "username": "carol@example.com",
                "password": "pw!",
                "cognitoAsfData": "asf-blob",
                "signInSubmitButton": "Sign in",
            }
        ]
        assert [hop.status for hop in page.hops] == [302, 200]
        assert [hop.method for hop in browser.history] == ["GET", "GET", "POST", "GET"]
        assert browser.cookies_for(str(server.make_url("/"))) == {"XSRF-TOKEN": "csrf-token-1"}
        assert browser.set_cookie_headers[0].startswith("XSRF-TOKEN=csrf-token-1;")


def test_parse_forms_resolves_actions_and_form_attribute() -> None:
    """Actions resolve against the page URL; controls with form="id" join that form."""
    html = """
    <form id="op.logoutForm" method="post" action="/session/end/confirm">
      <input type="hidden" name="xsrf" value="t"></form>
    <button type="submit" form="op.logoutForm" value="yes" name="logout">Yes</button>
    <form><select name="s"><option>a</option><option selected value="b">B</option></select>
      <textarea name="t">hi</textarea><input type="checkbox" name="c"></form>
    """
    logout, other = parse_forms(html, "http://127.0.0.1:5/session/end?x=1#frag")
    assert logout.action == "http://127.0.0.1:5/session/end/confirm"
    assert [b.name for b in logout.buttons()] == ["logout"]
    assert logout.values() == [("xsrf", "t")]
    assert other.method == "GET"
    assert other.action == "http://127.0.0.1:5/session/end?x=1"
    assert other.values() == [("s", "b"), ("t", "hi")]


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason=CHROMIUM_SKIP_REASON)
async def test_chromium_reads_a_cookie_from_a_local_server(aiohttp_server: ServerFactory) -> None:
    """Headless Chromium loads a loopback page and keeps the cookie it sets."""

    async def page(_request: web.Request) -> web.Response:
        response = web.Response(
            text="<html><head><title>hello</title></head><body><p id=m>hi</p></body></html>",
            content_type="text/html",
        )
        response.set_cookie("greeting", "hello-chromium", path="/", httponly=True)
        return response

    app = web.Application()
    app.router.add_get("/", page)
    server = await aiohttp_server(app, host="127.0.0.1")
    url = str(server.make_url("/"))
    async with chromium_context() as context:
        tab = await context.new_page()
        response = await tab.goto(url)
        assert response is not None
        assert response.status == 200
        assert await tab.title() == "hello"
        assert await tab.text_content("#m") == "hi"
        cookies = {c["name"]: c["value"] for c in await context.cookies(url)}
        assert cookies == {"greeting": "hello-chromium"}


@pytest.mark.node
@needs_node
async def test_short_token_lifetimes_and_refresh_rotation(aiohttp_server: ServerFactory) -> None:
    """Short TTLs apply; a public client's refresh token rotates and expires after its TTL."""
    rp, received = await relying_party(aiohttp_server)
    redirect_uri = str(rp.make_url("/callback"))
    verifier, challenge = pkce_pair()
    query = urlencode(
        {
            "client_id": "spa",
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": "openid email",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    async with (
        start_oidc_provider(
            clients=[OidcClient("spa", None, [redirect_uri])],
            users=[ALICE],
            access_token_ttl=1,
            id_token_ttl=5,
            refresh_token_ttl=2,
        ) as op,
        ScriptedBrowser() as browser,
        aiohttp.ClientSession() as http,
    ):
        await browser.sign_in(f"{op.authorization_endpoint}?{query}", "alice", ALICE.password)

        async def token(**form: str) -> tuple[int, dict[str, Any]]:
            async with http.post(op.token_endpoint, data={"client_id": "spa", **form}) as r:
                return r.status, await r.json()

        status, tokens = await token(
            grant_type="authorization_code",
            code=received[-1]["code"],
            redirect_uri=redirect_uri,
            code_verifier=verifier,
        )
        assert status == 200, tokens
        assert tokens["expires_in"] == 1
        claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 5
        assert claims["email"] == ALICE.email
        assert "preferred_username" not in claims  # scope profile was not requested

        status, refreshed = await token(
            grant_type="refresh_token", refresh_token=tokens["refresh_token"]
        )
        assert status == 200, refreshed
        assert refreshed["refresh_token"] != tokens["refresh_token"]  # public clients rotate

        await asyncio.sleep(2.2)
        status, expired = await token(
            grant_type="refresh_token", refresh_token=refreshed["refresh_token"]
        )
        assert status == 400
        assert expired["error"] == "invalid_grant"
