"""One /metrics for all workers: prometheus_client's multiprocess mode, read by the supervisor.

Each worker runs with `PROMETHEUS_MULTIPROC_DIR` set to a directory the supervisor created under
the temporary directory (`TMPDIR`: /tmp, a tmpfs in the image, whose root filesystem is
read-only). prometheus_client then keeps every counter, histogram and gauge value of the worker
in memory-mapped files named by its pid, written at each increment, so a worker killed with
SIGKILL loses nothing it counted. The supervisor's `/metrics` adds up the files:

- counters and histograms (buckets, sums, counts): the sum over every worker that ever ran;
  when a worker exits, `retire` folds its files into one `*_retired.db` file per type, so the
  totals never go backwards across a restart and the directory does not grow with restarts;
- gauges: only live workers count (a dead worker's gauge files are deleted), combined per label
  set by `GAUGES_ACROSS_WORKERS` (`cognito_gateway_ready` is the minimum: ready only when every
  worker is; `cognito_gateway_build_info` the maximum), and summed when not listed there.

Multiprocess mode exports no `_created` samples. Everything here runs in the supervisor's event
loop thread, so a scrape never sees a retirement half done.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from prometheus_client.metrics_core import Metric

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
RETIRED = "retired"
HEADER_BYTES = 8  # a multiprocess file starts with the length of its used part
GAUGES_ACROSS_WORKERS: dict[str, Callable[[Iterable[float]], float]] = {
    "cognito_gateway_ready": min,
    "cognito_gateway_build_info": max,
}


class WorkerMetrics:
    """The multiprocess metrics directory of one supervisor, and the sum over its workers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def create(cls) -> WorkerMetrics:
        """A new empty directory under the temporary directory."""
        return cls(Path(tempfile.mkdtemp(prefix="cognito-gateway-metrics-")))

    def worker_env(self) -> dict[str, str]:
        """What a worker's environment needs so that its metrics land here."""
        return {ENV_VAR: str(self.directory)}

    def collect(self) -> Iterator[Metric]:
        """Every metric, summed over workers (a prometheus_client collector)."""
        for metric in _merge(_readable(self.directory.glob("*.db")), accumulate=True):
            if metric.type == "gauge":
                metric.samples = _across_workers(metric)
            yield metric

    def retire(self, pid: int) -> None:
        """Fold the counters and histograms of the exited worker `pid` into the retired totals
        and drop its gauges."""
        for path in self.directory.glob("*.db"):
            kind, _, owner = path.stem.rpartition("_")
            if owner != str(pid):
                continue
            if kind.startswith("gauge"):
                path.unlink()
                continue
            retired = self.directory / f"{kind}_{RETIRED}.db"
            _write_raw(retired, _readable([retired, path]))
            path.unlink()

    def remove(self) -> None:
        """Delete the directory (at the supervisor's exit)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _write_raw(target: Path, sources: list[Path]) -> None:
    """Write the per-sample sums of `sources` (not yet accumulated into cumulative buckets) to
    `target`, replacing it in one rename."""
    merged = _merge(sources, accumulate=False)
    staging = target.with_suffix(".staging")  # not *.db: never read half written
    staging.unlink(missing_ok=True)
    # prometheus_client leaves MmapedDict and merge untyped.
    store = MmapedDict(str(staging))  # type: ignore[no-untyped-call]
    try:
        for metric in merged:
            for sample in metric.samples:
                key = mmap_key(metric.name, sample.name, list(sample.labels),
                               list(sample.labels.values()), metric.documentation)
                store.write_value(key, sample.value, 0.0)  # type: ignore[no-untyped-call]
    finally:
        store.close()  # type: ignore[no-untyped-call]
    staging.replace(target)


def _readable(files: Iterable[Path]) -> list[Path]:
    """The files that hold a header. A worker creates its file empty and sizes it a moment
    later: until then it has counted nothing, and prometheus_client cannot read it (it would
    fail the whole scrape)."""
    readable = []
    for path in files:
        try:
            if path.stat().st_size >= HEADER_BYTES:
                readable.append(path)
        except FileNotFoundError:
            continue
    return readable


def _merge(files: Iterable[Path], *, accumulate: bool) -> list[Metric]:
    """prometheus_client's sum of multiprocess files (cumulative buckets when `accumulate`)."""
    paths = [str(path) for path in files]
    return list(MultiProcessCollector.merge(paths, accumulate))  # type: ignore[no-untyped-call]


def _across_workers(metric: Metric) -> list[Sample]:
    """One sample per label set of a gauge that prometheus_client reported per worker pid."""
    values: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
    for sample in metric.samples:
        labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
        values.setdefault((sample.name, labels), []).append(sample.value)
    combine = GAUGES_ACROSS_WORKERS.get(metric.name, sum)
    return [Sample(name, dict(labels), combine(found)) for (name, labels), found in values.items()]


def create_workers_metrics_app(metrics: WorkerMetrics) -> web.Application:
    """The supervisor's /metrics listener."""
    registry = CollectorRegistry()
    registry.register(metrics)

    async def serve_metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    return app
