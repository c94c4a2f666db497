"""Translating redis-py's failures, and refusing a redis_url that cannot work, before any call.

The reasons that real servers produce are covered end to end in test_redis_failures; this
table also covers those a loopback test cannot provoke on demand (LOADING, CLUSTERDOWN,
TRYAGAIN, NOPERM).
"""

from __future__ import annotations

import errno
import ssl
from typing import Any

import pytest
from redis import exceptions as redis_errors
from redis.asyncio.sentinel import MasterNotFoundError

from gateway.errors import ConfigError, SessionStoreUnavailable
from gateway.sessions.redis_client import SessionRedis
from gateway.sessions.redis_errors import RedisUnavailable, classify, errno_name
from gateway.translate import status_of
from tests.redis_client.conftest import PASSWORD, settings_for

ADDRESS = "Error 111 connecting to 10.0.0.7:6379. Connection refused."


def caused(exc: BaseException, cause: BaseException, *, explicit: bool = True
           ) -> BaseException:
    """`exc` raised while handling `cause` (`raise ... from` when explicit)."""
    if explicit:
        exc.__cause__ = cause
    else:
        exc.__context__ = cause
    return exc


@pytest.mark.parametrize(("exc", "reason", "retryable"), [
    pytest.param(redis_errors.TimeoutError("Timeout reading from 10.0.0.7:6379"), "timeout",
                 False, id="redis-timeout"),
    pytest.param(TimeoutError(), "timeout", False, id="deadline"),
    pytest.param(redis_errors.ConnectionError(ADDRESS), "connect", True, id="refused"),
    pytest.param(ConnectionResetError(errno.ECONNRESET, "reset"), "connect", True, id="reset"),
    pytest.param(redis_errors.AuthenticationError("invalid password"), "auth", False,
                 id="wrong-password"),
    pytest.param(redis_errors.NoPermissionError("NOPERM"), "auth", False, id="acl"),
    pytest.param(MasterNotFoundError("No master found for 'mymaster' : 10.0.0.7:26379"),
                 "master_not_found", True, id="no-master"),
    pytest.param(redis_errors.BusyLoadingError("LOADING"), "loading", True, id="loading"),
    pytest.param(redis_errors.ReadOnlyError("READONLY"), "read_only", True, id="demoted"),
    pytest.param(redis_errors.ClusterDownError("CLUSTERDOWN"), "cluster_down", True,
                 id="cluster-down"),
    pytest.param(redis_errors.TryAgainError(), "cluster_down", True, id="try-again"),
    pytest.param(redis_errors.SlotNotCoveredError("slot 7"), "cluster_down", True,
                 id="slot-not-covered"),
    pytest.param(redis_errors.MaxConnectionsError(), "busy", False, id="pool-full"),
    pytest.param(redis_errors.ResponseError("WRONGTYPE"), "error", False, id="wrong-type"),
    pytest.param(redis_errors.RedisClusterException("keys don't hash to the same slot"),
                 "error", False, id="cross-slot"),
    pytest.param(caused(redis_errors.RedisClusterException("cannot be connected"),
                        redis_errors.ConnectionError(ADDRESS)), "connect", True,
                 id="cluster-unreachable"),
    pytest.param(caused(redis_errors.ConnectionError("SSL"), ssl.SSLCertVerificationError(
        1, "certificate verify failed"), explicit=False), "tls", False,
                 id="untrusted-certificate"),
])
def test_every_failure_has_a_bounded_reason(exc: BaseException, reason: str,
                                            retryable: bool) -> None:
    """classify() names the failure and says whether waiting may cure it."""
    assert classify(exc) == (reason, retryable)


def test_the_errno_behind_a_failure_is_named_symbolically() -> None:
    """The OS error that caused a redis-py error is logged as ECONNREFUSED, not as text."""
    exc = caused(redis_errors.ConnectionError(ADDRESS),
                 ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
                 explicit=False)
    assert errno_name(exc) == "ECONNREFUSED"
    assert errno_name(redis_errors.ResponseError("WRONGTYPE")) is None


def test_the_error_is_a_503_that_names_only_its_reason() -> None:
    """RedisUnavailable is the store's SessionStoreUnavailable, with a plain message."""
    error = RedisUnavailable("connect")
    assert isinstance(error, SessionStoreUnavailable)
    assert status_of(error) == (503, "session_store_unavailable")
    assert str(error) == "the session store (Redis) is unavailable: connect"


@pytest.mark.parametrize(("url", "changes", "problem"), [
    pytest.param(f"http://:{PASSWORD}@127.0.0.1:6379/0", {}, "redis://, rediss://",
                 id="scheme"),
    pytest.param(f"redis://:{PASSWORD}@127.0.0.1:6379/0?socket_timeout=9", {},
                 "?socket_timeout=", id="timeout-in-url"),
    pytest.param("redis://127.0.0.1:6379/0?ssl_ca_certs=/ca.pem", {}, "?ssl_ca_certs=",
                 id="tls-option-without-tls"),
    pytest.param("redis://127.0.0.1:7000/1", {"redis_cluster": True}, "without a db",
                 id="cluster-with-db"),
    pytest.param("unix:///run/redis.sock", {"redis_cluster": True}, "without a db",
                 id="cluster-on-unix-socket"),
    pytest.param("unix:///run/redis.sock", {"redis_sentinels": ["127.0.0.1:26379"]},
                 "unix://", id="sentinel-on-unix-socket"),
])
def test_a_redis_url_that_cannot_work_is_refused_at_start(
        url: str, changes: dict[str, Any], problem: str) -> None:
    """from_settings raises ConfigError on session.redis_url, without echoing the URL."""
    with pytest.raises(ConfigError) as caught:
        SessionRedis.from_settings(settings_for(url, **changes))
    (found,) = caught.value.problems
    assert found.key == "session.redis_url"
    assert problem in found.message
    assert PASSWORD not in str(caught.value)
    assert "127.0.0.1" not in str(caught.value)


@pytest.mark.parametrize("url", [
    pytest.param("rediss://:pw@redis.example:6380/0?ssl_ca_certs=/ca.pem&ssl_cert_reqs=required",
                 id="tls-with-private-ca"),
    pytest.param("unix:///run/redis.sock?db=3", id="unix-with-db"),
    pytest.param("redis://user:pw@redis.example/2", id="acl-user"),
])
async def test_a_valid_redis_url_builds_a_client_without_connecting(url: str) -> None:
    """Building the client makes no connection, so a valid URL never fails at start."""
    client = SessionRedis.from_settings(settings_for(url))
    assert repr(client) == "SessionRedis(topology='standalone')"
    await client.aclose()
