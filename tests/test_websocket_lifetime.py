"""A WebSocket lives no longer than what authorised it: a bearer token, or a session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.devidp import DevIdp, UserPool
from tests.conftest import ALICE, CLIENT_SECRET, GatewayFactory, Secrets, gateway_client
from tests.support.browser import ScriptedBrowser
from tests.support.clock import ManualClock
from tests.support.tokens import user_tokens

TOKEN_SECONDS = 300


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def pool(gateway_url: str, upstream: str) -> UserPool:
    return UserPool(users=[ALICE], clients=[gateway_client(
        gateway_url, callback_urls=[f"{gateway_url}/oauth2/callback", f"{upstream}/cb"],
        access_token_validity_seconds=TOKEN_SECONDS)])


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def test_a_bearer_websocket_closes_when_its_token_expires(
        make_gateway: GatewayFactory, idp: DevIdp, upstream: str, secrets: Secrets,
        http: aiohttp.ClientSession, clock: ManualClock) -> None:
    """Opened with a 300 s access token, the socket echoes, stays open until just before exp,
    then closes with 1008 at exp (a bearer token is never renewed)."""
    gateway = await make_gateway()
    tokens = await user_tokens(idp.base_url, client_id="gateway-client",
                               client_secret=CLIENT_SECRET, callback=f"{upstream}/cb",
                               username=ALICE.username, password=ALICE.password)
    secrets.add(tokens["access_token"], tokens["id_token"], tokens["refresh_token"])
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    async with http.ws_connect(f"{gateway.url}/ws", headers=headers) as ws:
        await ws.send_str("hi")
        assert await ws.receive_str() == "echo:hi"
        await clock.advance(TOKEN_SECONDS - 1)
        await ws.send_str("still")
        assert await ws.receive_str() == "echo:still"
        closing = asyncio.ensure_future(ws.receive(timeout=5))
        await clock.advance(1)
        msg = await closing
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1008)


async def test_signing_out_closes_that_sessions_sockets(
        make_gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    """POST /oauth2/sign_out closes the session's open sockets with 1008 at once; another
    session's socket stays open. (The close frame carries 1008, as a browser's CloseEvent
    reports; aiohttp closes the connection right after it, so its client, replying late,
    notes 1006 locally.)"""
    gateway = await make_gateway()
    cookies = []
    for _ in range(2):
        async with ScriptedBrowser() as browser:
            await browser.sign_in(f"{gateway.url}/", ALICE.username, ALICE.password)
            jar = browser.cookies_for(gateway.url)
        cookies.append("; ".join(f"{k}={v}" for k, v in jar.items()))
    async with http.ws_connect(f"{gateway.url}/ws", headers={"Cookie": cookies[0]}) as mine, \
            http.ws_connect(f"{gateway.url}/ws", headers={"Cookie": cookies[1]}) as other:
        await mine.send_str("hi")
        assert await mine.receive_str() == "echo:hi"
        async with http.post(f"{gateway.url}/oauth2/sign_out", headers={
                "Cookie": cookies[0]}, allow_redirects=False) as resp:
            assert resp.status == 303
        msg = await mine.receive(timeout=5)
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1008, "signed out")
        await other.send_str("still")
        assert await other.receive_str(timeout=5) == "echo:still"
