"""Two gateways on a Redis Cluster of three masters: sign-in, refresh once, sign-out, revoke.

Real processes on loopback: three `redis-server --cluster-enabled yes` joined by
`redis-cli --cluster create` (shared by the module, emptied before each test), the dev IdP,
and two gateway replicas with `session.redis_cluster = true`. A session and its refresh lock
share a hash slot; a user's index sits in a slot of its own, so revoking walks the index and
deletes each session where it lives. Time is a ManualClock shared with the IdP: tokens come
due for refresh when the test says so.
"""

from __future__ import annotations

import asyncio
import io
from secrets import token_urlsafe
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from gateway.config import SessionSettings
from gateway.devidp import DevIdp, UserPool
from gateway.sessions.admin import revoke_sessions
from gateway.sessions.redis_client import SessionRedis
from gateway.sessions.redis_keys import user_index_key
from gateway.sessions.redis_store import RedisSessionStore
from tests.conftest import (
    ALICE,
    BOB,
    RunningGateway,
    Secrets,
    gateway_client,
    gateway_env,
    sign_in_cookies,
    start_gateway,
)
from tests.support.clock import ManualClock
from tests.support.ports import listening_socket
from tests.support.redis_servers import RedisClusterSet

if TYPE_CHECKING:
    import socket
    from collections.abc import AsyncIterator, Iterator

pytestmark = pytest.mark.redis
PASSWORD = token_urlsafe(18)
TOKEN_SECONDS = 4
REFRESH_BEFORE = 2
Replicas = tuple[RunningGateway, RunningGateway]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    """Three cluster masters shared by the module."""
    nodes = RedisClusterSet(tmp_path_factory.mktemp("cluster"), password=PASSWORD)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.close()


@pytest.fixture
def empty_cluster(cluster: RedisClusterSet, secrets: Secrets) -> RedisClusterSet:
    """The cluster with no key left by an earlier test."""
    secrets.add(PASSWORD)
    for node in cluster.nodes:
        with node.admin() as client:
            client.flushall()
    return cluster


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def pool(gateway_url: str) -> UserPool:
    """Short-lived tokens, rotated refresh tokens with no grace: a second refresh with the
    same token would fail, so any double spend shows."""
    return UserPool(users=[ALICE, BOB], clients=[gateway_client(
        gateway_url, access_token_validity_seconds=TOKEN_SECONDS,
        id_token_validity_seconds=TOKEN_SECONDS, refresh_token_rotation=True,
        rotation_grace_seconds=0)])


@pytest.fixture
async def replicas(idp: DevIdp, upstream: str, gateway_url: str,
                   gateway_socket: socket.socket, empty_cluster: RedisClusterSet,
                   secrets: Secrets, clock: ManualClock) -> AsyncIterator[Replicas]:
    """Two gateways on the cluster, one config; the second on its own port."""
    env = gateway_env(idp, upstream, gateway_url, GATEWAY_SESSION_STORE="redis",
                      GATEWAY_SESSION_REDIS_CLUSTER="true",
                      GATEWAY_SESSION_REDIS_URL=empty_cluster.url(),
                      GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS=str(REFRESH_BEFORE))
    secrets.add(env["GATEWAY_SESSION_SECRET"])
    runners: list[web.AppRunner] = []
    started = []
    with listening_socket() as second:
        for sock in (gateway_socket, second):
            runner, gateway = await start_gateway(env, sock, clock=clock)
            runners.append(runner)
            started.append(gateway)
        yield started[0], started[1]
        for runner in runners:
            await runner.cleanup()


async def status(url: str, cookie: str) -> int:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http, http.get(
            url, headers={"Cookie": cookie, "Accept": "application/json"}) as resp:
        await resp.read()
        return resp.status


async def test_a_session_signed_in_on_one_replica_serves_on_the_other(
        replicas: Replicas) -> None:
    """The session lives in the cluster, wherever its slot is; either replica serves it."""
    first, second = replicas
    cookie = await sign_in_cookies(first.url)
    assert [await status(f"{g.url}/x", cookie) for g in (first, second)] == [200, 200]


async def test_a_session_due_on_both_replicas_is_refreshed_once(
        replicas: Replicas, idp: DevIdp, clock: ManualClock) -> None:
    """Twenty requests over both replicas once the tokens have expired (so that each waits
    for the refresh), the IdP slow enough that both replicas see the old tokens: all 200, and
    exactly one refresh call reaches the IdP (the lock in the session's slot), whose rotated
    token then works."""
    first, second = replicas
    cookie = await sign_in_cookies(first.url)
    await clock.advance(TOKEN_SECONDS + 0.2)
    idp.add_fault("token", delay_seconds=0.5, count=1)
    answers = await clock.run(asyncio.gather(*(
        status(f"{(first, second)[n % 2].url}/x", cookie) for n in range(20))), step=0.05)
    assert answers == [200] * 20
    assert idp.token_requests["refresh_token"] == 1
    await clock.advance(TOKEN_SECONDS)
    assert await clock.run(status(f"{second.url}/x", cookie), step=0.05) == 200
    assert idp.token_requests["refresh_token"] == 2


async def test_signing_out_on_one_replica_ends_the_session_on_both(replicas: Replicas) -> None:
    """POST /oauth2/sign_out on the second replica: the cookie gets 401 on both."""
    first, second = replicas
    cookie = await sign_in_cookies(first.url)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http, http.post(
            f"{second.url}/oauth2/sign_out", headers={"Cookie": cookie},
            allow_redirects=False) as resp:
        assert resp.status == 303
    assert [await status(f"{g.url}/x", cookie) for g in (first, second)] == [401, 401]


async def test_revoking_a_user_deletes_each_session_in_its_own_slot(
        replicas: Replicas, empty_cluster: RedisClusterSet) -> None:
    """Three sessions of alice (their slots spread over the nodes) and one of bob: revoke
    ends alice's three on both replicas and her index; bob's goes on."""
    first, second = replicas
    alice = [await sign_in_cookies(g.url) for g in (first, second, first)]
    bob = await sign_in_cookies(second.url, BOB.username, BOB.password)
    assert isinstance(first.store, RedisSessionStore)
    assert len(await first.store.sessions_of(ALICE.subject)) == 3
    out, err = io.StringIO(), io.StringIO()

    code = await revoke_sessions(first.settings, ALICE.subject, out=out, err=err)

    assert code == 0, err.getvalue()
    assert "Ended 3 session(s)" in out.getvalue()
    for cookie in alice:
        assert [await status(f"{g.url}/x", cookie) for g in (first, second)] == [401, 401]
    assert [await status(f"{g.url}/x", bob) for g in (first, second)] == [200, 200]
    index = user_index_key(ALICE.subject)
    owner = next(n for n in empty_cluster.nodes if n.port == empty_cluster.owner(index))
    with owner.admin() as client:
        assert client.exists(index) == 0


async def test_calls_ride_out_connections_killed_under_them(
        empty_cluster: RedisClusterSet) -> None:
    """Every node kills its clients' connections again and again (CLIENT KILL) under twenty
    concurrent callers: redis-py then re-discovers the cluster and tears down each node's idle
    connections while other calls are taking them. Every call still succeeds, after retries;
    none escapes as an error (before: RedisClusterException unretried, and AttributeError from
    a connection torn down mid-handshake, a 500)."""
    client = SessionRedis.from_settings(SessionSettings(
        redis_url=empty_cluster.url(), redis_cluster=True, redis_timeout_seconds=2.0))
    admins = [Redis(host="127.0.0.1", port=node.port, password=PASSWORD)
              for node in empty_cluster.nodes]
    failures: list[BaseException] = []

    async def calls(worker: int) -> None:
        for n in range(100):
            try:
                await client.get(f"{{w{worker}}}:{n}")
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                failures.append(exc)

    async def kill_connections() -> None:
        for _ in range(30):
            for admin in admins:
                await admin.client_kill_filter(_type="normal")
            await asyncio.sleep(0.01)

    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(calls(w) for w in range(20)), kill_connections())
    finally:
        for admin in admins:
            await admin.aclose()
        await client.aclose()
    assert failures == []
