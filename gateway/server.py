"""Running the gateway: listeners, signals, and a graceful shutdown.

On SIGTERM or SIGINT: `/ready` turns 503 (for `server.shutdown_delay_seconds` the listeners
still accept, so a load balancer sees it), then the listeners stop accepting, open WebSockets are
closed with 1001 (going away), in-flight requests get `server.shutdown_timeout_seconds` to
finish, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from gateway.app import create_app, create_metrics_app
from gateway.config import Settings
from gateway.health import HEALTH
from gateway.listener import gateway_runner
from gateway.observability.logging import flush_logs, get_logger
from gateway.observability.metrics import Metrics
from gateway.observability.tracing import setup_tracing
from gateway.upstream.websocket import OPEN_SOCKETS

log = get_logger(__name__)


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


async def serve(settings: Settings, *, stop: asyncio.Event | None = None,
                reuse_port: bool = False, metrics_listener: bool = True) -> None:
    """Serve until `stop` is set or a termination signal arrives.

    A worker of `gateway.workers` binds `server.listen` with `reuse_port` beside its siblings
    and opens no metrics listener (`metrics_listener=False`): its supervisor serves /metrics.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = Metrics()
    tracing = setup_tracing()
    app = create_app(settings, metrics=metrics, tracing=tracing)
    runner = gateway_runner(app, settings, metrics)
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
