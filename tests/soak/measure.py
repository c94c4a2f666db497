"""Measurements taken around the traffic: gateway metrics, stand-in stats, RSS, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.soak.processes import Child, SoakError
from tests.soak.traced import snapshot_path

if TYPE_CHECKING:
    from collections.abc import Sequence

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""Prometheus samples by (sample name, sorted label pairs)."""


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus text exposition."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def scrape_metrics(http: aiohttp.ClientSession, url: str) -> Samples | None:
    """The gateway's /metrics now, or None when it cannot be read (the gateway is gone)."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with http.get(url) as response:
            if response.status == 200:
                return parse_metrics(await response.text())
    return None


def counter_delta(before: Samples, after: Samples, name: str,
                  labels: Sequence[str]) -> dict[str, int]:
    """How much counter `name` grew between two scrapes, by its labels joined with ":".

    Only non-zero changes are kept, in key order.
    """
    grown: dict[str, int] = {}
    for (sample, pairs), value in after.items():
        if sample != name:
            continue
        values = dict(pairs)
        key = ":".join(values.get(label, "") for label in labels)
        delta = round(value - before.get((sample, pairs), 0.0))
        if delta:
            grown[key] = grown.get(key, 0) + delta
    return dict(sorted(grown.items()))


async def idp_token_requests(http: aiohttp.ClientSession, idp_url: str) -> dict[str, int]:
    """The stand-in's count of /oauth2/token calls by grant_type since its last stats reset."""
    async with http.get(f"{idp_url}/_admin/stats") as response:
        stats: dict[str, Any] = await response.json()
    counts = stats.get("token_requests", {})
    return {str(k): int(v) for k, v in sorted(counts.items())}


async def reset_idp_stats(http: aiohttp.ClientSession, idp_url: str) -> None:
    async with http.post(f"{idp_url}/_admin/stats/reset") as response:
        response.raise_for_status()


class RssSampler:
    """Resident memory of a process tree: named marks, the peak seen by periodic sampling, and
    one sample per TIMELINE_STEP seconds for the report."""

    TIMELINE_STEP = 1.0

    def __init__(self, child: Child, interval: float = 0.25) -> None:
        self._child = child
        self._interval = interval
        self.marks: dict[str, int] = {}
        self.peak = 0
        self.timeline: list[tuple[float, int]] = []

    def sample(self) -> int:
        value = self._child.rss()
        self.peak = max(self.peak, value)
        return value

    def mark(self, name: str) -> int:
        """Record the RSS now under `name`."""
        self.marks[name] = self.sample()
        return self.marks[name]

    async def run(self, start: float) -> None:
        """Sample until cancelled; timeline times are seconds from monotonic `start`."""
        while True:
            value = self.sample()
            at = time.monotonic() - start
            if not self.timeline or at - self.timeline[-1][0] >= self.TIMELINE_STEP:
                self.timeline.append((round(at, 1), value))
            await asyncio.sleep(self._interval)

    async def mark_at(self, when: float, name: str) -> None:
        """Record a mark at monotonic time `when`."""
        await asyncio.sleep(max(0.0, when - time.monotonic()))
        self.mark(name)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank q-th percentile (0 < q <= 100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """Count, p50, p99 and max of latencies, in milliseconds (None when there are none)."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {"count": len(seconds), "p50": ms(percentile(seconds, 50)),
            "p99": ms(percentile(seconds, 99)), "max": ms(max(seconds, default=None))}


class HeapSnapshots:
    """Heap snapshots of a gateway run under tests/soak/traced.py, taken on demand by name."""

    WRITTEN_WITHIN = 60.0  # a snapshot of a traced heap takes seconds on a busy machine

    def __init__(self, child: Child, directory: Path) -> None:
        self._child = child
        self._directory = directory
        self.paths: dict[str, Path] = {}

    async def take_at(self, when: float, name: str) -> None:
        """`take` at monotonic time `when`."""
        await asyncio.sleep(max(0.0, when - time.monotonic()))
        await self.take(name)

    async def take(self, name: str) -> None:
        """Ask the gateway for a snapshot (SIGUSR2) and wait until it is written; SoakError
        after WRITTEN_WITHIN seconds."""
        path = snapshot_path(self._directory, len(self.paths) + 1)
        self._child.signal(signal.SIGUSR2)
        deadline = time.monotonic() + self.WRITTEN_WITHIN
        while not path.exists():
            if time.monotonic() > deadline:
                raise SoakError(f"the gateway wrote no heap snapshot within "
                                f"{self.WRITTEN_WITHIN:g} s (is it running under tracemalloc?)")
            await asyncio.sleep(0.05)
        self.paths[name] = path


REPO = Path(__file__).resolve().parents[2]


def source_name(filename: str) -> str:
    """A source file named without this machine's paths: relative to the checkout, else from
    the Python library directory on (`aiohttp/web_protocol.py`, `asyncio/events.py`)."""
    path = Path(filename)
    parts = path.parts
    for anchor in ("site-packages", "dist-packages"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1:])
    if path.is_relative_to(REPO):
        return str(path.relative_to(REPO))
    lib = next((i for i, part in enumerate(parts) if part.startswith("python3")), None)
    return "/".join(parts[lib + 1:]) if lib is not None else path.name


HEAP_NOISE = (tracemalloc.__file__, "<frozen importlib._bootstrap>",
              "<frozen importlib._bootstrap_external>", "<unknown>")


def heap_growth(before: Path, after: Path, *, top: int = 15) -> dict[str, Any]:
    """What the Python heap gained between two snapshots: the total, and the `top` source
    lines (innermost frame) that grew most, in KiB and allocated blocks."""
    noise = [tracemalloc.Filter(False, pattern) for pattern in HEAP_NOISE]
    old = tracemalloc.Snapshot.load(str(before)).filter_traces(noise)
    new = tracemalloc.Snapshot.load(str(after)).filter_traces(noise)
    stats = new.compare_to(old, "lineno")
    total = sum(stat.size_diff for stat in stats)
    return {
        "total_kib": round(total / 1024, 1),
        "top": [{"where": f"{source_name(stat.traceback[0].filename)}:{stat.traceback[0].lineno}",
                 "kib": round(stat.size_diff / 1024, 1), "blocks": stat.count_diff}
                for stat in stats[:top] if stat.size_diff > 0],
    }
