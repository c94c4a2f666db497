"""Cookie-store sessions are re-checked with the IdP, so a sign-out holds on every replica."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web

from gateway.identity import Identity
from gateway.sessions.model import Session
from tests.conftest import (
    RunningGateway,
    Secrets,
    gateway_env,
    sign_in_cookies,
    start_gateway,
)
from tests.support.clock import ManualClock
from tests.support.ports import listening_socket

if TYPE_CHECKING:
    import socket
    from collections.abc import AsyncIterator

    from gateway.devidp import DevIdp

REVALIDATE = 300


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def replicas(idp: DevIdp, upstream: str, gateway_url: str,
                   gateway_socket: socket.socket, secrets: Secrets, clock: ManualClock
                   ) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    """Two cookie-store gateways sharing the session keys; the second on its own port."""
    env = gateway_env(idp, upstream, gateway_url,
                      GATEWAY_SESSION_REVALIDATE_SECONDS=str(REVALIDATE))
    secrets.add(env["GATEWAY_SESSION_SECRET"], env["GATEWAY_COGNITO_CLIENT_SECRET"])
    runners: list[web.AppRunner] = []
    gateways = []
    with listening_socket() as second:
        for sock in (gateway_socket, second):
            runner, gateway = await start_gateway(env, sock, clock=clock)
            runners.append(runner)
            gateways.append(gateway)
        yield gateways[0], gateways[1]
        for runner in runners:
            await runner.cleanup()


async def status(url: str, cookie: str) -> int:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http, http.get(
            url, headers={"Cookie": cookie, "Accept": "application/json"}) as resp:
        return resp.status


async def test_a_signed_out_cookie_stops_working_on_another_replica_within_the_window(
        replicas: tuple[RunningGateway, RunningGateway], idp: DevIdp,
        clock: ManualClock) -> None:
    """Signed out on A: A refuses the old cookie at once; B (and A after a restart) serves it
    only until the session is due for its re-check, then the IdP's invalid_grant ends it."""
    first, second = replicas
    cookie = await sign_in_cookies(first.url)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http, http.post(
            f"{first.url}/oauth2/sign_out", headers={"Cookie": cookie},
            allow_redirects=False) as resp:
        assert resp.status == 303
    assert await status(f"{first.url}/x", cookie) == 401
    await clock.advance(REVALIDATE - 1)
    assert await status(f"{second.url}/x", cookie) == 200
    await clock.advance(1)
    assert await status(f"{second.url}/x", cookie) == 401
    assert idp.token_requests["refresh_token"] == 1
    refused = second.metrics.registry.get_sample_value(
        "cognito_gateway_session_refreshes_total", {"outcome": "rejected"})
    assert refused == 1
    assert second.metrics.registry.get_sample_value(
        "cognito_gateway_reauthentications_total", {"reason": "revalidation_failed"}) == 1


async def test_a_live_session_is_revalidated_without_the_user_noticing(
        replicas: tuple[RunningGateway, RunningGateway], idp: DevIdp,
        clock: ManualClock) -> None:
    """Past the window a valid session is refreshed in place: 200, and one refresh call."""
    first, _ = replicas
    cookie = await sign_in_cookies(first.url)
    assert await status(f"{first.url}/x", cookie) == 200
    await clock.advance(REVALIDATE)
    assert await status(f"{first.url}/x", cookie) == 200
    assert idp.token_requests["refresh_token"] == 1


@pytest.mark.parametrize(("now", "revalidate", "due"), [
    (100.0, 0, False), (100.0, 300, False), (399.0, 300, False), (400.0, 300, True),
    (3500.0, 0, True), (3479.0, 0, False),
], ids=["off", "fresh", "just-before", "at-window", "expiry-still-drives", "before-expiry"])
def test_refresh_is_due_at_expiry_or_after_the_revalidation_window(
        now: float, revalidate: int, due: bool) -> None:
    """refresh_due: tokens within 120 s of exp, or checked_at older than revalidate_after."""
    session = Session(sid="s", identity=Identity(sub="u", username="u"), created_at=100.0,
                      expires_at=90000.0, tokens_expire_at=3600.0, refresh_token="rt",
                      checked_at=100.0)
    assert session.refresh_due(now, 120, revalidate) is due
