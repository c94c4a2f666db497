"""Child processes of a soak: start, await readiness, kill, restart, and measure them.

Each child runs in its own session, so its pid is also its process group and stopping it
reaches every worker it forked. Output goes to a log file in the run directory. Readiness is
awaited by polling a URL with a deadline that fails loudly with the end of the log. Resident
memory is read from /proc over the child and all its live descendants.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

STOP_GRACE_SECONDS = 8.0
PROC = Path("/proc")


class SoakError(RuntimeError):
    """The soak could not run (a process did not start, sign-in failed, bad options)."""


def _parent_pids() -> dict[int, int]:
    """Every live process's parent, by pid."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ")".
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return parents


def tree_pids(root: int) -> list[int]:
    """The root and every live descendant, root first (empty when the root is gone)."""
    parents = _parent_pids()
    if root not in parents:
        return []
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory (VmRSS) of one process in bytes; 0 once it is gone."""
    try:
        status = (PROC / str(pid) / "status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Child:
    """One server process of the soak, restartable with the same command and log."""

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path,
                 log: Path, quiet_stdout: bool = False) -> None:
        self.name = name
        self._argv = list(argv)
        self._env = dict(env)
        self._cwd = cwd
        self.log = log
        self._quiet_stdout = quiet_stdout
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise SoakError(f"{self.name} was never started")
        return self._process.pid

    @property
    def exit_status(self) -> int | None:
        """The status the process exited with; None while it runs (or before it started)."""
        return None if self._process is None else self._process.returncode

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start the process (again), appending to its log.

        `quiet_stdout` discards stdout (the dev IdP prints its passwords there); stderr, where
        errors go, is always kept.
        """
        with self.log.open("ab") as sink:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv, cwd=self._cwd, env=self._env, start_new_session=True,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL if self._quiet_stdout else sink,
                stderr=sink)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process's output, for error messages."""
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def check_running(self) -> None:
        """Raise SoakError with the end of the log when the process has exited."""
        if self._process is not None and self._process.returncode is not None:
            raise SoakError(f"{self.name} exited with status {self._process.returncode}; "
                            f"end of its log ({self.log.name}):\n{self.log_tail()}")

    async def wait_until_answers(self, url: str, *, status: int = 200,
                                 within: float = 30.0) -> None:
        """Poll `url` until it answers `status`; SoakError on exit or after `within` seconds."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as client:
            while time.monotonic() < deadline:
                self.check_running()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with client.get(url) as response:
                        if response.status == status:
                            return
                await asyncio.sleep(0.05)
        raise SoakError(f"{self.name} did not answer {status} at {url} within {within:g} s; "
                        f"end of its log ({self.log.name}):\n{self.log_tail()}")

    def rss(self) -> int:
        """Resident memory of the process and all its descendants, in bytes."""
        if not self.running:
            return 0
        return sum(rss_bytes(pid) for pid in tree_pids(self.pid))

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the process itself (not its group)."""
        if self.running:
            os.kill(self.pid, sig)

    def descendants(self) -> list[int]:
        """Live processes forked by this one (its workers), not the process itself."""
        return tree_pids(self.pid)[1:] if self.running else []

    async def kill(self) -> None:
        """SIGKILL the whole process group at once and reap the process."""
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        await self._process.wait()

    async def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL the group after STOP_GRACE_SECONDS."""
        if self._process is None:
            return
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), STOP_GRACE_SECONDS)
        # Workers of a supervisor that died first would otherwise outlive it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        if self._process.returncode is None:
            await self._process.wait()
