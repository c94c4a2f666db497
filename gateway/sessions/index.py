"""Every user's sessions in Redis, indexed by `sub`, so one user can be listed or thrown out.

A user's index is the sorted set `cognito-gateway:user:{sha256(sub)}` (gateway/sessions/
redis_keys.py). Its members are the hashes of the user's session ids, never the ids (an id is
a bearer credential), scored by when each session ends (`expires_at`, the absolute lifetime:
refresh never moves it). Every write drops the members that have ended and gives the set the
expiry of its latest member, so an index holds only live sessions and disappears with the last
one: it is bounded by the sessions' own TTLs, with no sweeper.

On a Redis Cluster a user's index and each of their sessions sit in different slots (the
index is tagged by the sub, a session by its id), and a command may not touch two slots. So
nothing here is atomic across the two: a session is indexed *before* it is stored, and
unindexed *after* it is deleted. Whatever fails in between, a stored session is always in its
user's index; the worst left behind is a member with no session, pruned when it would have
ended.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gateway.sessions.redis_keys import session_hash, user_index_key

if TYPE_CHECKING:
    from gateway.clock import Clock
    from gateway.sessions.model import Session
    from gateway.sessions.redis_client import SessionRedis


class SessionIndex:
    """The per-user index of sessions, on the store's Redis client and clock."""

    def __init__(self, redis: SessionRedis, clock: Clock) -> None:
        self._redis = redis
        self._clock = clock

    async def add(self, session: Session) -> int:
        """Index `session` under its user (pruning ended ones); the user's live sessions."""
        return await self._redis.index_add(
            user_index_key(session.identity.sub), session_hash(session.sid),
            expires_at=session.expires_at, now=self._clock.time())

    async def remove(self, sub: str, *digests: str) -> None:
        """Take the sessions hashed `digests` out of the index of `sub`."""
        if digests:
            await self._redis.zrem(user_index_key(sub), *digests)

    async def live(self, sub: str) -> list[str]:
        """The hashes of the user's sessions that have not ended, soonest-ending first."""
        members = await self._redis.zrangebyscore(user_index_key(sub), self._clock.time(),
                                                  math.inf)
        return [member.decode("ascii") for member in members]
