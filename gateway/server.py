"""Running the gateway: listeners, signals, and a graceful shutdown.

On SIGHUP, and when a file the configuration was read from changes (polled every
`reload.POLL_SECONDS`), the configuration is read again and its live settings applied
(gateway/reload.py): an invalid one is refused and the running one keeps serving.

On SIGTERM or SIGINT: `/ready` turns 503 (for `server.shutdown_delay_seconds` the listeners
still accept, so a load balancer sees it), then the listeners stop accepting, open WebSockets are
closed with 1001 (going away), in-flight requests get `server.shutdown_timeout_seconds` to
finish, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.log import access_logger

from gateway.app import RECONFIGURE, create_app, create_metrics_app
from gateway.health import HEALTH
from gateway.listener import gateway_runner
from gateway.observability.logging import (
    count_dropped_lines,
    flush_logs,
    get_logger,
    set_log_level,
)
from gateway.observability.metrics import Metrics
from gateway.observability.tracing_setup import setup_tracing
from gateway.reload import POLL_SECONDS, Apply, Reloader
from gateway.upstream.websocket import OPEN_SOCKETS

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.config import Settings

log = get_logger(__name__)


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _process_settings(app_apply: Apply) -> Apply:
    """The reload's apply: the app's live settings, and the process's log settings."""
    def apply(settings: Settings) -> None:
        app_apply(settings)
        set_log_level(settings.log.level)
        access_logger.disabled = not settings.log.access_log

    return apply


async def serve(settings: Settings, *, stop: asyncio.Event | None = None,
                reuse_port: bool = False, metrics_listener: bool = True,
                config: Path | None = None, reload_poll_seconds: float = POLL_SECONDS) -> None:
    """Serve until `stop` is set or a termination signal arrives.

    A worker of `gateway.workers` binds `server.listen` with `reuse_port` beside its siblings
    and opens no metrics listener (`metrics_listener=False`): its supervisor serves /metrics.
    `config` is the TOML file `settings` were read from (None: the environment only); a
    reload reads it, the environment and the secret files again.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = Metrics()
    count_dropped_lines(metrics.log_lines_lost)
    tracing = setup_tracing()
    app = create_app(settings, metrics=metrics, tracing=tracing)
    access_logger.disabled = not settings.log.access_log
    reloader = Reloader(settings, _process_settings(app[RECONFIGURE]), metrics, path=config)
    loop.add_signal_handler(signal.SIGHUP, reloader.reload, "sighup")
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # a worker starts with it blocked
    watcher = asyncio.create_task(reloader.watch_files(every=reload_poll_seconds))
    runner = gateway_runner(app, settings, metrics, live_access_log=True)
    metrics_runner = web.AppRunner(create_metrics_app(metrics), access_log=None)
    await runner.setup()
    await metrics_runner.setup()
    host, port = _host_port(settings.server.listen)
    m_host, m_port = _host_port(settings.server.metrics_listen)
    await web.TCPSite(runner, host, port, backlog=1024, reuse_port=reuse_port,
                      shutdown_timeout=settings.server.shutdown_timeout_seconds).start()
    if metrics_listener:
        await web.TCPSite(metrics_runner, m_host, m_port).start()
    log.info("listening", listen=settings.server.listen, metrics=settings.server.metrics_listen,
             upstream=settings.upstream.url, issuer=settings.issuer)
    try:
        await stop.wait()
    finally:
        log.info("shutting_down", drain_seconds=settings.server.shutdown_timeout_seconds)
        watcher.cancel()
        loop.remove_signal_handler(signal.SIGHUP)
        app[HEALTH].shutting_down = True
        await asyncio.sleep(settings.server.shutdown_delay_seconds)
        await app[OPEN_SOCKETS].close_all()
        await runner.cleanup()
        await metrics_runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await asyncio.to_thread(tracing.shutdown)
        log.info("stopped")
        flush_logs()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (the `speed` extra), else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
