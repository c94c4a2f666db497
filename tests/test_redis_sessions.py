"""session.store = "redis": any replica serves any user, against a real redis-server."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import TYPE_CHECKING

import pytest
from cryptography.fernet import Fernet

from gateway.config import load_settings
from gateway.devidp import DevIdp, UserPool
from gateway.identity import Identity
from gateway.sessions.cipher import Cipher
from gateway.sessions.cookies import CookiePolicy
from gateway.sessions.model import Session
from gateway.sessions.redis_keys import SessionKeys
from gateway.sessions.redis_store import RedisSessionStore
from tests.conftest import (
    ALICE,
    RunningGateway,
    Secrets,
    gateway_client,
    gateway_env,
    sign_in_cookies,
    start_gateway,
)
from tests.support.clock import ManualClock
from tests.support.ports import listening_socket
from tests.support.redis_servers import RedisServer

if TYPE_CHECKING:
    import socket
    from collections.abc import AsyncIterator
    from pathlib import Path

    import aiohttp
    from aiohttp import web

pytestmark = pytest.mark.redis
TOKEN_SECONDS = 4
BASE_ENV = {"GATEWAY_SERVER_PUBLIC_URL": "http://127.0.0.1:1", "GATEWAY_COGNITO_CLIENT_ID": "c",
            "GATEWAY_COGNITO_ISSUER": "http://127.0.0.1:1/pool",
            "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
            "GATEWAY_SESSION_COOKIE_SECURE": "false"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def pool(gateway_url: str) -> UserPool:
    urls = [f"{gateway_url}/oauth2/callback"]
    return UserPool(users=[ALICE], clients=[gateway_client(
        gateway_url, callback_urls=urls, access_token_validity_seconds=TOKEN_SECONDS,
        id_token_validity_seconds=TOKEN_SECONDS, refresh_token_rotation=True,
        rotation_grace_seconds=0)])


@pytest.fixture
async def replicas(idp: DevIdp, upstream: str, gateway_url: str,
                   gateway_socket: socket.socket, redis_server: RedisServer, secrets: Secrets,
                   clock: ManualClock) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    """Two gateways with the same keys and Redis; the second on its own port."""
    env = gateway_env(idp, upstream, gateway_url, GATEWAY_SESSION_STORE="redis",
                      GATEWAY_SESSION_REDIS_URL=redis_server.url(),
                      GATEWAY_SESSION_SECRET=Fernet.generate_key().decode(),
                      GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS="2")
    secrets.add(env["GATEWAY_SESSION_SECRET"])
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


async def _get(http: aiohttp.ClientSession, url: str, cookie: str) -> int:
    async with http.get(url, headers={"Cookie": cookie, "Accept": "application/json"}) as resp:
        await resp.read()
        return resp.status


async def test_a_session_from_one_replica_works_on_the_other(
        replicas: tuple[RunningGateway, RunningGateway], http: aiohttp.ClientSession) -> None:
    """The browser holds only a small encrypted id; the session lives in Redis."""
    first, second = replicas
    cookie = await sign_in_cookies(first.url)
    assert len(cookie) < 300
    assert await _get(http, f"{second.url}/x", cookie) == 200


async def test_sign_out_on_one_replica_ends_the_session_everywhere(
        replicas: tuple[RunningGateway, RunningGateway], http: aiohttp.ClientSession) -> None:
    first, second = replicas
    cookie = await sign_in_cookies(first.url)
    async with http.post(f"{first.url}/oauth2/sign_out", allow_redirects=False,
                         headers={"Cookie": cookie}) as resp:
        assert resp.status == 303
    assert await _get(http, f"{second.url}/x", cookie) == 401
    assert await _get(http, f"{first.url}/x", cookie) == 401


async def test_concurrent_refresh_across_replicas_spends_the_refresh_token_once(
        replicas: tuple[RunningGateway, RunningGateway], idp: DevIdp,
        http: aiohttp.ClientSession, clock: ManualClock) -> None:
    """Rotation with grace 0 and requests on both replicas at expiry, the IdP slow enough that
    both replicas load the old tokens: one refresh, all 200."""
    first, second = replicas
    cookie = await sign_in_cookies(first.url)
    await clock.advance(TOKEN_SECONDS - 2 + 0.2)
    idp.add_fault("token", delay_seconds=0.5, count=1)
    statuses = await clock.run(asyncio.gather(*(
        _get(http, f"{(first, second)[i % 2].url}/x", cookie) for i in range(20))), step=0.05)
    assert statuses == [200] * 20
    assert idp.token_requests["refresh_token"] == 1


async def test_redis_down_makes_the_gateway_unready(
        replicas: tuple[RunningGateway, RunningGateway], http: aiohttp.ClientSession,
        redis_server: RedisServer) -> None:
    """Redis unreachable: /ready 503 at once, naming the session store. (What signed-in
    requests get, and the recovery, is tests/faults/test_session_store_faults.py.)"""
    first, _ = replicas
    async with http.get(f"{first.url}/ready") as resp:
        assert resp.status == 200
    redis_server.stop()
    async with http.get(f"{first.url}/ready") as resp:
        assert resp.status == 503
        assert (await resp.json())["checks"] == {"idp": True, "session_store": False,
                                                 "accepting": True}


async def test_a_refresh_that_outlives_its_lock_never_frees_a_peers_lock(
        tmp_path: Path) -> None:
    """The lock is released by owner only: when a slow refresh ends after its lock expired and
    a peer took it, the peer's lock stays."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        settings = dataclasses.replace(load_settings(environ=BASE_ENV).session,
                                       redis_url=server.url())
        store = RedisSessionStore(CookiePolicy("_gw", False, "lax"),
                                  Cipher(settings.secret), settings, lock_seconds=0.2)
        session = Session(sid="s1", identity=Identity(sub="u", username="u"),
                          created_at=time.time(), expires_at=time.time() + 600,
                          tokens_expire_at=time.time() + 60, refresh_token="rt")
        await store.persist(session)  # a refresh is saved only over a session that exists
        peer_took_it = asyncio.Event()

        async def slow_refresher(current: Session) -> Session:
            await asyncio.sleep(0.4)  # outlives the 0.2 s lock, on purpose
            admin = server.admin()
            assert admin.set(SessionKeys.for_session("s1").lock, "peer", nx=True, px=5000)
            peer_took_it.set()
            return current.with_tokens(tokens_expire_at=current.tokens_expire_at + 60)

        fresh = await store.coordinate(slow_refresher)(session)
        assert peer_took_it.is_set()
        assert fresh.tokens_expire_at > session.tokens_expire_at
        assert server.admin().get(SessionKeys.for_session("s1").lock) == b"peer"
        await store.close()
    finally:
        server.close()


async def test_a_replica_waiting_on_a_rejected_refresh_sends_the_user_to_sign_in(
        replicas: tuple[RunningGateway, RunningGateway], idp: DevIdp,
        http: aiohttp.ClientSession, clock: ManualClock) -> None:
    """The user was signed out at the IdP and the tokens have expired, so every request waits
    for the refresh; both replicas refresh at once. The lock holder gets invalid_grant and ends
    the session; the waiting replica sees that and answers 401 (a navigation would be sent to
    sign in), never 503."""
    first, second = replicas
    cookie = await sign_in_cookies(first.url)
    await clock.advance(TOKEN_SECONDS + 0.2)
    idp.global_sign_out(ALICE.username)
    idp.add_fault("token", delay_seconds=0.5)
    statuses = await clock.run(asyncio.gather(*(
        _get(http, f"{(first, second)[i % 2].url}/x", cookie) for i in range(10))), step=0.05)
    assert statuses == [401] * 10
    assert idp.token_requests["refresh_token"] == 1
