"""`cognito-gateway run --workers 2` as a real process tree: a supervisor and two workers.

The gateway runs as a subprocess configured by GATEWAY_* variables in front of the test
upstream (every path public), signing in at a DevIdp (needed for readiness). Which worker holds
a connection is read from /proc: the worker whose file descriptors include the server side of
that TCP connection. The restart delay and the summing of metric files are unit-tested at the
end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__
from gateway.cli import main
from gateway.demo.stack import free_port
from gateway.workers.backoff import RestartBackoff
from gateway.workers.metrics import WorkerMetrics
from tests.conftest import Secrets, gateway_env
from tests.support.processes import tail, wait_for_status

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from gateway.devidp import DevIdp

REPO = Path(__file__).resolve().parent.parent
WORKERS = 2
SHUTDOWN_TIMEOUT = 1.0
STOP_BOUND = SHUTDOWN_TIMEOUT + 5.0  # shutdown_delay (0) + shutdown_timeout + the margin
_TCP_ESTABLISHED, _TCP_LISTEN = "01", "0A"


# --- the process tree, read from /proc ------------------------------------------------------

def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None when it no longer exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = text.rpartition(")")[2].split()[:2]
    return state, int(ppid)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has exited)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def children(pid: int) -> set[int]:
    """The running child processes of `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] != "Z":
                found.add(int(entry.name))
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process `pid` holds open."""
    inodes = set()
    with contextlib.suppress(FileNotFoundError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def tcp_inodes(port: int, state: str, peer_port: int | None = None) -> set[int]:
    """Inodes of IPv4 sockets on local `port` in `state` (and from `peer_port`, if given)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, st, inode = fields[1], fields[2], fields[3], int(fields[9])
        if (int(local.split(":")[1], 16) == port and st == state
                and (peer_port is None or int(remote.split(":")[1], 16) == peer_port)):
            inodes.add(inode)
    return inodes


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll `condition` until it holds; fail saying `what` when `within` seconds pass first."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(0.02)


# --- the gateway under test ---------------------------------------------------------------

@dataclass
class Supervised:
    process: asyncio.subprocess.Process
    url: str
    port: int
    metrics_url: str
    log: Path

    def output(self) -> str:
        return tail(self.log)

    def events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines of the whole process tree with this `event`."""
        lines = self.log.read_text(errors="replace").splitlines()
        parsed = [json.loads(line) for line in lines if line.startswith("{")]
        return [line for line in parsed if line.get("event") == event]

    def workers(self) -> set[int]:
        return children(self.process.pid)

    def listening_workers(self) -> set[int]:
        listening = tcp_inodes(self.port, _TCP_LISTEN)
        return {pid for pid in self.workers() if socket_inodes(pid) & listening}

    async def metric(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The scraped samples called `name`, by their labels."""
        async with aiohttp.ClientSession() as client, client.get(self.metrics_url) as response:
            assert response.status == 200, await response.text()
            text = await response.text()
        return {tuple(sorted(sample.labels.items())): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name == name}

    async def requests_total(self) -> float:
        return sum((await self.metric("cognito_gateway_http_requests_total")).values())

    async def ready(self) -> bool:
        """Every worker listens and the summed readiness gauge is 1."""
        if len(self.listening_workers()) != WORKERS:
            return False
        return await self.metric("cognito_gateway_ready") == {(): 1.0}


def subprocess_env(config: dict[str, str]) -> dict[str, str]:
    """This process's environment without GATEWAY_* variables, plus `config`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return clean | config



@pytest.fixture
def gateway_port() -> int:
    """A port for the supervised workers to bind themselves (they cannot take the test's
    socket): free right now, and bound by the workers at their start."""
    return free_port()

@pytest.fixture
async def supervised(idp: DevIdp, upstream: str, gateway_url: str, gateway_port: int,
                     tmp_path: Path, secrets: Secrets) -> AsyncIterator[Supervised]:
    """`cognito-gateway run --workers 2`, both workers listening and ready."""
    metrics_port = free_port()
    env = gateway_env(idp, upstream, gateway_url,
                      GATEWAY_SERVER_LISTEN=f"127.0.0.1:{gateway_port}",
                      GATEWAY_SERVER_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
                      GATEWAY_SERVER_SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_TIMEOUT),
                      GATEWAY_AUTH_PUBLIC_PATHS="/*", GATEWAY_LOG_ACCESS_LOG="false")
    secrets.add(env["GATEWAY_SESSION_SECRET"])
    log = tmp_path / "gateway.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "run", "--workers", str(WORKERS), cwd=REPO,
            env=subprocess_env(env) | {"TMPDIR": str(tmp_path)}, stdout=sink,
            stderr=asyncio.subprocess.STDOUT)
    gateway = Supervised(process, gateway_url, gateway_port,
                         f"http://127.0.0.1:{metrics_port}/metrics", log)
    pids: set[int] = set()
    try:
        await wait_for_status(f"{gateway_url}/ready", 200, process, log, within=20.0)
        deadline = time.monotonic() + 20.0
        while not await gateway.ready():
            assert time.monotonic() < deadline, f"workers not ready:\n{gateway.output()}"
            await asyncio.sleep(0.05)
        pids = gateway.workers()
        yield gateway
    finally:
        pids |= gateway.workers()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await _no_worker_left(pids)
        text = log.read_text(errors="replace")
        assert not [s for s in secrets.values if s in text], "a secret reached the log"


async def _no_worker_left(pids: set[int]) -> None:
    """Wait for the lifeline to end every worker; kill any left after 5 s (and fail)."""
    try:
        await until(lambda: not any(alive(pid) for pid in pids), 5.0,
                    "every worker exits once the supervisor is gone")
    finally:
        for pid in pids:
            _kill_stray_worker(pid)


def _kill_stray_worker(pid: int) -> None:
    with contextlib.suppress(OSError):
        if alive(pid) and b"--lifeline-fd" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)


async def get_on_fresh_connection(url: str) -> int:
    """GET `url` on a new TCP connection (so the kernel picks a worker); the status."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as client, \
            client.get(url) as response:
        await response.read()
        return response.status


# --- behaviour ----------------------------------------------------------------------------

async def test_connections_are_spread_over_both_workers(supervised: Supervised) -> None:
    """New connections reach both workers (at most 64 tries: one worker alone fails it)."""
    workers = supervised.workers()
    served: dict[int, int] = dict.fromkeys(workers, 0)
    streams = []
    try:
        for _ in range(64):
            reader, writer = await asyncio.open_connection("127.0.0.1", supervised.port)
            streams.append(writer)
            writer.write(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(
                b"HTTP/1.1 200")
            client_port = writer.get_extra_info("sockname")[1]
            server_side = tcp_inodes(supervised.port, _TCP_ESTABLISHED, client_port)
            owners = [pid for pid in workers if socket_inodes(pid) & server_side]
            assert len(owners) == 1, (owners, supervised.output())
            served[owners[0]] += 1
            if all(served.values()):
                break
    finally:
        for writer in streams:
            writer.close()
    assert len(served) == WORKERS
    assert all(served.values()), served


async def test_metrics_report_the_sum_over_workers(supervised: Supervised) -> None:
    """K requests spread over both workers raise the scraped request counter by exactly K."""
    requests = 40
    before = await supervised.requests_total()
    count = "cognito_gateway_http_request_duration_seconds_count"
    histogram_before = await supervised.metric(count)
    statuses = [await get_on_fresh_connection(f"{supervised.url}/sum") for _ in range(requests)]
    assert statuses == [200] * requests
    assert await supervised.requests_total() == before + requests
    histogram = await supervised.metric(count)
    assert histogram[()] == histogram_before[()] + requests
    assert await supervised.metric("cognito_gateway_build_info") == {
        (("version", __version__),): 1.0}


async def test_killed_worker_is_restarted_while_the_other_serves(supervised: Supervised) -> None:
    """SIGKILL of a worker: a new one starts, every request meanwhile succeeds, and the
    summed counter never goes backwards and ends exactly at before + sent."""
    victim = min(supervised.workers())
    survivor = max(supervised.workers())
    for _ in range(20):  # both workers have counted some (a lost count shows as a step down)
        assert await get_on_fresh_connection(f"{supervised.url}/before") == 200
    before = await supervised.requests_total()
    os.kill(victim, signal.SIGKILL)
    await until(lambda: not alive(victim), 5.0, "the killed worker is gone")
    sent, seen = 0, [before]
    deadline = time.monotonic() + 15.0
    while len(supervised.listening_workers() - {survivor}) == 0:
        assert time.monotonic() < deadline, f"no new worker:\n{supervised.output()}"
        assert await get_on_fresh_connection(f"{supervised.url}/during") == 200
        sent += 1
        seen.append(await supervised.requests_total())
    replacement = supervised.workers() - {survivor}
    assert len(replacement) == 1
    assert victim not in replacement
    assert seen == sorted(seen), "the summed counter went backwards"
    assert await supervised.requests_total() == before + sent
    exited = [e for e in supervised.events("worker_exited") if e["pid"] == victim]
    assert [(e["signal"], e["restart_delay_seconds"]) for e in exited] == [
        ("SIGKILL", RestartBackoff().delay_after(e["uptime_seconds"])) for e in exited]
    assert len(exited) == 1
    started = {e["pid"] for e in supervised.events("worker_started")}
    assert replacement <= started


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
async def test_stop_signal_stops_every_worker_and_exits_zero(supervised: Supervised,
                                                             sig: signal.Signals) -> None:
    """SIGTERM or SIGINT to the supervisor: every worker stops, exit 0, within the bound."""
    workers = supervised.workers()
    started = time.monotonic()
    supervised.process.send_signal(sig)
    code = await asyncio.wait_for(supervised.process.wait(), STOP_BOUND + 2)
    assert code == 0, supervised.output()
    assert time.monotonic() - started < STOP_BOUND
    assert not [pid for pid in workers if alive(pid)]
    assert {e["pid"] for e in supervised.events("worker_exited")} == workers
    assert supervised.events("supervisor_stopped"), supervised.output()
    assert {e["pid"] for e in supervised.events("stopped")} == workers  # each drained
    assert not supervised.events("workers_killed")
    assert not list(supervised.log.parent.glob("cognito-gateway-metrics-*")), "metrics dir left"


async def test_worker_that_ignores_sigterm_is_killed_at_the_bound(
        supervised: Supervised) -> None:
    """A worker that cannot stop (SIGSTOPped) is killed after delay + timeout + margin; exit 0."""
    stuck = min(supervised.workers())
    os.kill(stuck, signal.SIGSTOP)
    started = time.monotonic()
    supervised.process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(supervised.process.wait(), STOP_BOUND + 5)
    elapsed = time.monotonic() - started
    assert code == 0, supervised.output()
    assert STOP_BOUND <= elapsed < STOP_BOUND + 3
    assert not alive(stuck)
    assert supervised.events("workers_killed")[0]["pids"] == [stuck]


async def test_workers_exit_by_themselves_when_the_supervisor_is_killed(
        supervised: Supervised) -> None:
    """SIGKILL of the supervisor: each worker sees its lifeline close and exits within 5 s."""
    workers = supervised.workers()
    supervised.process.kill()
    await supervised.process.wait()
    await until(lambda: not any(alive(pid) for pid in workers), 5.0, "orphaned workers exit")
    assert {e["pid"] for e in supervised.events("supervisor_gone")} == workers


async def test_sighup_is_forwarded_to_every_worker(supervised: Supervised) -> None:
    """SIGHUP to the supervisor reaches each worker; the supervisor keeps running."""
    workers = supervised.workers()
    reloads_before = sum((await supervised.metric("cognito_gateway_config_reloads_total")).values())
    supervised.process.send_signal(signal.SIGHUP)
    await until(lambda: bool(supervised.events("signal_forwarded")), 5.0, "SIGHUP forwarded")
    forwarded = supervised.events("signal_forwarded")[0]
    assert (forwarded["signal"], forwarded["pids"]) == ("SIGHUP", sorted(workers))

    async def reacted() -> bool:
        """Each worker reloaded, or (no SIGHUP handler in the worker yet) was ended by it."""
        ended = {e["pid"] for e in supervised.events("worker_exited")
                 if e.get("signal") == "SIGHUP"}
        reloads = await supervised.metric("cognito_gateway_config_reloads_total")
        return ended == workers or sum(reloads.values()) >= reloads_before + WORKERS

    deadline = time.monotonic() + 5.0
    while not await reacted():
        assert time.monotonic() < deadline, f"a worker missed SIGHUP:\n{supervised.output()}"
        await asyncio.sleep(0.05)
    assert supervised.process.returncode is None


# --- the pure parts -------------------------------------------------------------------------

@pytest.mark.parametrize(("uptimes", "delays"), [
    ([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [1, 2, 4, 8, 16, 30, 30]),
    ([60.0, 60.0], [0, 0]),
    ([0.1, 0.1, 0.1, 60.0, 0.1], [1, 2, 4, 0, 1]),
    ([9.9, 10.0], [1, 0]),
], ids=["crash-loop-doubles-to-30s", "stable-runs-restart-at-once",
        "a-stable-run-resets-the-wait", "stable-from-10s"])
def test_restart_delay(uptimes: list[float], delays: list[float]) -> None:
    """Quick exits wait 1 s doubling to 30 s; a run of 10 s or more restarts at once and resets."""
    backoff = RestartBackoff()
    assert [backoff.delay_after(uptime) for uptime in uptimes] == delays


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"],
                         ids=["zero", "negative", "word", "fraction"])
def test_workers_flag_refuses_anything_but_a_positive_whole_number(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`run --workers` must be a whole number >= 1: anything else exits 2 before starting."""
    with pytest.raises(SystemExit) as exited:
        main(["run", "--workers", value])
    assert exited.value.code == 2
    assert "--workers: must be a whole number >= 1" in capsys.readouterr().err


_WORKER_SCRIPT = """
import os
from gateway.observability.metrics import Metrics
print(os.getpid())
m = Metrics()
m.ready.set({ready})
for _ in range({requests}):
    m.http_requests.labels(method="GET", code="200").inc()
    m.http_request_duration.observe(0.02)
"""


@pytest.mark.parametrize(("workers", "retired"), [
    ([(3, 1), (4, 1)], []),
    ([(3, 1), (4, 0)], [1]),
    ([(3, 1), (4, 1), (5, 1)], [0, 1]),
], ids=["two-live", "one-retired", "two-retired"])
def test_worker_metrics_sum_counters_over_all_workers_and_gauges_over_live_ones(
        tmp_path: Path, workers: list[tuple[int, int]], retired: list[int]) -> None:
    """Counters and histograms add up over live and retired workers; gauges over live ones."""
    metrics = WorkerMetrics(tmp_path)
    pids = []
    for requests, ready in workers:
        done = subprocess.run(
            [sys.executable, "-c", _WORKER_SCRIPT.format(requests=requests, ready=ready)],
            env=os.environ | metrics.worker_env(), check=True, capture_output=True, text=True)
        pids.append(int(done.stdout))
    for index in retired:
        metrics.retire(pids[index])
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in metrics.collect() for s in family.samples}
    total = sum(requests for requests, _ in workers)
    assert samples[("cognito_gateway_http_requests_total",
                    (("code", "200"), ("method", "GET")))] == total
    assert samples[("cognito_gateway_http_request_duration_seconds_count", ())] == total
    assert samples[("cognito_gateway_http_request_duration_seconds_bucket", (("le", "0.025"),))] \
        == total
    live_ready = [ready for i, (_, ready) in enumerate(workers) if i not in retired]
    assert samples[("cognito_gateway_ready", ())] == min(live_ready)
    assert samples[("cognito_gateway_build_info", (("version", __version__),))] == 1
    assert len(list(tmp_path.glob("*.db"))) == 3 * (len(workers) - len(retired)) + bool(
        retired) * 2


def test_a_worker_file_created_this_instant_neither_fails_the_sum_nor_counts(
        tmp_path: Path) -> None:
    """A starting worker creates its files empty and sizes them a moment later: a scrape in
    between (and a retirement of a worker that died right then) sums the others."""
    metrics = WorkerMetrics(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _WORKER_SCRIPT.format(requests=2, ready=1)],
        env=os.environ | metrics.worker_env(), check=True, capture_output=True, text=True)
    for kind in ("counter", "histogram", "gauge_all"):
        (tmp_path / f"{kind}_99999.db").touch()

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in metrics.collect() for s in family.samples}
    metrics.retire(99999)
    metrics.retire(int(done.stdout))

    assert samples[("cognito_gateway_http_requests_total",
                    (("code", "200"), ("method", "GET")))] == 2
    assert {p.name for p in tmp_path.glob("*_99999.db")} == set()
    retired = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in metrics.collect() for s in family.samples}
    assert retired[("cognito_gateway_http_requests_total",
                    (("code", "200"), ("method", "GET")))] == 2
