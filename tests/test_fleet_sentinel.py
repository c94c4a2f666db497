"""A gateway on Redis Sentinel: the master is killed under signed-in load, and nobody notices.

Real processes on loopback: a master, its replica and three sentinels (redis-server), the dev
IdP and a gateway with `session.redis_sentinels`. Sessions are signed in and confirmed on the
replica (`WAIT`: replication is asynchronous, and only writes a replica holds can survive the
loss of the master), then browsers and API clients keep requesting while the master is
SIGKILLed and the sentinels promote the replica. What each request may get: 200, or 503 at
worst (never a sign-in redirect, a 401, a crash or an internal address); afterwards every
session works and new sign-ins land on the new master.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from secrets import token_urlsafe
from typing import TYPE_CHECKING

import aiohttp
import pytest

from tests.conftest import ALICE, BOB, GatewayFactory, Secrets, sign_in_cookies
from tests.faults.conftest import LEAKS
from tests.support.redis_servers import RedisSentinelSet

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.redis
PASSWORD = token_urlsafe(18)
CLIENTS = 4
MAX_REQUESTS = 4000  # a hard bound on the load, whatever happens
FLOWING = 50  # answers before the master is killed
AFTER_FAILOVER = 1.0  # seconds of load once the sentinels agree on the new master
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=15)
NAVIGATION = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
XHR = {"Accept": "application/json"}


@pytest.fixture
def sentinels(tmp_path: Path, secrets: Secrets) -> Iterator[RedisSentinelSet]:
    """A Sentinel set of this test's own (its master is killed)."""
    secrets.add(PASSWORD)
    started = RedisSentinelSet(tmp_path / "sentinel", password=PASSWORD)
    try:
        started.start()
        yield started
    finally:
        started.close()


@dataclass
class Load:
    """Every answer the load got, by status, and the bodies of those that were not 200."""

    statuses: Counter[int] = field(default_factory=Counter)
    refusals: list[str] = field(default_factory=list)
    sent: int = 0
    flowing: asyncio.Event = field(default_factory=asyncio.Event)  # FLOWING answers are in


async def keep_requesting(url: str, cookies: list[str], stop: asyncio.Event, load: Load,
                          client: int) -> None:
    """Cycle through the sessions as navigations and XHRs until told to stop."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                     timeout=REQUEST_TIMEOUT) as http:
        n = client
        while not stop.is_set() and load.sent < MAX_REQUESTS:
            load.sent += 1
            kind = NAVIGATION if n % 2 else XHR
            async with http.get(f"{url}/page/{n}", allow_redirects=False,
                                headers={"Cookie": cookies[n % len(cookies)], **kind}) as resp:
                body = await resp.text()
                load.statuses[resp.status] += 1
                if resp.status != 200:
                    load.refusals.append(body)
            if load.statuses.total() >= FLOWING:
                load.flowing.set()
            n += 1


async def test_killing_the_master_under_load_loses_no_session(
        make_gateway: GatewayFactory, sentinels: RedisSentinelSet) -> None:
    """SIGKILL of the master mid-load: requests get 200 or 503 at worst, no session is lost,
    and the gateway writes to the promoted master without a restart."""
    gateway = await make_gateway(
        GATEWAY_SESSION_STORE="redis", GATEWAY_SESSION_REDIS_URL=sentinels.url(),
        GATEWAY_SESSION_REDIS_SENTINELS=",".join(sentinels.sentinel_addresses))
    cookies = [await sign_in_cookies(gateway.url) for _ in range(3)]
    cookies.append(await sign_in_cookies(gateway.url, BOB.username, BOB.password))
    with sentinels.current_master().admin() as master:
        assert master.execute_command("WAIT", 1, 5000) == 1, "the replica did not catch up"
    stop, load = asyncio.Event(), Load()
    clients = [asyncio.create_task(keep_requesting(gateway.url, cookies, stop, load, n))
               for n in range(CLIENTS)]
    try:
        async with asyncio.timeout(15):
            await load.flowing.wait()
        old = await asyncio.to_thread(sentinels.kill_master)
        took = await asyncio.to_thread(sentinels.wait_for_failover, old)
        sent_at_failover = load.sent
        await asyncio.sleep(AFTER_FAILOVER)
    finally:
        stop.set()
        await asyncio.gather(*clients)
    assert took < 15, f"the failover took {took:.1f} s"
    assert load.sent - sent_at_failover > 10, "no load after the failover"
    assert set(load.statuses) <= {200, 503}, (load.statuses, load.refusals[:3])
    for body in load.refusals:
        assert LEAKS.search(body) is None, body[:300]
    for cookie in cookies:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http, \
                http.get(f"{gateway.url}/after", headers={"Cookie": cookie, **XHR}) as resp:
            assert resp.status == 200, "a session was lost in the failover"
    newcomer = await sign_in_cookies(gateway.url, ALICE.username, ALICE.password)
    assert newcomer not in cookies
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/ready") as resp:
        assert resp.status == 200
