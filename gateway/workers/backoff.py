"""How long the supervisor waits before restarting a worker that exited.

A worker that ran for `stable_after` seconds or more is restarted at once: it crashed after
serving, and the capacity should come back. One that exits sooner is in a crash loop (a bad
mounted file, a port taken by another program, ...): its restarts wait `first` seconds, then
twice as long after each further quick exit, up to `longest`, so it never spins the CPU. A stable
run resets the wait.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RestartBackoff:
    """The restart delay of one worker slot, from the uptime of each run that ended."""

    first: float = 1.0
    longest: float = 30.0
    stable_after: float = 10.0
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._next = self.first

    def delay_after(self, uptime: float) -> float:
        """Seconds to wait before restarting a worker that exited after `uptime` seconds."""
        if uptime >= self.stable_after:
            self._next = self.first
            return 0.0
        delay, self._next = self._next, min(self._next * 2, self.longest)
        return delay
