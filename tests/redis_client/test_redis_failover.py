"""SessionRedis across failovers: a Sentinel master killed mid-load, a silent sentinel, no
sentinel at all, a Cluster node restarted mid-call.

Replication is asynchronous, so a failover may lose the last writes a dead master had
acknowledged. The guarantee tested is the precise one: a write that `WAIT 1` confirmed reached
the replica survives the failover; every call in flight during the failover waits and
succeeds instead of failing, provided the failover ends within the failover window.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.sessions.redis_client import FAILOVER_WINDOW_SECONDS, SessionRedis
from gateway.sessions.redis_keys import SessionKeys
from tests.redis_client.conftest import (
    MARGIN,
    PASSWORD,
    TIMEOUT,
    MakeClient,
    assert_discreet,
    fails,
    settings_for,
)

if TYPE_CHECKING:
    import io
    from collections.abc import Callable

    from tests.support.redis_servers import RedisClusterSet, RedisSentinelSet

pytestmark = pytest.mark.redis

WORKERS = 8
ACKNOWLEDGE_MS = 200


@dataclass
class Load:
    """What concurrent set/get traffic saw: each call's end time and latency, and errors."""

    calls: list[tuple[float, float]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def slowest_after(self, moment: float) -> float:
        return max((latency for ended, latency in self.calls if ended > moment), default=0.0)

    def longest_stall_after(self, moment: float) -> float:
        """The longest time after `moment` during which no call completed."""
        ends = sorted([moment, *(ended for ended, _ in self.calls if ended > moment)])
        return max(later - earlier for earlier, later in itertools.pairwise(ends))


async def run_load(client: SessionRedis, stop: asyncio.Event, load: Load, worker: int) -> None:
    """Write a key, read it back, repeat; record every call."""
    n = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await client.set(f"load:{worker}:{n}", b"v", ttl_seconds=60)
            assert await client.get(f"load:{worker}:{n}") == b"v"
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            load.errors.append(exc)
        ended = time.monotonic()
        load.calls.append((ended, ended - started))
        n += 1


async def acknowledged_writes(sentinels: RedisSentinelSet, stop: asyncio.Event,
                              acknowledged: list[str]) -> None:
    """On one connection to the master: SET, then WAIT 1; keep the keys the replica
    confirmed holding, until the master dies."""
    master = sentinels.current_master()
    connection = Redis(host="127.0.0.1", port=master.port, password=PASSWORD, db=2,
                       socket_timeout=1.0, single_connection_client=True)
    try:
        n = 0
        while not stop.is_set():
            key = f"acknowledged:{n}"
            await connection.set(key, b"durable")
            if await connection.wait(1, ACKNOWLEDGE_MS) >= 1:
                acknowledged.append(key)
            n += 1
    except RedisError:
        pass  # the master died: what it confirmed is recorded
    finally:
        await connection.aclose()


@pytest.fixture
def client(sentinel_set: RedisSentinelSet, make_client: MakeClient) -> SessionRedis:
    return make_client(settings_for(sentinel_set.url(db=2),
                                   redis_sentinels=sentinel_set.sentinel_addresses))


@pytest.mark.timeout(60)
async def test_killing_the_master_mid_load_loses_no_call_and_no_acknowledged_write(
        sentinel_set: RedisSentinelSet, client: SessionRedis) -> None:
    """Calls in flight when the master dies wait for the promoted replica and succeed; the
    traffic stalls no longer than the sentinels take to switch (plus one backoff step);
    writes confirmed by WAIT 1 survive."""
    stop, load, acknowledged = asyncio.Event(), Load(), list[str]()
    tasks = [asyncio.create_task(run_load(client, stop, load, n)) for n in range(WORKERS)]
    writer = asyncio.create_task(acknowledged_writes(sentinel_set, stop, acknowledged))
    try:
        await _until(lambda: len(acknowledged) >= 20 and len(load.calls) >= 200)
        killed_at = time.monotonic()
        old = sentinel_set.kill_master()
        switched = await asyncio.to_thread(sentinel_set.wait_for_failover, old)
        await _until(lambda: load.calls[-1][0] > killed_at + switched + 0.5)
    finally:
        stop.set()
        await asyncio.gather(*tasks, writer)

    assert load.errors == [], load.errors[:3]
    stall = load.longest_stall_after(killed_at)
    assert stall <= switched + 1.0, (stall, switched)
    assert load.slowest_after(killed_at) <= TIMEOUT + FAILOVER_WINDOW_SECONDS
    assert len(acknowledged) >= 20
    for key in acknowledged:
        assert await client.get(key) == b"durable", f"{key} was confirmed but lost"


async def test_a_silent_sentinel_is_skipped_within_the_timeout(
        shared_sentinel_set: RedisSentinelSet, make_client: MakeClient) -> None:
    """A stopped (SIGSTOP) sentinel costs one timeout; the next sentinel names the master."""
    sentinels = shared_sentinel_set
    client = make_client(settings_for(sentinels.url(),
                                      redis_sentinels=sentinels.sentinel_addresses))
    sentinels.sentinels[0].pause()  # the first one the client asks
    try:
        started = time.monotonic()
        await client.set("k", b"v", ttl_seconds=30)
        assert TIMEOUT <= time.monotonic() - started <= 2 * TIMEOUT + MARGIN
    finally:
        sentinels.sentinels[0].resume()


async def test_no_reachable_sentinel_fails_as_master_not_found(
        sentinel_set: RedisSentinelSet, make_client: MakeClient,
        log_buffer: io.StringIO) -> None:
    """With every sentinel down, calls retry for the window, then fail as master_not_found,
    naming neither sentinel nor master addresses."""
    for sentinel in sentinel_set.sentinels:
        sentinel.kill()
    client = make_client(settings_for(sentinel_set.url(),
                                      redis_sentinels=sentinel_set.sentinel_addresses),
                         failover_window=0.5)
    error, elapsed = await fails(client.get("k"))
    assert error.reason == "master_not_found"
    assert 0.5 <= elapsed <= 0.5 + TIMEOUT + MARGIN
    assert_discreet(error, log_buffer, *sentinel_set.sentinel_ports, sentinel_set.master.port)


async def _until(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Yield to the traffic until `condition()` holds; fail loudly after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_a_cluster_node_restarted_mid_call_is_invisible(
        cluster: RedisClusterSet, make_client: MakeClient) -> None:
    """A call to a node that dies and comes back on its port retries until it answers; the
    client re-reads the slot map on the way, and calls to other nodes never notice."""
    client = make_client(settings_for(cluster.url(), redis_cluster=True))
    keys = {cluster.owner(SessionKeys.for_session(f"sid-{n}").session): n for n in range(30)}
    assert len(keys) == len(cluster.nodes)
    victim = cluster.nodes[-1]
    victim_key = SessionKeys.for_session(f"sid-{keys[victim.port]}").session
    other_key = SessionKeys.for_session(f"sid-{keys[cluster.nodes[0].port]}").session
    await client.set(victim_key, b"before", ttl_seconds=60)
    victim.kill()
    started = time.monotonic()
    pending = asyncio.create_task(client.set(victim_key, b"after", ttl_seconds=60))
    await client.set(other_key, b"unaffected", ttl_seconds=60)
    await asyncio.to_thread(victim.start)
    await pending
    assert time.monotonic() - started <= TIMEOUT + FAILOVER_WINDOW_SECONDS
    assert await client.get(victim_key) == b"after"
    assert await client.get(other_key) == b"unaffected"
