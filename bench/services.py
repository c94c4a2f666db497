"""Starting and stopping the servers under test as real subprocesses.

Each service runs in its own session (so its pid is also its process-group id and stopping it
reaches every worker it forked), with its output in a log file under the run directory, and
optionally pinned to CPUs with ``taskset`` from util-linux (which execs the command, so the pid
stays the service's). Readiness is awaited by polling a URL with a deadline that fails loudly,
with the end of the service's log in the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

STOP_GRACE_SECONDS = 5.0


class ServiceError(RuntimeError):
    """A service did not start, or stopped answering."""


def cpu_list(cpus: set[int]) -> str:
    """`{0, 1}` as taskset's "0,1"."""
    return ",".join(str(c) for c in sorted(cpus))


@dataclass
class Service:
    """One running server: its name, process and log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    cpus: set[int] | None = None
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the service's output, for error messages."""
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def check_running(self) -> None:
        """Raise ServiceError with the log's end if the service has exited."""
        if self.process.poll() is not None:
            raise ServiceError(f"{self.name} exited with status {self.process.returncode}; "
                               f"end of {self.log}:\n{self.log_tail()}")

    async def wait_until_answers(self, url: str, *, status: int = 200,
                                 within: float = 30.0) -> None:
        """Poll `url` until it answers `status`; fail loudly on exit or after `within` s."""
        deadline = time.monotonic() + within
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            while time.monotonic() < deadline:
                self.check_running()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with client.get(url, allow_redirects=False) as response:
                        if response.status == status:
                            return
                await asyncio.sleep(0.05)
        raise ServiceError(f"{self.name} did not answer {status} at {url} within {within:g} s; "
                           f"end of {self.log}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the service's process group, SIGKILL it after a grace period."""
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(STOP_GRACE_SECONDS)
        # Workers left behind by a leader that exited first are in the same group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)


class Services:
    """The services of one run, stopped together (in reverse start order) by `stop_all`."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Service] = []

    def start(self, name: str, argv: Sequence[str], *, cpus: set[int] | None,
              env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Service:
        """Start `argv` in its own session, pinned to `cpus` (None: inherit the affinity)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        command = list(argv)
        if cpus is not None:
            command = ["taskset", "-c", cpu_list(cpus), *command]
        # Append mode, so that the log may be truncated while the service keeps writing.
        with log.open("ab") as out:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True)
        service = Service(name, process, log, cpus)
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        """Stop every service started, the last one first."""
        for service in reversed(self.started):
            service.stop()
        self.started.clear()
