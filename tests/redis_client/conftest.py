"""Real Redis for the session store's client: standalone, Sentinel and Cluster on loopback.

The standalone server is started per test (30 ms); the Sentinel set (2 s) and the Cluster
(2 s) are shared by a module, except where a test kills a master. Every data node requires
`PASSWORD`, which the log scan of tests/conftest.py treats as a secret.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from secrets import token_urlsafe
from typing import TYPE_CHECKING, Any

import pytest
import redis
import redis.cluster

from gateway.config import SessionSettings
from gateway.sessions.redis_client import RedisUnavailable, SessionRedis
from tests.conftest import Secrets, log_text
from tests.support.redis_servers import (
    RedisClusterSet,
    RedisSentinelSet,
    RedisServer,
    TlsFiles,
)

if TYPE_CHECKING:
    import io
    from pathlib import Path

PASSWORD = token_urlsafe(18)
TIMEOUT = 0.5  # redis_timeout_seconds in these tests: small, so failures are quick to see
MARGIN = 0.4  # scheduling slack on a busy 2-core machine


@pytest.fixture(autouse=True)
def _password_is_secret(secrets: Secrets) -> None:
    secrets.add(PASSWORD)


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[RedisServer]:
    """A password-protected redis-server with a unix socket and a TLS port."""
    server = RedisServer(tmp_path / "redis", password=PASSWORD, unix_socket=True,
                         tls=TlsFiles.generate(tmp_path))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[RedisSentinelSet]:
    """A Sentinel set of this test's own, for tests that kill its master."""
    sentinels = RedisSentinelSet(tmp_path / "sentinel", password=PASSWORD)
    try:
        sentinels.start()
        yield sentinels
    finally:
        sentinels.close()


@pytest.fixture(scope="module")
def shared_sentinel_set(tmp_path_factory: pytest.TempPathFactory
                        ) -> Iterator[RedisSentinelSet]:
    """A Sentinel set shared by a module's tests that leave its master alive."""
    sentinels = RedisSentinelSet(tmp_path_factory.mktemp("sentinel"), password=PASSWORD)
    try:
        sentinels.start()
        yield sentinels
    finally:
        sentinels.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    """Three cluster masters shared by a module."""
    nodes = RedisClusterSet(tmp_path_factory.mktemp("cluster"), password=PASSWORD)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.close()


@dataclass(frozen=True)
class Topology:
    """A running topology: the settings that reach it, and independent ways to check it."""

    name: str
    settings: SessionSettings
    inspector: Callable[[], Any]  # a fresh synchronous redis-py client on the data
    data_nodes: Callable[[], list[RedisServer]]  # the servers holding data now
    key_slot: Callable[[str], int] | None = None

    def with_settings(self, **changes: Any) -> SessionSettings:
        return dataclasses.replace(self.settings, **changes)


def settings_for(url: str, **changes: Any) -> SessionSettings:
    return dataclasses.replace(SessionSettings(redis_url=url, redis_timeout_seconds=TIMEOUT),
                               **changes)


@pytest.fixture(params=["standalone", "sentinel", "cluster"])
def topology(request: pytest.FixtureRequest) -> Topology:
    """Each topology in turn, started only when a test asks for it."""
    if request.param == "standalone":
        server: RedisServer = request.getfixturevalue("standalone")
        return Topology("standalone", settings_for(server.url(db=3)),
                        lambda: server.admin(db=3), lambda: [server])
    if request.param == "sentinel":
        sentinels: RedisSentinelSet = request.getfixturevalue("shared_sentinel_set")
        return Topology("sentinel",
                        settings_for(sentinels.url(db=2),
                                     redis_sentinels=sentinels.sentinel_addresses),
                        lambda: sentinels.current_master().admin(db=2),
                        lambda: [sentinels.current_master()])
    nodes: RedisClusterSet = request.getfixturevalue("cluster")
    first = nodes.nodes[0]
    return Topology("cluster", settings_for(nodes.url(), redis_cluster=True),
                    lambda: redis.cluster.RedisCluster(host="127.0.0.1", port=first.port,
                                                       password=PASSWORD),
                    lambda: nodes.nodes, nodes.key_slot)


MakeClient = Callable[..., SessionRedis]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """Build SessionRedis clients from settings; all are closed at teardown."""
    clients: list[SessionRedis] = []

    def make(settings: SessionSettings, **kwargs: Any) -> SessionRedis:
        client = SessionRedis.from_settings(settings, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def fails(call: Awaitable[object]) -> tuple[RedisUnavailable, float]:
    """The RedisUnavailable `call` raises, and the seconds it took to raise it."""
    started = time.monotonic()
    with pytest.raises(RedisUnavailable) as caught:
        await call
    return caught.value, time.monotonic() - started


def assert_discreet(error: Exception, log: io.StringIO, *ports: int) -> None:
    """Neither the error nor anything logged names an address or carries the password."""
    text = f"{error}\n{error!r}\n{log_text(log)}"
    for leak in ("127.0.0.1", "localhost", PASSWORD, *(f":{port}" for port in ports)):
        assert leak not in text, f"{leak!r} leaked: {text[:2000]}"
    assert "the session store (Redis) is unavailable" in str(error)
