"""A clock that moves only when the test says so: "five minutes later" without sleeping.

The gateway and the dev IdP read their time from it (create_app(clock=...), DevIdp(now=...)).
Network I/O still happens in real time; only time-based decisions (expiry, refresh due,
backoff, retry pauses, WebSocket deadlines) follow this clock. `advance` moves it and wakes
every sleeper that is due; `run` drives an operation that sleeps on the clock (a refresh
retrying after a pause, say) by advancing in steps while it is pending.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable

T = TypeVar("T")


class ManualClock:
    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), waiter))
        await waiter

    async def advance(self, seconds: float) -> None:
        """Move the clock forward and let every task whose sleep ended run."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)
        for _ in range(5):  # woken tasks run, and may sleep again or finish
            await asyncio.sleep(0)

    async def run(self, operation: Awaitable[T], *, step: float = 0.25,
                  within: float = 30.0) -> T:
        """Await `operation`, advancing the clock by `step` whenever it waits a moment
        (real time) without finishing; fail if it takes more than `within` on the clock."""
        task = asyncio.ensure_future(operation)
        started = self._now
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=0.02)
            if not done:
                if self._now - started > within:
                    task.cancel()
                    raise AssertionError(f"still running after {within} s on the clock")
                await self.advance(step)
        return task.result()
