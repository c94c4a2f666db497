"""The one cache type behind every per-session map (gateway/cache.py): bounded, least recently
used out first, and holding what is live rather than what expired."""

from __future__ import annotations

import pytest

from gateway.cache import BoundedCache
from tests.support.clock import ManualClock

NOW = 1000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def filled(clock: ManualClock, expiries: list[float | None], size: int = 8
           ) -> BoundedCache[str, int]:
    cache: BoundedCache[str, int] = BoundedCache(size, clock=clock)
    for number, expires_at in enumerate(expiries):
        cache.put(f"k{number}", number, expires_at=expires_at)
    return cache


class TestBounds:
    def test_the_least_recently_used_goes_first(self, clock: ManualClock) -> None:
        """At `size` entries, a new one evicts the least recently used (a read counts)."""
        cache = filled(clock, [None, None, None], size=3)
        assert cache.get("k0") == 0
        cache.put("k3", 3)
        assert (len(cache), cache.get("k1"), cache.get("k0"), cache.get("k3")) == (3, None, 0, 3)

    def test_a_cache_holds_at_least_one_entry(self) -> None:
        """A size below one is a programming error, said at once."""
        with pytest.raises(ValueError, match="at least one"):
            BoundedCache(0)


class TestExpiry:
    @pytest.mark.parametrize(("later", "value"), [
        pytest.param(9.9, 0, id="before"), pytest.param(10.0, None, id="at"),
        pytest.param(60.0, None, id="after"),
    ])
    async def test_an_entry_reads_as_absent_from_its_expiry(
            self, clock: ManualClock, later: float, value: int | None) -> None:
        """An entry with an expiry reads as absent from that instant on the cache's clock."""
        cache = filled(clock, [NOW + 10])
        await clock.advance(later)
        assert cache.get("k0") == value

    @pytest.mark.parametrize(("expiries", "left"), [
        pytest.param([NOW + 1, NOW + 2, NOW + 3], 1, id="all-expired-one-added"),
        pytest.param([NOW + 1, None, NOW + 3], 3, id="stops-at-a-lasting-entry"),
        pytest.param([NOW + 1, NOW + 99, NOW + 3], 3, id="stops-at-a-live-entry"),
        pytest.param([None, None], 3, id="nothing-expires"),
    ])
    async def test_adding_drops_the_expired_least_recently_used(
            self, clock: ManualClock, expiries: list[float | None], left: int) -> None:
        """Adding an entry removes the expired entries at the least recently used end, so
        dead entries (a refreshed session's old cookie, superseded tokens) do not pile up."""
        cache = filled(clock, expiries)
        await clock.advance(10)
        cache.put("new", 0)
        assert len(cache) == left
