"""The scenarios: what is loaded, through which targets, and what is read off each run.

Every scenario measures its targets one after the other within a round (the order rotated each
round) and returns, per run, a flat mapping of figures. The first target is the one under test;
`reference` names the one the ratios divide by. Figures per unit ("cpu_us") are CPU
microseconds of the target's process tree per request, message, megabyte or sign-in;
"path_cpu_us" adds the upstream's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import aiohttp

from bench import clients, idp, nginx
from bench.measure import CpuWindow
from bench.procfs import peak_rss_mib, reset_peak_rss, rss_mib, set_tree_affinity
from bench.stack import Stack
from bench.wrk import run_wrk

if TYPE_CHECKING:
    from pathlib import Path

Values = dict[str, float]
ALT = "gateway-alt"
SIGN_IN_CONCURRENCY = 4
SIGN_IN_LIMIT = 5000
RSS_SAMPLE_SECONDS = 0.02
TRANSFER_SECONDS = 120.0  # a 100 MB transfer slower than ~1 MB/s fails


class CheckFailed(RuntimeError):
    """A target did not answer as expected before or after a run."""


@dataclass(frozen=True)
class RunSettings:
    """How long and how hard each run loads its target."""

    duration: int
    connections: int
    load_cpus: set[int] | None
    all_cpus: set[int] | None
    scratch: Path  # private files of a run (wrk's scripts with credentials)


Measure = Callable[[Stack, str, RunSettings], Awaitable[Values]]


@dataclass(frozen=True)
class Scenario:
    """One line of the benchmark: targets, what one unit of work is, and how to measure it."""

    name: str
    title: str
    unit: str
    targets: tuple[str, ...]
    reference: str | None
    measure: Measure
    needs: frozenset[str] = field(default_factory=frozenset)
    compares_interpreters: bool = False

    def services(self) -> set[str]:
        """Every service the scenario's targets need (beyond the upstream and the IdP)."""
        return set(self.targets) | set(self.needs)

    def with_comparison(self) -> Scenario:
        """The scenario with the BENCH_COMPARE_PYTHON gateway as its second target, if it
        compares interpreters (the others are left as they are)."""
        if not self.compares_interpreters:
            return self
        first, *rest = self.targets
        return replace(self, targets=(first, ALT, *rest))


def _service(target: str) -> str:
    return "proxy" if target == "nginx" else target


def _window(stack: Stack) -> CpuWindow:
    return CpuWindow({name: service.pid for name, service in stack.by_name.items()})


async def _expect_body(url: str, headers: dict[str, str], size: int) -> None:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as client, client.get(
            url, headers=headers, allow_redirects=False) as response:
        body = await response.read()
    if response.status != 200 or len(body) != size:
        raise CheckFailed(f"GET {url}: status {response.status}, {len(body)} bytes "
                          f"instead of 200 with {size}")


def http(path: str, size: int, *, bearer: bool = False, unpinned: bool = False) -> Measure:
    """wrk on `path`, whose answer must be `size` bytes, before and after the run."""

    async def measure(stack: Stack, target: str, settings: RunSettings) -> Values:
        headers = await stack.credentials(target, bearer=bearer)
        url = stack.url(target) + path
        await _expect_body(url, headers, size)
        cpus = settings.all_cpus if unpinned else settings.load_cpus
        with _window(stack) as window:
            result = await run_wrk(url, headers=headers, duration=settings.duration,
                                   connections=settings.connections, cpus=cpus,
                                   script_dir=settings.scratch)
        await _expect_body(url, headers, size)
        per_request = 1e6 / max(result.requests, 1)
        service = _service(target)
        return {
            "rate": result.rate, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
            "cpu_us": window.cpu(service) * per_request,
            "path_cpu_us": window.cpu(service, stack.upstream_of(target, path)) * per_request,
            "rss_mib": rss_mib(stack.pid(service)), "requests": float(result.requests),
            "errors": float(result.errors), "bytes_per_response": result.bytes_per_response,
            "other_load_cores": window.other_load_cores, "steal_cores": window.steal_cores,
        }

    if not unpinned:
        return measure

    async def measure_unpinned(stack: Stack, target: str, settings: RunSettings) -> Values:
        async with _unpinned(stack, [_service(target), stack.upstream_of(target, path)]):
            return await measure(stack, target, settings)

    return measure_unpinned


@contextlib.asynccontextmanager
async def _unpinned(stack: Stack, services: list[str]) -> AsyncIterator[None]:
    """Let `services` run on every CPU for the block, then put them back where they were."""
    everywhere = stack.pinning.everywhere
    if everywhere is None:
        yield
        return
    for name in services:
        set_tree_affinity(stack.pid(name), everywhere)
    try:
        yield
    finally:
        for name in services:
            pinned = stack.by_name[name].cpus
            if pinned is not None:
                set_tree_affinity(stack.pid(name), pinned)


@contextlib.asynccontextmanager
async def _rss_peak(pid: int) -> AsyncIterator[list[float]]:
    """Yield a one-item list that holds the tree's peak RSS (MiB) after the block.

    VmHWM is reset before the block where the kernel allows it; the sampled VmRSS maximum
    (every 20 ms) stands in where it does not.
    """
    exact = reset_peak_rss(pid)
    sampled = [rss_mib(pid)]
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            sampled.append(rss_mib(pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RSS_SAMPLE_SECONDS)

    sampler = asyncio.create_task(sample())
    peak: list[float] = []
    try:
        yield peak
    finally:
        stop.set()
        await sampler
        peak.append(max(peak_rss_mib(pid), *sampled) if exact else max(sampled))


def transfer(direction: str) -> Measure:
    """One streamed 100 MB download or upload; MB/s, CPU per MB and the peak RSS."""

    async def measure(stack: Stack, target: str, _settings: RunSettings) -> Values:
        headers = await stack.credentials(target)
        service = _service(target)
        size = nginx.DOWNLOAD_BYTES
        path = f"/{direction}"
        url = stack.url(target) + path
        async with _rss_peak(stack.pid(service)) as peak, asyncio.timeout(TRANSFER_SECONDS):
            with _window(stack) as window:
                if direction == "download":
                    done = await clients.download(url, headers, size)
                else:
                    done = await clients.upload(url, headers, size)
        per_mb = 1e6 / (done.bytes / 1e6)
        return {
            "mb_per_s": done.mb_per_s, "seconds": done.seconds,
            "cpu_us": window.cpu(service) * per_mb,
            "path_cpu_us": window.cpu(service, stack.upstream_of(target, path)) * per_mb,
            "peak_rss_mib": peak[0], "rss_mib": rss_mib(stack.pid(service)),
            "other_load_cores": window.other_load_cores, "steal_cores": window.steal_cores,
        }

    return measure


async def websocket(stack: Stack, target: str, settings: RunSettings) -> Values:
    """Echo load over `connections` WebSockets through the target for `duration` s."""
    headers = await stack.credentials(target)
    url = stack.url(target).replace("http://", "ws://", 1) + "/ws"
    service = _service(target)
    with _window(stack) as window:
        load = await clients.echo_load(url, headers, connections=settings.connections,
                                       duration=settings.duration)
    per_message = 1e6 / load.messages
    return {
        "rate": load.rate, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms,
        "cpu_us": window.cpu(service) * per_message,
        "path_cpu_us": window.cpu(service, stack.upstream_of(target, "/ws")) * per_message,
        "rss_mib": rss_mib(stack.pid(service)), "messages": float(load.messages),
        "other_load_cores": window.other_load_cores, "steal_cores": window.steal_cores,
    }


async def sign_ins(stack: Stack, target: str, settings: RunSettings) -> Values:
    """Complete sign-ins through the hosted UI for `duration` s, a few at a time."""
    url = stack.url(target)
    deadline = time.monotonic() + settings.duration
    done = 0

    async def one_after_another() -> None:
        nonlocal done
        while time.monotonic() < deadline and done < SIGN_IN_LIMIT:
            await idp.sign_in(url, verify=False)
            done += 1

    with _window(stack) as window:
        async with asyncio.timeout(settings.duration + 60):
            await asyncio.gather(*(one_after_another() for _ in range(SIGN_IN_CONCURRENCY)))
    per_sign_in = 1e6 / max(done, 1)
    return {
        "rate": done / window.seconds, "cpu_us": window.cpu(target) * per_sign_in,
        "idp_cpu_us": window.cpu("idp") * per_sign_in, "sign_ins": float(done),
        "rss_mib": rss_mib(stack.pid(target)), "other_load_cores": window.other_load_cores,
        "steal_cores": window.steal_cores,
    }


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("small", "100-byte responses, cookie session, access log on", "req",
             ("gateway", "nginx"), "nginx", http("/", len(nginx.SMALL_BODY)),
             compares_interpreters=True),
    Scenario("64k", "64 KiB responses, cookie session", "req", ("gateway", "nginx"), "nginx",
             http("/64k", nginx.MEDIUM_BYTES), compares_interpreters=True),
    Scenario("download", "100 MB streamed download", "MB", ("gateway", "nginx"), "nginx",
             transfer("download")),
    Scenario("upload", "100 MB streamed upload (to the app's sink)", "MB",
             ("gateway-app", "nginx"), "nginx", transfer("upload"), frozenset({"app"})),
    Scenario("websocket", "WebSocket echo, 100-byte messages, one in flight per socket",
             "msg", ("gateway-app", "nginx"), "nginx", websocket, frozenset({"app"})),
    Scenario("signin", "full sign-in through the hosted UI (scripted, no JavaScript)",
             "sign-in", ("gateway",), None, sign_ins, compares_interpreters=True),
    Scenario("bearer", "Authorization: Bearer <access token>, 100-byte responses", "req",
             ("gateway", "nginx"), "nginx",
             http("/", len(nginx.SMALL_BODY), bearer=True), compares_interpreters=True),
    Scenario("workers", "--workers 2 vs 1 worker, everything unpinned", "req",
             ("gateway-workers", "gateway"), "gateway",
             http("/", len(nginx.SMALL_BODY), unpinned=True)),
)}
