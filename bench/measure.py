"""Taking one measurement: the CPU each service used while a load ran, and the rest.

A `CpuWindow` snapshots, before and after the load, the CPU time of every service's process
tree, the harness's own CPU (its waited-for children, wrk, included) and the whole machine's
busy time. What the machine did beyond all of those is "other load": work that is not part of
the benchmark and skews it when it is not close to 0.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Self

from bench.procfs import MachineLoad, cpu_seconds

if TYPE_CHECKING:
    from types import TracebackType


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class CpuWindow:
    """CPU seconds used by each named process tree between entering and leaving."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.used: dict[str, float] = {}
        self.seconds = 0.0
        self.other_load_cores = 0.0
        self.steal_cores = 0.0

    def __enter__(self) -> Self:
        self._before = cpu_seconds(self.roots.values())
        self._own = _own_cpu()
        self._machine = MachineLoad.now()
        self._started = time.monotonic()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        after = cpu_seconds(self.roots.values())
        machine = MachineLoad.now()
        self.seconds = max(time.monotonic() - self._started, 1e-9)
        self.used = {name: after[pid] - self._before[pid] for name, pid in self.roots.items()}
        ours = sum(self.used.values()) + _own_cpu() - self._own
        busy = machine.busy_cores_since(self._machine)
        self.other_load_cores = max(0.0, busy - ours / self.seconds)
        self.steal_cores = machine.steal_cores_since(self._machine)

    def cpu(self, *names: str) -> float:
        """CPU seconds the named trees used together."""
        return sum(self.used[name] for name in names)
