"""Sessions indexed by user in Redis: bounded by the sessions' TTLs, and never resurrected.

Against a real redis-server; the store's clock is a ManualClock, so "an hour later" is said,
not waited for. Each user's index is checked through an independent redis-py client.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest
from cryptography.fernet import Fernet

from gateway.config import load_settings
from gateway.errors import RefreshRejected
from gateway.identity import Identity
from gateway.sessions.cipher import Cipher
from gateway.sessions.cookies import CookiePolicy
from gateway.sessions.model import Session
from gateway.sessions.redis_client import SessionRedis
from gateway.sessions.redis_keys import SessionKeys, session_hash, user_index_key
from gateway.sessions.redis_store import RedisSessionStore
from tests.support.clock import ManualClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    import redis

    from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.redis
KEY = Fernet.generate_key().decode()
BASE_ENV = {"GATEWAY_SERVER_PUBLIC_URL": "http://127.0.0.1:1", "GATEWAY_COGNITO_CLIENT_ID": "c",
            "GATEWAY_COGNITO_ISSUER": "http://127.0.0.1:1/pool",
            "GATEWAY_SESSION_SECRET": KEY, "GATEWAY_SESSION_COOKIE_SECURE": "false"}
INDEX = user_index_key("alice-sub")


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """An independent client for checking what the store wrote."""
    with redis_server.admin() as client:
        yield client


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


@pytest.fixture
async def store(redis_server: RedisServer, clock: ManualClock
                ) -> AsyncIterator[RedisSessionStore]:
    settings = dataclasses.replace(load_settings(environ=BASE_ENV).session,
                                   redis_url=redis_server.url())
    made = RedisSessionStore(CookiePolicy("_gw", False, "lax"), Cipher([KEY], clock=clock),
                             settings, lock_seconds=5, clock=clock)
    yield made
    await made.close()


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[SessionRedis]:
    settings = dataclasses.replace(load_settings(environ=BASE_ENV).session,
                                   redis_url=redis_server.url())
    made = SessionRedis.from_settings(settings)
    yield made
    await made.aclose()


def session(sid: str, clock: ManualClock, *, sub: str = "alice-sub",
            lasts: float = 3600) -> Session:
    now = clock.time()
    return Session(sid=sid, identity=Identity(sub=sub, username=sub), created_at=now,
                   expires_at=now + lasts, tokens_expire_at=now + 300,
                   refresh_token=f"refresh-{sid}", checked_at=now)


# Each step: (seconds after the start, member, its expiry in seconds after the start).
Step = tuple[float, str, float]


@pytest.mark.parametrize(("steps", "members", "ttl"), [
    pytest.param([(0, "a", 100)], ["a"], 100, id="first-session"),
    pytest.param([(0, "a", 100), (0, "b", 300)], ["a", "b"], 300, id="a-later-end-extends"),
    pytest.param([(0, "a", 300), (0, "b", 100)], ["b", "a"], 300, id="an-earlier-end-keeps"),
    pytest.param([(0, "a", 10), (0, "b", 300), (20, "c", 50)], ["c", "b"], 280,
                 id="ended-sessions-pruned-on-write"),
    pytest.param([(0, "a", 100), (0, "a", 40)], ["a"], 40, id="a-session-rescored"),
    pytest.param([(0, "a", 10), (20, "b", 15)], [], None, id="nothing-live-no-key"),
])
async def test_each_write_prunes_ended_sessions_and_expires_the_index_with_the_last(
        client: SessionRedis, admin: redis.Redis, steps: list[Step], members: list[str],
        ttl: float | None) -> None:
    """index_add: ended members go at every write; the index lives as long as its latest."""
    start = 1_800_000_000.0
    for offset, member, ends in steps:
        await client.index_add(INDEX, member, expires_at=start + ends, now=start + offset)
    assert admin.zrange(INDEX, 0, -1) == [m.encode() for m in members]
    if ttl is None:
        assert admin.exists(INDEX) == 0
    else:
        assert ttl * 1000 - 1000 <= admin.pttl(INDEX) <= ttl * 1000  # ms since the write


async def test_a_users_sessions_are_indexed_under_their_sub_and_nothing_else(
        store: RedisSessionStore, admin: redis.Redis, clock: ManualClock) -> None:
    """Sign-ins index each session by the hash of its id under its own user; sign-out
    removes it; another user's index is untouched."""
    first, second, other = (session("s1", clock), session("s2", clock, lasts=7200),
                            session("s3", clock, sub="bob-sub"))
    for each in (first, second, other):
        await store.persist(each)
    assert [s.digest for s in await store.sessions_of("alice-sub")] == [
        session_hash("s1"), session_hash("s2")]
    assert admin.zrange(INDEX, 0, -1) == [  # hashes only: an id is a bearer credential
        session_hash("s1").encode(), session_hash("s2").encode()]
    assert 7199_000 < admin.pttl(INDEX) <= 7200_000
    await store.forget(first)
    assert admin.zrange(INDEX, 0, -1) == [session_hash("s2").encode()]
    assert [s.digest for s in await store.sessions_of("bob-sub")] == [session_hash("s3")]


async def test_ended_sessions_leave_the_index_at_the_next_write(
        store: RedisSessionStore, admin: redis.Redis, clock: ManualClock) -> None:
    """An hour later the first session has ended: it is not listed, and the next sign-in
    prunes it from Redis."""
    await store.persist(session("s1", clock, lasts=600))
    await clock.advance(3600)
    assert await store.sessions_of("alice-sub") == []
    await store.persist(session("s2", clock))
    assert admin.zrange(INDEX, 0, -1) == [session_hash("s2").encode()]


async def test_ending_a_users_sessions_deletes_each_and_empties_the_index(
        store: RedisSessionStore, admin: redis.Redis, clock: ManualClock) -> None:
    """end_sessions deletes every session key and the index; a replayed cookie finds nothing."""
    for sid in ("s1", "s2", "s3"):
        await store.persist(session(sid, clock))
    found = await store.sessions_of("alice-sub")
    assert await store.end_sessions("alice-sub", [s.digest for s in found]) == 3
    for sid in ("s1", "s2", "s3"):
        assert admin.exists(SessionKeys.for_session(sid).session) == 0
    assert admin.exists(INDEX) == 0


async def test_a_gone_session_is_skipped_and_an_unreadable_one_is_still_listed(
        store: RedisSessionStore, admin: redis.Redis, clock: ManualClock) -> None:
    """A member whose session key is gone is not listed, yet stays indexed (it may be a
    sign-in about to store it) until pruned; a session no key decrypts is listed without
    details, so revoke still ends it."""
    await store.persist(session("gone", clock))
    await store.persist(session("old-key", clock))
    admin.delete(SessionKeys.for_session("gone").session)
    admin.set(SessionKeys.for_session("old-key").session,
              Cipher([Fernet.generate_key().decode()]).seal({"sid": "old-key"}), keepttl=True)
    (listed,) = await store.sessions_of("alice-sub")
    assert (listed.digest, listed.session) == (session_hash("old-key"), None)
    assert admin.zscore(INDEX, session_hash("gone")) is not None


async def test_a_refresh_that_ends_after_a_revoke_does_not_bring_the_session_back(
        store: RedisSessionStore, admin: redis.Redis, clock: ManualClock) -> None:
    """The session is revoked while its refresh is in flight: the refreshed tokens are not
    saved (SET XX) and the refresh counts as rejected, so the user signs in again."""
    current = session("s1", clock)
    await store.persist(current)

    async def refresher(old: Session) -> Session:
        digests = [s.digest for s in await store.sessions_of("alice-sub")]
        assert await store.end_sessions("alice-sub", digests) == 1
        return old.with_tokens(tokens_expire_at=old.tokens_expire_at + 3600,
                               checked_at=clock.time())

    with pytest.raises(RefreshRejected):
        await store.coordinate(refresher)(current)
    assert admin.exists(SessionKeys.for_session("s1").session) == 0
    assert admin.exists(INDEX) == 0
