"""The log destination failing: the gateway process writes its log to /dev/full, where every
write fails with ENOSPC, exactly as on a full disk (no mount needed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pytest

from gateway.demo.stack import free_port
from tests.conftest import Secrets, sign_in_cookies
from tests.faults.conftest import gateway_settings_env
from tests.support.processes import tail, wait_for_status

if TYPE_CHECKING:
    import aiohttp

    from gateway.devidp import DevIdp

FULL = Path("/dev/full")
EXIT_WITHIN = 15.0
TRAFFIC = 30  # requests of other users during a sign-in
RETRIED_WITHIN = 5.0  # the first retry comes 0.5 s after the failure


@dataclass
class GatewayProcess:
    url: str
    metrics_url: str
    process: asyncio.subprocess.Process
    stderr: Path


@contextlib.contextmanager
def _full_disk_outputs(stderr: Path) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """/dev/full for stdout (the log) and a file for stderr."""
    if not FULL.exists():
        pytest.fail("/dev/full is missing: the disk-full fault needs it")
    with FULL.open("wb") as stdout, stderr.open("wb") as err:
        yield stdout, err


Launch = Callable[[], Awaitable[GatewayProcess]]



@pytest.fixture
def gateway_port() -> int:
    """A port for the gateway process to bind itself: free right now."""
    return free_port()

@pytest.fixture
async def launch_on_a_full_disk(idp: DevIdp, upstream: str, gateway_port: int, tmp_path: Path,
                                secrets: Secrets) -> AsyncIterator[Launch]:
    """Start `cognito-gateway run` with stdout on /dev/full and stderr kept in a file (without
    waiting for it); it is killed at the end if it still runs."""
    processes: list[asyncio.subprocess.Process] = []

    async def launch() -> GatewayProcess:
        port, metrics_port = gateway_port, free_port()
        url = f"http://127.0.0.1:{port}"
        env = gateway_settings_env(
            issuer=idp.issuer, domain=idp.base_url, upstream=upstream, public_url=url,
            GATEWAY_SERVER_LISTEN=f"127.0.0.1:{port}",
            GATEWAY_SERVER_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
            GATEWAY_AUTH_PUBLIC_PATHS="/public/*")
        secrets.add(env["GATEWAY_SESSION_SECRET"])
        executable = Path(sys.executable).with_name("cognito-gateway")
        stderr = tmp_path / "stderr.log"
        with _full_disk_outputs(stderr) as (stdout, err):
            process = await asyncio.create_subprocess_exec(
                str(executable), "run", stdout=stdout, stderr=err,
                stdin=asyncio.subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1", **env})
        processes.append(process)
        return GatewayProcess(url, f"http://127.0.0.1:{metrics_port}/metrics", process, stderr)

    yield launch
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_full_log_disk_never_stops_the_gateway_serving(
        launch_on_a_full_disk: Launch, http: aiohttp.ClientSession) -> None:
    """Every log write fails (ENOSPC): requests are still answered 200, counted in /metrics,
    stderr says so at most once without a traceback, and SIGTERM still exits 0."""
    gateway = await launch_on_a_full_disk()
    await wait_for_status(f"{gateway.url}/ready", 200, gateway.process, gateway.stderr)

    async def traffic() -> list[int]:
        """Other users meanwhile: their access lines are waiting to be written."""
        statuses = []
        for _ in range(TRAFFIC):
            async with http.get(f"{gateway.url}/public/page") as resp:
                statuses.append(resp.status)
            await asyncio.sleep(0.01)
        return statuses

    statuses, cookie = await asyncio.gather(traffic(), sign_in_cookies(gateway.url))
    assert statuses == [200] * TRAFFIC, tail(gateway.stderr)
    async with http.get(f"{gateway.url}/private", headers={"Cookie": cookie}) as resp:
        assert resp.status == 200, tail(gateway.stderr)
    async with http.get(gateway.metrics_url) as resp:
        metrics = await resp.text()
    served = [line for line in metrics.splitlines()
              if line.startswith("cognito_gateway_http_requests_total{")
              and 'code="200"' in line and 'method="GET"' in line]
    assert served, metrics[:2000]
    assert float(served[0].rsplit(" ", 1)[1]) >= TRAFFIC + 1
    assert gateway.process.returncode is None, tail(gateway.stderr)

    gateway.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(EXIT_WITHIN):
        code = await gateway.process.wait()
    complaints = gateway.stderr.read_text(errors="replace")
    assert "Traceback" not in complaints, complaints[-3000:]
    assert len(complaints.splitlines()) <= 1, complaints[-3000:]
    assert code == 0, complaints[-3000:]


async def test_a_full_log_disk_does_not_stop_the_idp_retries(
        launch_on_a_full_disk: Launch, idp: DevIdp) -> None:
    """Discovery fails at start while every log write fails and a readiness probe polls:
    the failure is still retried, and the gateway becomes ready."""
    idp.add_fault("discovery", 503, delay_seconds=0.3, count=1)
    gateway = await launch_on_a_full_disk()
    # The probe itself matters: its access lines are what the failure's log line must get past.
    await wait_for_status(f"{gateway.url}/ready", 200, gateway.process, gateway.stderr,
                          within=RETRIED_WITHIN)
