"""Token lifecycle against the dev IdP with lifetimes of a few seconds: refresh by expiry,
single-flight refresh under rotation with grace 0, failure policy, sign-out, WebSocket expiry.

The gateway and the IdP share a ManualClock: "four seconds later" is `clock.advance(4)`."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import aiohttp
import pytest
from yarl import URL

from gateway.devidp import DevIdp, UserPool
from gateway.sessions.cipher import Cipher
from gateway.sessions.model import Absent, Session
from tests.conftest import (
    ALICE,
    CLIENT_ID,
    CLIENT_SECRET,
    GatewayFactory,
    RunningGateway,
    Secrets,
    gateway_client,
    sign_in_cookies,
)
from tests.support.browser import ScriptedBrowser
from tests.support.clock import ManualClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

TOKEN_SECONDS = 4
SHORT = {"GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS": "2"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def pool(gateway_url: str) -> UserPool:
    """Tokens live 4 s; refresh tokens rotate and the old one dies at first use."""
    return UserPool(users=[ALICE], clients=[gateway_client(
        gateway_url, access_token_validity_seconds=TOKEN_SECONDS,
        id_token_validity_seconds=TOKEN_SECONDS, refresh_token_rotation=True,
        rotation_grace_seconds=0)])



def _refresh_token(gateway: RunningGateway, cookie: str) -> str:
    """The refresh token inside a session cookie (the test holds the session key)."""
    value = dict(part.split("=", 1) for part in cookie.split("; "))
    sealed = "".join(v for k, v in sorted(value.items()) if not k.endswith("signin"))
    data = Cipher(gateway.settings.session.secret).open(sealed, ttl=3600)
    assert data is not None
    token: str = data["refresh_token"]
    return token


async def _wait_until_tokens_expire(clock: ManualClock) -> None:
    """Past the tokens' expiry: the next request waits for the refresh (one due earlier, while
    the tokens are valid, runs in the background: tests/test_refresh.py)."""
    await clock.advance(TOKEN_SECONDS + 0.2)


async def test_continuous_browsing_across_expiries_never_signs_in_again(
        make_gateway: GatewayFactory, idp: DevIdp, clock: ManualClock) -> None:
    """A browser making requests for three token lifetimes keeps getting the page."""
    gateway = await make_gateway(**SHORT)
    async with ScriptedBrowser() as browser:
        page = await browser.sign_in(f"{gateway.url}/", ALICE.username, ALICE.password)
        assert page.status == 200
        statuses = []
        for _ in range(3 * TOKEN_SECONDS * 4):
            page = await browser.request("GET", f"{gateway.url}/page", follow_redirects=False)
            statuses.append(page.status)
            await clock.advance(0.25)
    assert set(statuses) == {200}
    assert idp.token_requests["refresh_token"] >= 3
    assert idp.token_requests["authorization_code"] == 1


async def test_fifty_concurrent_requests_at_expiry_refresh_exactly_once(
        make_gateway: GatewayFactory, idp: DevIdp, http: aiohttp.ClientSession,
        clock: ManualClock) -> None:
    """Rotation on, grace 0: one refresh call, and every request still succeeds."""
    gateway = await make_gateway(**SHORT)
    cookie = await sign_in_cookies(gateway.url)
    await _wait_until_tokens_expire(clock)

    async def get() -> tuple[int, str]:
        async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie,
                                                         "Accept": "application/json"}) as resp:
            await resp.read()
            return resp.status, resp.headers.get("Set-Cookie", "")

    results = await asyncio.gather(*(get() for _ in range(50)))
    assert [status for status, _ in results] == [200] * 50
    assert idp.token_requests["refresh_token"] == 1
    assert all("_cognito_gateway=" in set_cookie for _, set_cookie in results)


@pytest.mark.usefixtures("idp")
async def test_refreshed_cookie_carries_the_rotated_refresh_token(
        make_gateway: GatewayFactory, http: aiohttp.ClientSession,
        secrets: Secrets, clock: ManualClock) -> None:
    """After a refresh with rotation, the session holds the new refresh token."""
    gateway = await make_gateway(**SHORT)
    cookie = await sign_in_cookies(gateway.url)
    old = _refresh_token(gateway, cookie)
    await _wait_until_tokens_expire(clock)
    async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie}) as resp:
        assert resp.status == 200
        fresh = resp.cookies["_cognito_gateway"].value
    new = _refresh_token(gateway, f"_cognito_gateway={fresh}")
    secrets.add(old, new)
    assert new != old


async def test_revoked_user_is_sent_to_sign_in_at_the_next_refresh(
        make_gateway: GatewayFactory, idp: DevIdp, http: aiohttp.ClientSession,
        clock: ManualClock) -> None:
    """Global sign-out at the IdP: invalid_grant ends the session (302 browser, 401 API)."""
    gateway = await make_gateway(**SHORT)
    cookie = await sign_in_cookies(gateway.url)
    idp.global_sign_out(ALICE.username)
    await _wait_until_tokens_expire(clock)
    async with http.get(f"{gateway.url}/x", allow_redirects=False, headers={
            "Cookie": cookie, "Accept": "text/html"}) as resp:
        assert resp.status == 302
        assert resp.headers["Location"].startswith(idp.base_url)
        cleared = resp.cookies["_cognito_gateway"]
        assert cleared.value == ""
    async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie,
                                                     "Accept": "application/json"}) as resp:
        assert resp.status == 401
    registry = gateway.metrics.registry
    assert registry.get_sample_value("cognito_gateway_session_refreshes_total",
                                     {"outcome": "rejected"}) == 1
    assert registry.get_sample_value("cognito_gateway_reauthentications_total",
                                     {"reason": "refresh_rejected"}) == 1


async def test_failing_token_endpoint_does_not_log_anyone_out_while_tokens_are_valid(
        make_gateway: GatewayFactory, idp: DevIdp, http: aiohttp.ClientSession,
        clock: ManualClock) -> None:
    """IdP 503 during the refresh window: requests keep succeeding at once on the current
    tokens while the refresh fails in the background; after the backoff the next request starts
    a refresh that succeeds, and a response soon after carries the new cookie."""
    gateway = await make_gateway(GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS="3")
    cookie = await sign_in_cookies(gateway.url)
    idp.add_fault("token", 503)
    await clock.advance(1.2)

    async def get() -> tuple[int, bool]:
        async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie}) as resp:
            return resp.status, "_cognito_gateway" in resp.cookies

    for _ in range(5):
        assert await clock.run(get()) == (200, False)
    await clock.run(_refresh_calls(idp, 3))  # one attempt and two quick retries, in the background
    idp.clear_faults()
    await clock.advance(1.2)  # past the first backoff
    assert (await get())[0] == 200  # starts the refresh (it may finish before the answer)
    await _refresh_calls(idp, 4)
    assert await clock.run(_until_cookie(get)) == (200, True)
    assert idp.token_requests["refresh_token"] == 4


async def _refresh_calls(idp: DevIdp, count: int) -> None:
    """Return once the IdP has answered `count` refresh calls."""
    while idp.token_requests["refresh_token"] < count:  # noqa: ASYNC110 - the IdP has no event
        await asyncio.sleep(0.01)


async def _until_cookie(get: Callable[[], Awaitable[tuple[int, bool]]]) -> tuple[int, bool]:
    """`get` until a response carries the session cookie (a background refresh finished)."""
    while True:
        answer = await get()
        if answer[1]:
            return answer
        await asyncio.sleep(0.01)


async def test_expired_tokens_with_the_idp_down_get_503_and_keep_the_session(
        make_gateway: GatewayFactory, idp: DevIdp, http: aiohttp.ClientSession,
        clock: ManualClock) -> None:
    """After expiry with the IdP down: 503 JSON for APIs, a page for browsers, no logout."""
    gateway = await make_gateway(**SHORT)
    cookie = await sign_in_cookies(gateway.url)
    idp.add_fault("token", 503)
    await clock.advance(TOKEN_SECONDS + 0.2)

    async def get(accept: str) -> tuple[int, str, bool]:
        async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie,
                                                         "Accept": accept}) as resp:
            return resp.status, await resp.text(), "Set-Cookie" in resp.headers

    status, body, set_cookie = await clock.run(get("application/json"))
    assert (status, json.loads(body)["error"], set_cookie) == (503, "idp_unavailable", False)
    status, body, _ = await clock.run(get("text/html"))
    assert status == 503
    assert "Try again" in body
    idp.clear_faults()
    await clock.advance(1.1)
    async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie}) as resp:
        assert resp.status == 200


async def test_session_never_outlives_its_absolute_lifetime(
        make_gateway: GatewayFactory, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    """Refresh renews tokens, not the session: after lifetime_seconds it is over."""
    gateway = await make_gateway(GATEWAY_SESSION_LIFETIME_SECONDS="60", **SHORT)
    cookie = await sign_in_cookies(gateway.url)
    session = await gateway.store.load(_request_with(cookie))
    assert isinstance(session, Session)
    assert session.expires_at - session.created_at == 60
    await _wait_until_tokens_expire(clock)
    async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie}) as resp:
        fresh_cookie = f"_cognito_gateway={resp.cookies['_cognito_gateway'].value}"
        assert int(resp.cookies["_cognito_gateway"]["max-age"]) <= 60
    refreshed = await gateway.store.load(_request_with(fresh_cookie))
    assert isinstance(refreshed, Session)
    assert refreshed.expires_at == session.expires_at
    assert refreshed.tokens_expire_at > session.tokens_expire_at
    await clock.advance(60)
    assert await gateway.store.load(_request_with(fresh_cookie)) is Absent.LIFETIME
    async with http.get(f"{gateway.url}/x", headers={"Cookie": fresh_cookie,
                                                     "Accept": "application/json"}) as resp:
        assert resp.status == 401
    assert gateway.metrics.registry.get_sample_value(
        "cognito_gateway_reauthentications_total", {"reason": "lifetime"}) == 1


async def _refreshed(idp: DevIdp) -> None:
    """Return once the IdP has answered a refresh."""
    while idp.token_requests["refresh_token"] == 0:  # noqa: ASYNC110 - the IdP has no event
        await asyncio.sleep(0.01)


def _request_with(cookie: str) -> aiohttp.web.Request:
    from aiohttp.test_utils import make_mocked_request

    return make_mocked_request("GET", "/", headers={"Cookie": cookie})


async def test_sign_out_revokes_ends_the_idp_session_and_refuses_replays(
        gateway: RunningGateway, idp: DevIdp, http: aiohttp.ClientSession,
        secrets: Secrets) -> None:
    """POST sign-out: refresh token revoked at the IdP, browser lands on logout_uri, old
    cookie refused."""
    async with ScriptedBrowser() as browser:
        await browser.sign_in(f"{gateway.url}/", ALICE.username, ALICE.password)
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies_for(gateway.url).items()
                           if k.startswith("_cognito_gateway"))
        refresh_token = _refresh_token(gateway, cookie)
        secrets.add(refresh_token)
        confirm = await browser.get(f"{gateway.url}/oauth2/sign_out")
        assert confirm.status == 200
        assert 'method="post"' in confirm.text
        landed = await browser.post(f"{gateway.url}/oauth2/sign_out", data={})
        hops = [str(h.url) for h in browser.history]
        assert any(URL(h).path == "/logout" and URL(h).query.get("logout_uri")
                   == f"{gateway.url}/oauth2/signed_out" for h in hops)
        assert landed.status == 200
        assert str(landed.url) == f"{gateway.url}/oauth2/signed_out"
        after = await browser.request("GET", f"{gateway.url}/", follow_redirects=False)
        assert after.status == 302
        # The hosted-UI session is gone too: the IdP shows its form again.
        again = await browser.get(f"{gateway.url}/")
        assert again.login_form() is not None
    async with http.post(f"{idp.base_url}/oauth2/token", data={
            "grant_type": "refresh_token", "refresh_token": refresh_token},
            headers={"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, CLIENT_SECRET)}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json(content_type=None))["error"] == "invalid_grant"
    async with http.get(f"{gateway.url}/", headers={"Cookie": cookie,
                                                    "Accept": "application/json"}) as resp:
        assert resp.status == 401


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
])
async def test_cross_site_sign_out_is_refused(
        gateway: RunningGateway, http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    """A third-party page cannot sign a user out with a hidden form."""
    cookie = await sign_in_cookies(gateway.url)
    async with http.post(f"{gateway.url}/oauth2/sign_out", allow_redirects=False,
                         headers={"Cookie": cookie, **headers}) as resp:
        assert resp.status == 403
    async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie}) as resp:
        assert resp.status == 200


async def test_websocket_closes_at_expiry_when_the_session_cannot_be_refreshed(
        make_gateway: GatewayFactory, idp: DevIdp, http: aiohttp.ClientSession,
        clock: ManualClock) -> None:
    """A socket outliving its session's tokens is closed with 1008."""
    gateway = await make_gateway(**SHORT)
    cookie = await sign_in_cookies(gateway.url)
    idp.global_sign_out(ALICE.username)
    async with http.ws_connect(f"{gateway.url}/ws", headers={"Cookie": cookie}) as ws:
        await ws.send_str("hi")
        assert await ws.receive_str() == "echo:hi"
        closing = asyncio.ensure_future(ws.receive(timeout=5))
        await clock.advance(TOKEN_SECONDS + 1)
        msg = await closing
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1008)


async def test_websocket_stays_open_when_the_session_refreshes(
        make_gateway: GatewayFactory, http: aiohttp.ClientSession, idp: DevIdp,
        clock: ManualClock) -> None:
    """At the tokens' expiry the socket's session is refreshed and the socket stays open."""
    gateway = await make_gateway(**SHORT)
    cookie = await sign_in_cookies(gateway.url)
    async with http.ws_connect(f"{gateway.url}/ws", headers={"Cookie": cookie}) as ws:
        await clock.run(_refreshed(idp), step=TOKEN_SECONDS + 1)
        await ws.send_str("still here")
        assert await ws.receive_str(timeout=2) == "echo:still here"


async def test_sign_out_returns_to_rd_after_the_idp_logout(
        make_gateway: GatewayFactory) -> None:
    """rd given at sign-out (same-origin paths only) is where the browser ends up."""
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/goodbye")
    async with ScriptedBrowser() as browser:
        await browser.sign_in(f"{gateway.url}/", ALICE.username, ALICE.password)
        confirm = await browser.get(f"{gateway.url}/oauth2/sign_out?rd=/goodbye%3Fa%3D1%26b%3D2")
        form = confirm.forms()[0]
        landed = await browser.post(form.action, data={})
        assert landed.status == 200
        echoed = landed.json()
        assert isinstance(echoed, dict)
        assert echoed["raw_path"] == "/goodbye?a=1&b=2"
        evil = await browser.post(f"{gateway.url}/oauth2/sign_out?rd=https://evil.example/",
                                  data={})
        assert str(evil.url) == f"{gateway.url}/oauth2/signed_out"
