"""The gateway's one cache type: a bounded map with least-recently-used eviction and expiry.

Every per-user or per-token map in the gateway is a `BoundedCache`, so none can grow without
bound however many users, tokens or cookies arrive: at `size` entries, adding one evicts the
least recently used. An entry may also carry an absolute expiry (on the cache's clock), after
which it reads as absent; adding an entry also removes the least recently used entries that
have expired, so a cache whose entries expire (a session's cookie after a refresh, the headers
of superseded tokens) holds what is live rather than filling up to `size` with the dead.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from gateway.clock import SYSTEM_CLOCK, Clock

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """At most `size` entries; `get` refreshes recency; expired entries read as absent."""

    __slots__ = ("_clock", "_entries", "size")

    def __init__(self, size: int, *, clock: Clock = SYSTEM_CLOCK) -> None:
        if size < 1:
            raise ValueError("a cache holds at least one entry")
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[K, tuple[V, float | None]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value stored under `key`, or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and self._clock.time() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, *, expires_at: float | None = None) -> None:
        """Store `value` (until `expires_at`, when given), evicting the oldest beyond `size`
        and the expired among the least recently used."""
        entries = self._entries
        entries[key] = (value, expires_at)
        entries.move_to_end(key)
        while len(entries) > self.size:
            entries.popitem(last=False)
        now = self._clock.time()
        while entries:
            oldest = entries[next(iter(entries))][1]
            if oldest is None or oldest > now:
                break
            entries.popitem(last=False)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
