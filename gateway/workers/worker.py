"""One worker under the supervisor: the ordinary server, sharing its port, watching a lifeline.

The worker serves exactly as `cognito-gateway run` does alone (same app, same graceful shutdown
on SIGTERM, same reloads on SIGHUP, which the supervisor forwards, or on a changed file), except
that it binds `server.listen` with SO_REUSEPORT, opens no metrics listener (the supervisor
serves the sum), and stops by itself, gracefully, when the lifeline pipe from the supervisor
reaches end of file: the supervisor is gone, even if it was killed with SIGKILL, and a worker
must not outlive it.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

import structlog

from gateway.observability.logging import get_logger
from gateway.server import new_event_loop, serve

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.config import Settings

log = get_logger("gateway.workers")


def run_worker(settings: Settings, lifeline_fd: int, config: Path | None = None) -> int:
    """Serve as a worker until SIGTERM, SIGINT or the supervisor's end; the exit status.

    Every structlog line of the worker carries its `pid` (access lines do not, for speed).
    """
    structlog.contextvars.bind_contextvars(pid=os.getpid())
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve_while_supervised(settings, lifeline_fd, config))
    return 0


async def _serve_while_supervised(settings: Settings, lifeline_fd: int,
                                  config: Path | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    os.set_blocking(lifeline_fd, False)

    def lifeline_readable() -> None:
        try:
            data = os.read(lifeline_fd, 64)
        except BlockingIOError:
            return
        if not data:
            loop.remove_reader(lifeline_fd)
            log.warning("supervisor_gone")
            stop.set()

    loop.add_reader(lifeline_fd, lifeline_readable)
    try:
        await serve(settings, stop=stop, reuse_port=True, metrics_listener=False, config=config)
    finally:
        loop.remove_reader(lifeline_fd)
        os.close(lifeline_fd)
