"""SessionRedis when Redis misbehaves: silent, stopped, restarted, demoted, misconfigured, full.

Every failure must surface as RedisUnavailable within its bound, with a bounded reason, and
neither the error nor the log may name an address or carry the password.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest

from gateway.demo.stack import free_port
from gateway.sessions.redis_client import SessionRedis
from tests.conftest import log_events
from tests.redis_client.conftest import (
    MARGIN,
    PASSWORD,
    TIMEOUT,
    MakeClient,
    assert_discreet,
    fails,
    settings_for,
)
from tests.support.redis_servers import RedisServer, TlsFiles

if TYPE_CHECKING:
    import io
    from pathlib import Path

pytestmark = pytest.mark.redis

Operation = Callable[[SessionRedis], Awaitable[object]]

OPERATIONS: dict[str, Operation] = {
    "get": lambda c: c.get("k"),
    "set": lambda c: c.set("k", b"v", ttl_seconds=5),
    "release_lock": lambda c: c.release_lock("lock", "token"),
    "zrangebyscore": lambda c: c.zrangebyscore("index", 0, 10),
}


@pytest.mark.parametrize("warm", [True, False], ids=["pooled-connection", "new-connection"])
@pytest.mark.parametrize("operation", list(OPERATIONS), ids=list(OPERATIONS))
async def test_a_silent_server_fails_within_the_timeout(
        standalone: RedisServer, make_client: MakeClient, log_buffer: io.StringIO,
        operation: str, warm: bool) -> None:
    """SIGSTOP: connections are accepted, nothing answers; the call fails as `timeout` after
    redis_timeout_seconds, without retrying."""
    client = make_client(settings_for(standalone.url()))
    if warm:
        assert await client.ping()
    standalone.pause()
    error, elapsed = await fails(OPERATIONS[operation](client))
    assert error.reason == "timeout"
    assert TIMEOUT * 0.9 <= elapsed <= TIMEOUT + MARGIN
    assert_discreet(error, log_buffer, standalone.port)


async def test_ping_is_false_within_the_timeout_when_redis_is_silent(
        standalone: RedisServer, make_client: MakeClient) -> None:
    """/ready's check answers False, it does not hang, and it does not wait for a failover."""
    client = make_client(settings_for(standalone.url()))
    standalone.pause()
    started = time.monotonic()
    assert await client.ping() is False
    assert time.monotonic() - started <= TIMEOUT + MARGIN
    standalone.resume()
    assert await client.ping() is True


async def test_a_stopped_server_fails_as_connect_after_the_failover_window(
        standalone: RedisServer, make_client: MakeClient, log_buffer: io.StringIO) -> None:
    """Refused connections are retried with backoff for the failover window, then fail."""
    client = make_client(settings_for(standalone.url()), failover_window=1.0)
    assert await client.ping()
    standalone.stop()
    error, elapsed = await fails(client.get("k"))
    assert error.reason == "connect"
    assert 1.0 <= elapsed <= 1.0 + TIMEOUT + MARGIN
    failure = [e for e in log_events(log_buffer) if e.get("event") == "session_store_unavailable"]
    assert failure[-1]["errno"] == "ECONNREFUSED"
    assert failure[-1]["attempts"] > 3
    assert_discreet(error, log_buffer, standalone.port)


async def test_a_restart_during_traffic_is_invisible_to_callers(
        standalone: RedisServer, make_client: MakeClient) -> None:
    """Calls made while Redis stops and comes back on the same port wait and then succeed."""
    client = make_client(settings_for(standalone.url()))
    stop = asyncio.Event()
    latencies: list[float] = []

    async def traffic(worker: int) -> int:
        calls = 0
        while not stop.is_set():
            started = time.monotonic()
            await client.set(f"w{worker}", str(calls), ttl_seconds=30)
            await client.get(f"w{worker}")
            latencies.append(time.monotonic() - started)
            calls += 1
        return calls

    workers = [asyncio.create_task(traffic(n)) for n in range(4)]
    await asyncio.sleep(0.2)
    await asyncio.to_thread(standalone.restart)
    await asyncio.sleep(0.2)
    stop.set()
    assert all(calls > 0 for calls in await asyncio.gather(*workers))
    assert max(latencies) < 2 * (TIMEOUT + MARGIN) + 1.0, max(latencies)
    assert await client.get("w0") is not None


@pytest.mark.parametrize(("promoted_after", "outcome"), [
    pytest.param(0.3, "stored", id="promoted-within-the-window"),
    pytest.param(None, "read_only", id="never-promoted"),
])
async def test_a_write_to_a_demoted_master_is_retried_until_the_window_ends(
        standalone: RedisServer, make_client: MakeClient, log_buffer: io.StringIO,
        promoted_after: float | None, outcome: str) -> None:
    """READONLY (a master demoted behind a fixed address) is retried like a connection error,
    so a failover that completes within the window is invisible."""
    client = make_client(settings_for(standalone.url()), failover_window=1.0)
    nowhere = free_port()  # a master that does not exist: the server stays a replica
    with standalone.admin() as admin:
        admin.replicaof("127.0.0.1", nowhere)
    write = asyncio.create_task(client.set("k", b"v", ttl_seconds=30))
    if promoted_after is not None:
        await asyncio.sleep(promoted_after)
        with standalone.admin() as admin:
            admin.replicaof("NO", "ONE")
        await write
        assert await client.get("k") == b"v"
        return
    error, _ = await fails(write)
    assert error.reason == outcome
    assert_discreet(error, log_buffer, standalone.port, nowhere)


@pytest.mark.parametrize(("url", "reason"), [
    pytest.param(lambda s, _: s.url().replace(PASSWORD, "wrong-password-123"), "auth",
                 id="wrong-password"),
    pytest.param(lambda s, _: f"redis://127.0.0.1:{s.port}/0", "auth", id="no-password"),
    pytest.param(lambda s, ca: s.tls_url().split("?")[0] + f"?ssl_ca_certs={ca}", "tls",
                 id="tls-untrusted-certificate"),
])
async def test_misconfiguration_fails_at_once_with_its_reason(
        standalone: RedisServer, make_client: MakeClient, log_buffer: io.StringIO,
        tmp_path: Path, url: Callable[[RedisServer, Path], str], reason: str) -> None:
    """A wrong password or an untrusted certificate is not retried: waiting cannot cure it."""
    (tmp_path / "other").mkdir()
    other_ca = TlsFiles.generate(tmp_path / "other").ca
    client = make_client(settings_for(url(standalone, other_ca)))
    error, elapsed = await fails(client.get("k"))
    assert error.reason == reason
    assert elapsed < TIMEOUT
    assert_discreet(error, log_buffer, standalone.port, standalone.tls_port or 0)


@pytest.mark.parametrize("form", ["redis", "unix", "rediss"])
async def test_each_url_form_reaches_its_server_and_database(
        standalone: RedisServer, make_client: MakeClient, form: str) -> None:
    """redis:// with password and db, unix:// with ?db=, rediss:// with ssl_ca_certs."""
    url = {"redis": standalone.url(db=5), "unix": standalone.unix_url(db=5),
           "rediss": standalone.tls_url(db=5)}[form]
    client = make_client(settings_for(url))
    await client.set(f"via-{form}", b"1", ttl_seconds=30)
    with standalone.admin(db=5) as admin:
        assert admin.get(f"via-{form}") == b"1"
    with standalone.admin(db=0) as admin:
        assert admin.get(f"via-{form}") is None


async def test_a_burst_beyond_the_pool_waits_for_a_connection(
        standalone: RedisServer, make_client: MakeClient) -> None:
    """Six calls on a pool of two: four wait for a free connection, all succeed, and Redis
    never sees more than two connections."""
    client = make_client(settings_for(standalone.url(), redis_max_connections=2))
    standalone.pause()
    started = time.monotonic()
    calls = [asyncio.create_task(client.get(f"k{n}")) for n in range(6)]
    await asyncio.sleep(0.2)  # the stall the burst must wait out
    standalone.resume()
    assert await asyncio.gather(*calls) == [None] * 6
    assert 0.2 <= time.monotonic() - started < TIMEOUT + MARGIN
    with standalone.admin() as admin:
        named = [c for c in admin.client_list() if c.get("name") == "cognito-gateway"]
    assert len(named) == 2


async def test_callers_beyond_an_exhausted_pool_fail_as_busy_after_the_timeout(
        standalone: RedisServer, make_client: MakeClient, log_buffer: io.StringIO) -> None:
    """One connection, a silent Redis, three calls: the one holding the connection times out;
    a caller still queued when its own timeout ends fails as `busy`; nobody waits longer
    than two timeouts."""
    client = make_client(settings_for(standalone.url(), redis_max_connections=1))
    assert await client.ping()
    standalone.pause()
    outcomes = await asyncio.gather(*(fails(client.get(f"k{n}")) for n in range(3)))
    assert {error.reason for error, _ in outcomes} == {"timeout", "busy"}
    for error, elapsed in outcomes:
        assert TIMEOUT * 0.9 <= elapsed <= 2 * TIMEOUT + MARGIN, (error.reason, elapsed)
        assert_discreet(error, log_buffer, standalone.port)


async def test_calls_retrying_through_a_restart_share_one_connection(
        standalone: RedisServer, make_client: MakeClient) -> None:
    """A call backing off between retries gives its connection back, so three calls on a pool
    of one all ride out a restart instead of the two queued ones failing as `busy`."""
    client = make_client(settings_for(standalone.url(), redis_max_connections=1),
                         failover_window=3.0)
    assert await client.ping()
    standalone.stop()
    calls = [asyncio.create_task(client.set(f"k{n}", b"v", ttl_seconds=30)) for n in range(3)]
    await asyncio.sleep(2 * TIMEOUT)  # longer than a queued call may wait for the connection
    await asyncio.to_thread(standalone.start)
    await asyncio.gather(*calls)
    with standalone.admin() as admin:
        assert admin.mget("k0", "k1", "k2") == [b"v"] * 3
