"""Time, for the core path: injectable, so a test says "five minutes later" instead of sleeping.

Every decision that depends on the time (token and session expiry, refresh due, re-checks,
cache lifetimes, backoff, WebSocket deadlines) reads `Clock.time()` and waits with
`Clock.sleep()`. The gateway runs on `SYSTEM_CLOCK`; tests pass a clock they move by hand
(tests/support/clock.py). Durations measured for metrics use `time.perf_counter` directly:
they describe the machine, not the protocol.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock seconds since the epoch, and a way to wait for some of them to pass."""

    def time(self) -> float:
        """Seconds since the epoch (comparable with a token's `exp`)."""

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
