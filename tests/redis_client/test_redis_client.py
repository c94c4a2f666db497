"""SessionRedis: the same operations, with the same results, on standalone, Sentinel and Cluster.

Each test runs once per topology (the `topology` fixture) and checks what it wrote through an
independent redis-py client, not through the client under test.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING
from uuid import uuid4

import pytest

from gateway.sessions.redis_keys import SessionKeys, session_hash, user_index_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.sessions.redis_client import SessionRedis
    from tests.redis_client.conftest import MakeClient, Topology

pytestmark = pytest.mark.redis


@pytest.fixture
def client(topology: Topology, make_client: MakeClient) -> SessionRedis:
    return make_client(topology.settings)


def fresh_keys() -> SessionKeys:
    return SessionKeys.for_session(f"sid-{uuid4()}")


async def test_a_value_is_stored_with_its_expiry_and_deleted(
        topology: Topology, client: SessionRedis) -> None:
    """set() stores bytes with a millisecond expiry; get() returns them; delete() ends them."""
    keys = fresh_keys()
    await client.set(keys.session, b"sealed-session", ttl_seconds=60)
    assert await client.get(keys.session) == b"sealed-session"
    with topology.inspector() as check:
        assert 58_000 < check.pttl(keys.session) <= 60_000
    assert await client.delete(keys.session) == 1
    assert await client.get(keys.session) is None
    assert await client.delete(keys.session) == 0


async def test_a_session_and_its_lock_are_deleted_in_one_call(client: SessionRedis) -> None:
    """Keys of one session share a slot, so one DEL removes both, on a Cluster too."""
    keys = fresh_keys()
    await client.set(keys.session, b"s", ttl_seconds=60)
    assert await client.acquire_lock(keys.lock, "owner", ttl_seconds=5)
    assert await client.delete(keys.session, keys.lock) == 2
    assert await client.get(keys.session) is None
    assert await client.get(keys.lock) is None


@pytest.mark.parametrize(("second", "taken"), [
    pytest.param("second", False, id="other-token-refused"),
    pytest.param("first", True, id="same-token-succeeds-again"),
])
async def test_a_held_lock_is_taken_again_only_by_its_token(
        topology: Topology, client: SessionRedis, second: str, taken: bool) -> None:
    """SET NX PX: another token is refused while the lock is held; the holding token (a retry
    after a lost reply) succeeds without changing the expiry or the holder."""
    keys = fresh_keys()
    assert await client.acquire_lock(keys.lock, "first", ttl_seconds=5) is True
    assert await client.acquire_lock(keys.lock, second, ttl_seconds=50) is taken
    assert await client.get(keys.lock) == b"first"
    with topology.inspector() as check:
        assert 4_000 < check.pttl(keys.lock) <= 5_000


@pytest.mark.parametrize(("caller", "released"), [
    pytest.param("owner", True, id="owner-releases"),
    pytest.param("someone-else", False, id="other-token-cannot-release"),
])
async def test_only_the_owner_releases_a_lock(client: SessionRedis, caller: str,
                                              released: bool) -> None:
    """The compare-and-delete script deletes the lock only for the token that holds it."""
    keys = fresh_keys()
    assert await client.acquire_lock(keys.lock, "owner", ttl_seconds=5)
    assert await client.release_lock(keys.lock, caller) is released
    assert (await client.get(keys.lock) is None) is released


@pytest.mark.parametrize(("caller", "extended"), [
    pytest.param("owner", True, id="owner-extends"),
    pytest.param("someone-else", False, id="other-token-cannot-extend"),
])
async def test_only_the_owner_extends_a_lock(topology: Topology, client: SessionRedis,
                                             caller: str, extended: bool) -> None:
    """The compare-and-extend script sets a new expiry only for the token that holds it."""
    keys = fresh_keys()
    assert await client.acquire_lock(keys.lock, "owner", ttl_seconds=5)
    assert await client.extend_lock(keys.lock, caller, ttl_seconds=50) is extended
    with topology.inspector() as check:
        ttl = check.pttl(keys.lock)
    assert (ttl > 5_000) is extended
    assert await client.get(keys.lock) == b"owner"


async def test_a_released_or_expired_lock_cannot_be_extended(client: SessionRedis) -> None:
    """After release, neither release nor extend by the old owner does anything."""
    keys = fresh_keys()
    assert await client.acquire_lock(keys.lock, "owner", ttl_seconds=5)
    assert await client.release_lock(keys.lock, "owner")
    assert await client.release_lock(keys.lock, "owner") is False
    assert await client.extend_lock(keys.lock, "owner", ttl_seconds=5) is False


async def test_a_user_index_lists_prunes_and_expires(topology: Topology,
                                                     client: SessionRedis) -> None:
    """ZADD / ZRANGEBYSCORE / ZREMRANGEBYSCORE / ZREM / PEXPIRE on one sorted set."""
    index = user_index_key(f"sub-{uuid4()}")
    members = {session_hash(f"sid-{n}"): float(n) for n in range(1, 6)}
    assert await client.zadd(index, members) == 5
    assert await client.zadd(index, {session_hash("sid-1"): 10.0}) == 0  # re-scored
    assert await client.zrangebyscore(index, 4, math.inf) == [
        session_hash(f"sid-{n}").encode() for n in (4, 5, 1)]
    assert await client.zremrangebyscore(index, -math.inf, 2) == 1
    assert await client.zrem(index, session_hash("sid-3"), "absent") == 1
    assert await client.zrangebyscore(index, -math.inf, math.inf) == [
        session_hash(f"sid-{n}").encode() for n in (4, 5, 1)]
    assert await client.expire(index, 30) is True
    with topology.inspector() as check:
        assert 28_000 < check.pttl(index) <= 30_000
    assert await client.expire(user_index_key("nobody"), 30) is False


async def test_a_burst_opens_no_more_connections_than_the_pool_on_any_node(
        topology: Topology, make_client: MakeClient) -> None:
    """Sixty concurrent calls on a pool of two: all succeed, and no data node sees more than
    two new connections from the client (on a Cluster, per node, plus the one redis-py keeps
    for topology discovery)."""
    nodes = topology.data_nodes()
    newest = {}
    for node in nodes:
        with node.admin() as admin:
            newest[node.port] = admin.client_id()
    client = make_client(topology.with_settings(redis_max_connections=2))
    keys = [SessionKeys.for_session(f"burst-{n}").session for n in range(60)]
    assert await asyncio.gather(*(client.get(key) for key in keys)) == [None] * 60
    opened = {}
    for node in nodes:
        with node.admin() as admin:
            opened[node.port] = sum(
                1 for c in admin.client_list()
                if c.get("name") == "cognito-gateway" and int(c["id"]) > newest[node.port])
    bound = 2 + (topology.name == "cluster")
    assert all(1 <= count <= bound for count in opened.values()), opened


async def test_ping_answers_true(client: SessionRedis) -> None:
    """ping() is True while Redis answers."""
    assert await client.ping() is True


@pytest.mark.parametrize("topology", ["cluster"], indirect=True)
async def test_sessions_spread_over_the_cluster_each_within_one_slot(
        topology: Topology) -> None:
    """The cluster itself puts a session and its lock in one slot, and different sessions on
    different slots (and so on every node)."""
    assert topology.key_slot is not None
    slots = set()
    for n in range(30):
        keys = SessionKeys.for_session(f"sid-{n}")
        slot = topology.key_slot(keys.session)
        assert topology.key_slot(keys.lock) == slot
        slots.add(slot)
    assert len(slots) == 30
    with topology.inspector() as check:
        owners = {check.get_node_from_key(SessionKeys.for_session(f"sid-{n}").session).name
                  for n in range(30)}
    assert len(owners) == 3


@pytest.mark.parametrize(("value", "key"), [
    pytest.param("0b0a6c7e-1111-4222-8333-944455556666", user_index_key, id="sub"),
    pytest.param("a-session-id-that-is-a-credential", lambda v: SessionKeys.for_session(v).session,
                 id="session"),
    pytest.param("a-session-id-that-is-a-credential", lambda v: SessionKeys.for_session(v).lock,
                 id="lock"),
])
def test_key_names_never_carry_the_id_in_clear(value: str, key: Callable[[str], str]) -> None:
    """Keys hold a SHA-256 hash tag of the sid or sub, never the value itself."""
    name = key(value)
    assert value not in name
    assert name.startswith("cognito-gateway:")
    tag = name[name.index("{") + 1:name.index("}")]
    assert tag == session_hash(value)
