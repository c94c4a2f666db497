"""Graceful shutdown of a real `python -m gateway run` process on SIGTERM.

The gateway runs as a subprocess configured by GATEWAY_* variables, in front of a slow
streaming upstream served by the test, signing in at a DevIdp (needed for readiness; every
path is public so no sign-in happens).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import WSCloseCode, web

from gateway.demo.stack import free_port
from tests.conftest import gateway_env, serve
from tests.support.processes import tail, wait_for_status

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gateway.devidp import DevIdp

REPO = Path(__file__).resolve().parent.parent
CHUNKS = 8
CHUNK_DELAY = 0.25  # the stream lasts CHUNKS * CHUNK_DELAY = 2 s
CHUNK = b"x" * 1024 + b"\n"


async def slow_stream(request: web.Request) -> web.StreamResponse:
    """CHUNKS chunks of CHUNK, CHUNK_DELAY seconds apart, chunked encoding."""
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    for _ in range(CHUNKS):
        await response.write(CHUNK)
        await asyncio.sleep(CHUNK_DELAY)
    await response.write_eof()
    return response


async def ws_hold(request: web.Request) -> web.WebSocketResponse:
    """A WebSocket that stays open until the other side closes it."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for _message in ws:
        pass
    return ws


@pytest.fixture
def gateway_port() -> int:
    """A port for the gateway process to bind itself (a process cannot take a socket of the
    test's): free right now, and bound by the process at its start."""
    return free_port()


@pytest.fixture
async def slow_upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/stream", slow_stream)
    app.router.add_get("/ws", ws_hold)
    runner, url = await serve(app)
    yield url
    await runner.cleanup()


@dataclass
class GatewayProcess:
    process: asyncio.subprocess.Process
    url: str
    port: int
    log: Path

    def output(self) -> str:
        return tail(self.log)


def subprocess_env(config: dict[str, str]) -> dict[str, str]:
    """This process's environment without GATEWAY_* variables, plus `config`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return clean | config


@pytest.fixture
async def gateway_process(idp: DevIdp, slow_upstream: str, gateway_url: str,
                          gateway_port: int, tmp_path: Path) -> AsyncIterator[GatewayProcess]:
    """`python -m gateway run` with every path public, ready to serve."""
    async with running_gateway(idp, slow_upstream, gateway_url, gateway_port, tmp_path) as gw:
        yield gw


@contextlib.asynccontextmanager
async def running_gateway(idp: DevIdp, upstream: str, gateway_url: str, gateway_port: int,
                          tmp_path: Path, **extra: str) -> AsyncIterator[GatewayProcess]:
    env = gateway_env(idp, upstream, gateway_url,
                      GATEWAY_SERVER_LISTEN=f"127.0.0.1:{gateway_port}",
                      GATEWAY_SERVER_METRICS_LISTEN=f"127.0.0.1:{free_port()}",
                      GATEWAY_SERVER_SHUTDOWN_TIMEOUT_SECONDS="8",
                      GATEWAY_AUTH_PUBLIC_PATHS="/*", **extra)
    log = tmp_path / "gateway.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "run", cwd=REPO, env=subprocess_env(env),
            stdout=sink, stderr=asyncio.subprocess.STDOUT)
    running = GatewayProcess(process, gateway_url, gateway_port, log)
    try:
        await wait_for_status(f"{gateway_url}/ready", 200, process, log, within=15.0)
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def connection_refused(port: int, within: float = 2.0) -> bool:
    """True once a new TCP connection to 127.0.0.1:port is refused (polls for `within` s)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        await asyncio.sleep(0.05)
    return False


async def test_sigterm_drains_an_in_flight_stream_refuses_new_connections_and_exits_zero(
        gateway_process: GatewayProcess) -> None:
    """A streamed response begun before SIGTERM completes; new connections are refused; exit 0."""
    async with aiohttp.ClientSession() as client, \
            client.get(f"{gateway_process.url}/stream") as response:
        assert response.status == 200
        received = await response.content.readexactly(len(CHUNK))
        gateway_process.process.send_signal(signal.SIGTERM)
        assert await connection_refused(gateway_process.port), gateway_process.output()
        received += await response.content.read()
    assert received == CHUNK * CHUNKS
    code = await asyncio.wait_for(gateway_process.process.wait(), 10)
    assert code == 0, gateway_process.output()
    assert '"event": "stopped"' in gateway_process.output()


async def test_sigterm_closes_open_websockets_with_going_away(
        gateway_process: GatewayProcess) -> None:
    """An open proxied WebSocket is closed with 1001 (going away) on SIGTERM, then exit 0."""
    ws_url = gateway_process.url.replace("http://", "ws://") + "/ws"
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url) as ws:
        await ws.send_str("hello")
        gateway_process.process.send_signal(signal.SIGTERM)
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type == aiohttp.WSMsgType.CLOSE, message
        assert message.data == WSCloseCode.GOING_AWAY
    code = await asyncio.wait_for(gateway_process.process.wait(), 10)
    assert code == 0, gateway_process.output()


async def test_sigterm_with_nothing_in_flight_exits_zero_promptly(
        gateway_process: GatewayProcess) -> None:
    """An idle gateway stops without waiting out its drain timeout (8 s here), exit 0."""
    gateway_process.process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(gateway_process.process.wait(), 5)
    assert code == 0, gateway_process.output()


async def test_shutdown_delay_reports_not_ready_while_still_accepting(
        idp: DevIdp, slow_upstream: str, gateway_url: str, gateway_port: int,
        tmp_path: Path) -> None:
    """With shutdown_delay_seconds, /ready answers 503 after SIGTERM before listeners close."""
    async with running_gateway(idp, slow_upstream, gateway_url, gateway_port, tmp_path,
                               GATEWAY_SERVER_SHUTDOWN_DELAY_SECONDS="1.5") as gw:
        gw.process.send_signal(signal.SIGTERM)
        await wait_for_status(f"{gw.url}/ready", 503, gw.process, gw.log, within=1.5)
        async with aiohttp.ClientSession() as client, client.get(f"{gw.url}/ready") as resp:
            assert resp.status == 503
            assert (await resp.json())["checks"]["accepting"] is False
        assert await asyncio.wait_for(gw.process.wait(), 10) == 0, gw.output()
