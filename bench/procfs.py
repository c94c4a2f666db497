"""What /proc says about a process tree: CPU time, resident memory, CPU affinity.

A server under test is a process tree (nginx's master and worker, the gateway and any workers
it forks), so every figure here is taken over the root and all its live descendants. CPU time
is the nanosecond run time of every thread (``/proc/PID/task/TID/schedstat``), plus the
user and system time of children that already exited and were reaped (``cutime``/``cstime``,
in clock ticks), so a worker that dies between two snapshots still counts. Where schedstat is
missing, the process's own ``utime``/``stime`` ticks (10 ms steps) stand in.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class _Stat:
    ppid: int
    own_ticks: int  # utime + stime
    reaped_ticks: int  # cutime + cstime


def _read_stat(pid: int) -> _Stat | None:
    try:
        data = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ")".
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is the state; then ppid (1) ... utime (11), stime (12), cutime (13), cstime (14)
    return _Stat(int(fields[1]), int(fields[11]) + int(fields[12]),
                 int(fields[13]) + int(fields[14]))


def _run_seconds(pid: int, stat: _Stat) -> float:
    """CPU seconds of the process: its threads' run time, its reaped children's time."""
    reaped = stat.reaped_ticks / TICKS_PER_SECOND
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
        nanoseconds = 0
        for task in tasks:
            with contextlib.suppress(FileNotFoundError):  # a thread that just ended
                nanoseconds += int((task / "schedstat").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return stat.own_ticks / TICKS_PER_SECOND + reaped
    return nanoseconds / 1e9 + reaped


def _all_stats() -> dict[int, _Stat]:
    stats: dict[int, _Stat] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _read_stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    return stats


def tree_pids(root: int, stats: dict[int, _Stat] | None = None) -> list[int]:
    """The root and every live descendant of it (empty when the root is gone)."""
    stats = _all_stats() if stats is None else stats
    if root not in stats:
        return []
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.ppid, []).append(pid)
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def cpu_seconds(roots: Iterable[int]) -> dict[int, float]:
    """CPU seconds (reaped children included) of each root's tree, by root."""
    stats = _all_stats()
    return {root: sum(_run_seconds(pid, stats[pid]) for pid in tree_pids(root, stats))
            for root in roots}


def _status_kib(pid: int, field: str) -> int:
    try:
        text = (PROC / str(pid) / "status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_mib(root: int) -> float:
    """Resident memory (VmRSS) of the tree, MiB: shared pages count once per process."""
    return sum(_status_kib(pid, "VmRSS") for pid in tree_pids(root)) / 1024


def peak_rss_mib(root: int) -> float:
    """Peak resident memory (VmHWM) summed over the tree, MiB, since the last reset."""
    return sum(_status_kib(pid, "VmHWM") for pid in tree_pids(root)) / 1024


def reset_peak_rss(root: int) -> bool:
    """Reset VmHWM of every process of the tree to its current RSS; False if not permitted.

    Writing 5 to /proc/PID/clear_refs (Linux >= 4.0) does it; it needs the right to ptrace the
    process, which the user who started it has.
    """
    done = True
    for pid in tree_pids(root):
        try:
            (PROC / str(pid) / "clear_refs").write_text("5", encoding="ascii")
        except OSError:
            done = False
    return done


def set_tree_affinity(root: int, cpus: set[int]) -> None:
    """Allow every thread of every process of the tree to run on `cpus` only."""
    for pid in tree_pids(root):
        with contextlib.suppress(OSError):
            for task in (PROC / str(pid) / "task").iterdir():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task.name), cpus)


@dataclass(frozen=True)
class MachineLoad:
    """Busy and total CPU ticks of the whole machine (steal left out of busy), from /proc/stat."""

    busy: int
    total: int
    steal: int

    @classmethod
    def now(cls) -> MachineLoad:
        with (PROC / "stat").open(encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]
        steal = values[7] if len(values) > 7 else 0
        total = sum(values[:8])
        return cls(total - idle - steal, total, steal)

    def busy_cores_since(self, earlier: MachineLoad) -> float:
        """How many CPU cores were busy on average between `earlier` and this snapshot."""
        total = max(self.total - earlier.total, 1)
        return (self.busy - earlier.busy) / total * (os.cpu_count() or 1)

    def steal_cores_since(self, earlier: MachineLoad) -> float:
        """How many cores the hypervisor took away on average between the two snapshots."""
        total = max(self.total - earlier.total, 1)
        return (self.steal - earlier.steal) / total * (os.cpu_count() or 1)
