"""The supervisor of `cognito-gateway run --workers N`: it serves no requests itself.

It starts N workers, each `python -m gateway run` again (a fresh interpreter that reads the same
config file and environment) with a hidden `--lifeline-fd`, binding `server.listen` with
SO_REUSEPORT so that the kernel spreads connections over them. It serves `/metrics` on
`server.metrics_listen` as the sum over workers (`gateway.workers.metrics`).

- A worker that exits is restarted (`worker_exited`, then `worker_started` with the new pid),
  after the delay `RestartBackoff` gives (0 after a stable run; 1 s doubling to 30 s in a crash
  loop).
- SIGTERM or SIGINT: SIGTERM goes to every worker (each reports not ready for
  `server.shutdown_delay_seconds`, then drains within `server.shutdown_timeout_seconds`); a
  worker still running `STOP_MARGIN_SECONDS` after both is killed with SIGKILL
  (`workers_killed`). Exit 0.
- SIGHUP is forwarded to every worker. A worker still starting gets it once it can reload
  (it starts with SIGHUP blocked), so a reload never kills a worker.
- Every worker holds the read end of a pipe whose write end only the supervisor has: when the
  supervisor dies, even by SIGKILL, the kernel closes it and each worker shuts down by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.observability.logging import flush_logs, get_logger
from gateway.workers.backoff import RestartBackoff
from gateway.workers.metrics import WorkerMetrics, create_workers_metrics_app

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from gateway.config import Settings

log = get_logger("gateway.workers")
STOP_MARGIN_SECONDS = 5.0
LIFELINE_FLAG = "--lifeline-fd"


def worker_command(config: Path | None) -> list[str]:
    """How a worker is started: this interpreter, `-m gateway run`, the same config file."""
    command = [sys.executable, "-m", "gateway", "run"]
    return command + (["--config", str(config)] if config is not None else [])


def run_supervisor(settings: Settings, workers: int, config: Path | None) -> int:
    """Supervise `workers` workers until SIGTERM or SIGINT; the exit status."""
    with asyncio.Runner() as runner:
        return runner.run(Supervisor(settings, workers, worker_command(config)).run())


class Supervisor:
    """Keeps `count` workers running, serves their summed metrics, and stops them together."""

    def __init__(self, settings: Settings, count: int, command: Sequence[str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.count = count
        self.command = list(command)
        self.clock = clock
        self.metrics = WorkerMetrics.create()
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.failed = False
        self._lifeline = -1
        self._spawning = asyncio.Lock()

    @property
    def stop_within(self) -> float:
        """How long workers get to stop before they are killed."""
        server = self.settings.server
        return (server.shutdown_delay_seconds + server.shutdown_timeout_seconds
                + STOP_MARGIN_SECONDS)

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT; 0 when stopped, 1 when supervising itself failed."""
        loop = asyncio.get_running_loop()
        self._lifeline, lifeline_held = os.pipe()  # workers inherit the read end only
        metrics_runner = web.AppRunner(create_workers_metrics_app(self.metrics), access_log=None)
        try:
            await metrics_runner.setup()
            host, _, port = self.settings.server.metrics_listen.rpartition(":")
            await web.TCPSite(metrics_runner, host.strip("[]"), int(port)).start()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
            loop.add_signal_handler(signal.SIGHUP, self.forward, signal.SIGHUP)
            log.info("supervisor_started", workers=self.count,
                     listen=self.settings.server.listen,
                     metrics=self.settings.server.metrics_listen)
            slots = [asyncio.create_task(self._keep_running(i)) for i in range(self.count)]
            await self.stopping.wait()
            await self._stop(slots)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            os.close(lifeline_held)
            os.close(self._lifeline)
            await metrics_runner.cleanup()
            self.metrics.remove()
        log.info("supervisor_stopped")
        flush_logs()
        return 1 if self.failed else 0

    def forward(self, sig: signal.Signals) -> None:
        """Send `sig` to every running worker."""
        log.info("signal_forwarded", signal=sig.name, pids=sorted(
            p.pid for p in self.processes.values()))
        for process in list(self.processes.values()):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)

    async def _stop(self, slots: list[asyncio.Task[None]]) -> None:
        log.info("supervisor_stopping", within_seconds=self.stop_within)
        self.forward(signal.SIGTERM)
        _done, pending = await asyncio.wait(slots, timeout=self.stop_within)
        if pending:
            log.warning("workers_killed", pids=sorted(p.pid for p in self.processes.values()),
                        after_seconds=self.stop_within)
            self.forward(signal.SIGKILL)
            await asyncio.wait(pending, timeout=STOP_MARGIN_SECONDS)

    async def _keep_running(self, slot: int) -> None:
        """Run the worker of `slot`, restarting it whenever it exits, until stopping."""
        backoff = RestartBackoff()
        try:
            while not self.stopping.is_set():
                started = self.clock()
                event, fields = await self._run_once(slot)
                uptime = self.clock() - started
                fields["uptime_seconds"] = round(uptime, 3)
                if self.stopping.is_set():
                    log.info(event, worker=slot, **fields)
                    return
                delay = backoff.delay_after(uptime)
                log.warning(event, worker=slot, restart_delay_seconds=delay, **fields)
                if delay:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), delay)
        except Exception:
            log.exception("supervisor_failed", worker=slot)
            self.failed = True
            self.stopping.set()

    async def _run_once(self, slot: int) -> tuple[str, dict[str, float | str]]:
        """Start the worker of `slot` and wait until it exits; the log event saying how."""
        # The worker starts with SIGHUP blocked (the mask survives exec) and unblocks it once it
        # can reload: a SIGHUP forwarded while it starts waits for it instead of killing it.
        # One spawn at a time, so that no spawn restores a mask another one set.
        async with self._spawning:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.command, LIFELINE_FLAG, str(self._lifeline),
                    pass_fds=(self._lifeline,), stdin=subprocess.DEVNULL,
                    env=os.environ | self.metrics.worker_env())
            except OSError as exc:
                return "worker_start_failed", {"error": str(exc)}
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        self.processes[slot] = process
        log.info("worker_started", worker=slot, pid=process.pid)
        if self.stopping.is_set():
            process.send_signal(signal.SIGTERM)
        code = await process.wait()
        del self.processes[slot]
        try:
            self.metrics.retire(process.pid)
        except OSError as exc:  # its files stay and are still counted, only not folded
            log.error("worker_metrics_not_folded", worker=slot, pid=process.pid, error=str(exc))
        return "worker_exited", {"pid": process.pid, **_exit_status(code)}


def _exit_status(code: int) -> dict[str, int | str]:
    """`exit_code`, or `signal` (its name) for a worker a signal ended."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return {"signal": signal.Signals(-code).name}
    return {"exit_code": code}
