"""The session store's connection to Redis: standalone, Sentinel or Cluster behind one surface.

`SessionRedis.from_settings(settings.session)` builds the redis-py asyncio client that the
settings describe, and offers the few operations the store needs, each of which works the same
on all three topologies: get/set with expiry/delete, a lock (`SET NX PX`, released and
extended by owner token through Lua scripts touching one key), sorted-set operations for a
per-user index (`index_add` keeps it pruned and expiring with its sessions), and `ping()` for
readiness. Key names that keep a session and its lock in one Cluster slot come from
`gateway.sessions.redis_keys`.

Bounds, with T = `redis_timeout_seconds` and W = the failover window (`FAILOVER_WINDOW_SECONDS`):

* Every network step (connect, TLS handshake, each reply) times out after T.
* At most `redis_max_connections` calls are in flight per client. A call beyond that waits
  up to T for a slot, then fails as `busy`: a burst is queued rather than turned into errors,
  and the wait is bounded. The wait is one gate in front of every topology, because redis-py
  only has a waiting pool for standalone Redis (the Sentinel pool and a Cluster's per-node
  pools raise at once when full); the pools underneath are bounded to the same size and so
  never have to wait or refuse. A call gives its slot back while it backs off between
  retries, so a failover does not also exhaust the gate. (A Cluster client also keeps one
  connection per node for topology discovery, outside the gate: redis-py's startup nodes.)
* A connection error (refused, reset, no master known, READONLY from a demoted master, cluster
  down, a Cluster that cannot be re-discovered yet, a connection redis-py tore down under the
  call) is retried with exponential backoff for about W, so a restart or failover shorter than
  W is invisible to callers. A timeout is not retried: a server that does not answer would
  only be waited for again.
* Whatever happens inside redis-py, a call ends within T + W.
* Retried operations are idempotent: a retry after a lost reply cannot change the outcome
  (taking a lock again with the token that holds it succeeds).

Every failure surfaces as `RedisUnavailable`, a `SessionStoreUnavailable` whose message names
no address, errno text or password; the detail is logged once, in bounded fields.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qs, urlsplit

from redis import exceptions as redis_errors
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff

from gateway.errors import ConfigError, ConfigProblem
from gateway.observability.logging import get_logger
from gateway.observability.tracing import DB_OPERATION, DB_SYSTEM, TRACING_OFF, Tracing
from gateway.sessions.redis_errors import RedisUnavailable, classify, errno_name

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from gateway.config import SessionSettings

__all__ = ["FAILOVER_WINDOW_SECONDS", "RedisUnavailable", "SessionRedis"]

log = get_logger(__name__)
T = TypeVar("T")

FAILOVER_WINDOW_SECONDS: Final = 6.0
"""How long connection errors are retried. Measured here (tests/redis_client): a Sentinel
failover with down-after-milliseconds=1000 took 2.3-2.5 s from the master's SIGKILL to every
sentinel naming the promoted replica; traffic under load stalled 2.4 s at most and no call
failed. A restarted Cluster node answers CLUSTERDOWN for about 2.3 s. 6 s rides out a Sentinel
down-after-milliseconds of up to about 4000; beyond, calls fail as 503 until the switch."""
# Stateless (unlike the jittered ones), so one Retry serves concurrent calls:
BACKOFF = ExponentialBackoff(cap=0.5, base=0.025)  # 50, 100, 200, 400, 500, 500... ms
HEALTH_CHECK_SECONDS: Final = 15
CLIENT_NAME: Final = "cognito-gateway"
NO_RETRY = Retry(NoBackoff(), 0)  # redis-py must not retry on its own: one policy, here
TLS_OPTIONS: Final = frozenset({
    "ssl_ca_certs", "ssl_ca_path", "ssl_ca_data", "ssl_certfile", "ssl_keyfile",
    "ssl_cert_reqs", "ssl_check_hostname", "ssl_min_version", "ssl_ciphers"})

# A lock holds its owner's token: taking it is SET NX PX, and also succeeds for the token
# already holding it (so a retry after a lost reply does not lock out its own taker); it is
# released (compare-and-delete) or extended (compare-and-extend) only by that token. One key
# each, so any Cluster node can run them.
ACQUIRE_LOCK = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
EXTEND_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


# A user's index: add a session scored by its expiry, drop every member that has expired, and
# let the set expire with its latest member, so it never outlives the sessions it lists.
# One key, so any Cluster node can run it; re-running it changes nothing (idempotent).
INDEX_ADD = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last == 0 then return 0 end
local ttl = math.ceil((tonumber(last[2]) - tonumber(ARGV[3])) * 1000)
redis.call('PEXPIRE', KEYS[1], math.max(1, ttl))
return redis.call('ZCARD', KEYS[1])
"""

class SessionRedis:
    """A Redis client for the session store, with bounded calls and one error type.

    Values are bytes in Redis (no decoding); times are seconds (floats), sent as milliseconds.
    """

    def __init__(self, client: Redis | RedisCluster, *, topology: str, timeout: float,
                 max_connections: int, failover_window: float = FAILOVER_WINDOW_SECONDS,
                 sentinel: Sentinel | None = None, tracing: Tracing = TRACING_OFF) -> None:
        self.topology = topology
        self._tracing = tracing
        self._client = client
        self._sentinel = sentinel
        self._timeout = timeout
        self._deadline = timeout + failover_window
        self._gate = asyncio.Semaphore(max_connections)
        # Typed for RedisError only, but any exception type works; see classify() for why
        # these two others are retried too.
        self._retry = Retry(BACKOFF, retries_within(failover_window), supported_errors=(
            redis_errors.RedisError, redis_errors.RedisClusterException,  # type: ignore[arg-type]
            AttributeError))
        self._acquire_lock = client.register_script(ACQUIRE_LOCK)
        self._release_lock = client.register_script(RELEASE_LOCK)
        self._extend_lock = client.register_script(EXTEND_LOCK)
        self._index_add = client.register_script(INDEX_ADD)

    @classmethod
    def from_settings(cls, settings: SessionSettings, *,
                      failover_window: float = FAILOVER_WINDOW_SECONDS,
                      tracing: Tracing = TRACING_OFF) -> SessionRedis:
        """The client `settings` describe: Sentinel when `redis_sentinels` is set, Cluster when
        `redis_cluster` is true, otherwise the one server of `redis_url`.

        Raises ConfigError when `redis_url` cannot serve that topology.
        """
        timeout = settings.redis_timeout_seconds
        size = settings.redis_max_connections
        url = _url_options(settings.redis_url)
        connection_class = url.pop("connection_class", None)
        tls = connection_class is SSLConnection
        options: dict[str, Any] = url | {
            "socket_timeout": timeout, "socket_connect_timeout": timeout,
            "health_check_interval": HEALTH_CHECK_SECONDS, "retry": NO_RETRY,
            "client_name": CLIENT_NAME, "decode_responses": False, "max_connections": size}
        if "path" not in url:
            options["socket_keepalive"] = True  # a peer gone silent is noticed between calls
        sentinel = None
        if settings.redis_sentinels:
            if "path" in url:
                raise _url_problem("a unix:// socket cannot be combined with Sentinel")
            options.pop("host", None)  # the sentinels name the master
            options.pop("port", None)
            sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                [_address(entry) for entry in settings.redis_sentinels],
                sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout,
                                 "retry": NO_RETRY})
            client: Redis | RedisCluster = sentinel.master_for(
                settings.redis_sentinel_master, ssl=tls, **options)
        elif settings.redis_cluster:
            if "path" in url or url.get("db", 0):
                raise _url_problem("a Cluster takes a redis:// or rediss:// URL without a db")
            options.pop("db", None)
            client = RedisCluster(ssl=tls, **options)
        else:
            pool = ConnectionPool(connection_class=connection_class or Connection, **options)
            client = Redis.from_pool(pool)
        topology = "sentinel" if sentinel else "cluster" if settings.redis_cluster else (
            "standalone")
        return cls(client, topology=topology, timeout=timeout, max_connections=size,
                   failover_window=failover_window, sentinel=sentinel, tracing=tracing)

    def __repr__(self) -> str:
        return f"SessionRedis(topology={self.topology!r})"

    async def get(self, key: str) -> bytes | None:
        """The value of `key`, or None."""
        value = await self._call("GET", lambda: self._client.get(key))
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes | str, *, ttl_seconds: float,
                  only_if_exists: bool = False) -> bool:
        """Store `value` under `key`, expiring after `ttl_seconds`; True when stored.

        With `only_if_exists` (SET XX) a key that is gone stays gone: False then.
        """
        stored = await self._call("SET", lambda: self._client.set(
            key, value, px=_ms(ttl_seconds), xx=only_if_exists))
        return bool(stored)

    async def delete(self, *keys: str) -> int:
        """Delete `keys`; the number that existed. On a Cluster, keys of different slots are
        deleted one slot at a time (each slot's part atomically)."""
        return int(await self._call("DEL", lambda: self._client.delete(*keys)))

    async def acquire_lock(self, key: str, token: str, *, ttl_seconds: float) -> bool:
        """Take the lock `key` for `token` for `ttl_seconds` (SET NX PX); False while another
        token holds it. True, with the expiry unchanged, if `token` already holds it."""
        taken = await self._call("EVALSHA", lambda: self._acquire_lock(
            keys=[key], args=[token, _ms(ttl_seconds)]))
        return bool(taken)

    async def release_lock(self, key: str, token: str) -> bool:
        """Delete the lock `key` if `token` still holds it; False if it expired or moved on."""
        deleted = await self._call("EVALSHA", lambda: self._release_lock(
            keys=[key], args=[token]))
        return bool(deleted)

    async def extend_lock(self, key: str, token: str, *, ttl_seconds: float) -> bool:
        """Give the lock `key` a new expiry if `token` still holds it."""
        extended = await self._call("EVALSHA", lambda: self._extend_lock(
            keys=[key], args=[token, _ms(ttl_seconds)]))
        return bool(extended)

    async def zadd(self, key: str, members: Mapping[str, float]) -> int:
        """Add or re-score `members` of the sorted set `key`; the number added."""
        added = await self._call("ZADD", lambda: self._client.zadd(key, dict(members)))
        return int(added or 0)

    async def zrangebyscore(self, key: str, low: float, high: float) -> list[bytes]:
        """Members of `key` scored from `low` to `high` inclusive (`math.inf` for no bound)."""
        found = await self._call("ZRANGEBYSCORE", lambda: self._client.zrangebyscore(
            key, _score(low), _score(high)))
        return [member for member in found if isinstance(member, bytes)]

    async def zremrangebyscore(self, key: str, low: float, high: float) -> int:
        """Remove members of `key` scored from `low` to `high`; the number removed."""
        return int(await self._call("ZREMRANGEBYSCORE", lambda: self._client.zremrangebyscore(
            key, _score(low), _score(high))))

    async def zrem(self, key: str, *members: str) -> int:
        """Remove `members` from `key`; the number removed."""
        return int(await self._call("ZREM", lambda: self._client.zrem(key, *members)))

    async def index_add(self, key: str, member: str, *, expires_at: float, now: float) -> int:
        """Add `member` to the sorted set `key` scored `expires_at`, remove every member scored
        `now` or earlier, and make `key` expire when its latest member does (one script, one
        key); the number of members left."""
        live = await self._call("EVALSHA", lambda: self._index_add(
            keys=[key], args=[member, repr(expires_at), repr(now)]))
        return int(live or 0)

    async def expire(self, key: str, ttl_seconds: float) -> bool:
        """Make `key` expire after `ttl_seconds`; False if it does not exist."""
        return bool(await self._call("PEXPIRE", lambda: self._client.pexpire(
            key, _ms(ttl_seconds))))

    async def ping(self) -> bool:
        """Whether Redis answers within T now (no retries; on a Cluster, every node), for
        readiness."""
        try:
            return bool(await self._call("PING", self._client.ping, retry=False))
        except RedisUnavailable:
            return False

    async def aclose(self) -> None:
        """Close every connection (and the Sentinel clients)."""
        await self._client.aclose()
        if isinstance(self._client, RedisCluster):
            # RedisCluster.aclose() skips a client that an error left awaiting re-discovery.
            await self._client.nodes_manager.aclose()
            await self._client.nodes_manager.aclose("startup_nodes")
        if self._sentinel is not None:
            await self._sentinel.aclose()

    async def _call(self, command: str, operation: Callable[[], Awaitable[T]], *,
                    retry: bool = True) -> T:
        """Run `operation` within the deadline, each attempt holding a slot of the gate,
        retrying what waiting may cure; traced as one `redis` span (the command's name only)."""
        with self._tracing.client_span("redis", {DB_SYSTEM: "redis", DB_OPERATION: command}):
            return await self._traced_call(command, operation, retry=retry)

    async def _traced_call(self, command: str, operation: Callable[[], Awaitable[T]], *,
                           retry: bool) -> T:
        started = time.monotonic()
        attempts = 0

        async def attempt() -> T:
            nonlocal attempts
            attempts += 1
            await self._enter_gate()
            try:
                return await operation()
            finally:
                self._gate.release()

        try:
            if not retry:
                async with asyncio.timeout(self._timeout):
                    return await attempt()
            async with asyncio.timeout(self._deadline):
                result = await self._retry.call_with_retry(attempt, self._before_retry)
        except (redis_errors.RedisError, redis_errors.RedisClusterException, TimeoutError,
                OSError, AttributeError) as exc:  # AttributeError: see redis_errors `client`
            raise self._unavailable(command, exc, started, attempts) from None
        if attempts > 1:
            log.info("session_store_recovered", topology=self.topology, command=command,
                     attempts=attempts, duration_ms=_elapsed_ms(started))
        return result

    async def _enter_gate(self) -> None:
        """Take a slot, waiting up to T for one; MaxConnectionsError (`busy`) after that."""
        if not self._gate.locked():
            await self._gate.acquire()
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._gate.acquire()
        except TimeoutError:
            raise redis_errors.MaxConnectionsError from None

    async def _before_retry(self, error: Exception) -> None:
        """Called by Retry after each failure: stop at once unless waiting may help."""
        reason, retryable = classify(error)
        if not retryable:
            raise error
        if reason == "read_only" and isinstance(self._client, Redis) and not self._sentinel:
            # A demoted master behind a fixed name (a DNS failover): reconnect to re-resolve.
            await self._client.connection_pool.disconnect()

    def _unavailable(self, command: str, exc: BaseException, started: float,
                     attempts: int) -> RedisUnavailable:
        """The one translation point: log the detail (no address, no secret), return the
        typed error."""
        reason, _ = classify(exc)
        log.warning("session_store_unavailable", topology=self.topology, command=command,
                    reason=reason, error=type(exc).__name__, errno=errno_name(exc),
                    attempts=attempts, duration_ms=_elapsed_ms(started))
        return RedisUnavailable(reason)


def retries_within(window: float) -> int:
    """How many retries with `BACKOFF` keep trying for at least `window` seconds."""
    retries, waited = 0, 0.0
    while waited < window:
        retries += 1
        waited += BACKOFF.compute(retries)
    return retries


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _score(value: float) -> float | str:
    if value == float("inf"):
        return "+inf"
    if value == float("-inf"):
        return "-inf"
    return value


def _address(entry: str) -> tuple[str, int]:
    host, _, port = entry.rpartition(":")
    return host.strip("[]"), int(port)


def _url_options(url: str) -> dict[str, Any]:
    """redis-py's connection options from `url`: address, password, db, TLS options.

    Query options other than `db` and, with rediss://, the `ssl_*` ones are refused: the
    timeouts, pool and retry policy come from the settings, and a typo must not surface as a
    TypeError at the first call.
    """
    try:
        options: dict[str, Any] = dict(parse_url(url))
    except ValueError:
        raise _url_problem("must be redis://, rediss:// or unix://") from None
    tls = options.get("connection_class") is SSLConnection
    for name in parse_qs(urlsplit(url).query):
        if name != "db" and not (tls and name in TLS_OPTIONS):
            raise _url_problem(f"unsupported option ?{name}= (allowed: db, and with rediss:// "
                               f"{', '.join(sorted(TLS_OPTIONS))})")
    return options


def _url_problem(message: str) -> ConfigError:
    return ConfigError([ConfigProblem("session.redis_url", message)])
