"""The request path's counters and histograms count without a lock, exporting the same."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry, values
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.observability.metrics import BufferedValue, LoopValue, Metrics

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def test_counter_children_count_in_loop_values() -> None:
    """A labelled child counts every inc in a LoopValue, and the registry exports the sum."""
    metrics = Metrics()
    child = metrics.http_requests.labels("GET", 200)
    assert isinstance(child._value, LoopValue)
    for _ in range(3):
        child.inc()
    child.inc(2.5)
    assert metrics.registry.get_sample_value(
        "cognito_gateway_http_requests_total", {"method": "GET", "code": "200"}) == 5.5


@pytest.mark.parametrize(("amount", "error"), [(-1.0, ValueError)], ids=["negative"])
def test_counter_checks_still_apply(amount: float, error: type[Exception]) -> None:
    """A counter still refuses to go down."""
    with pytest.raises(error):
        Metrics().http_requests.labels("GET", 200).inc(amount)


def test_a_labelled_parent_still_refuses_to_count() -> None:
    """Counting on a counter with labels but none given is still an error."""
    with pytest.raises(ValueError, match="label"):
        Metrics().auth_decisions.inc()


def test_histograms_observe_into_loop_values() -> None:
    """Observations land in the right buckets and the sum, all LoopValues."""
    metrics = Metrics()
    histogram = metrics.http_request_duration
    for seconds in (0.0005, 0.003, 0.003, 100.0):
        histogram.observe(seconds)
    assert all(isinstance(bucket, LoopValue) for bucket in histogram._buckets)
    sample = metrics.registry.get_sample_value
    name = "cognito_gateway_http_request_duration_seconds"
    assert sample(name + "_bucket", {"le": "0.001"}) == 1.0
    assert sample(name + "_bucket", {"le": "0.005"}) == 3.0
    assert sample(name + "_bucket", {"le": "+Inf"}) == 4.0
    assert sample(name + "_sum", {}) == pytest.approx(100.0065)


@pytest.fixture
def multiprocess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """prometheus_client's multiprocess mode (as a `--workers N` worker runs), files in tmp."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())  # type: ignore[no-untyped-call]
    yield tmp_path
    values.close_all_multiprocess_files()  # type: ignore[no-untyped-call]


def in_files(directory: Path, name: str, labels: dict[str, str] | None = None) -> float | None:
    """A sample as the supervisor's /metrics reads it: from the workers' files."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return registry.get_sample_value(name, labels or {})


REQUESTS = "cognito_gateway_http_requests_total"
GET_200 = {"method": "GET", "code": "200"}


def test_multiprocess_counts_reach_the_files_once_per_loop_iteration(multiprocess: Path) -> None:
    """Within an iteration of the event loop the counts stay in memory (one file write per
    value per iteration); by the next one they are in the files, whole."""
    metrics = Metrics()
    child = metrics.http_requests.labels("GET", 200)
    assert isinstance(child._value, BufferedValue)

    async def count() -> tuple[float | None, float | None, float | None]:
        for _ in range(5):
            child.inc()
        metrics.http_request_duration.observe(0.003)
        during = in_files(multiprocess, REQUESTS, GET_200)
        await asyncio.sleep(0)
        after = in_files(multiprocess, REQUESTS, GET_200)
        observed = in_files(multiprocess, "cognito_gateway_http_request_duration_seconds_count")
        return during, after, observed

    during, after, observed = asyncio.run(count())
    assert during in {None, 0.0}
    assert after == 5.0
    assert observed == 1.0
    assert child._value.get() == 5.0


def test_multiprocess_counts_outside_a_loop_reach_the_files_at_once(multiprocess: Path) -> None:
    metrics = Metrics()
    metrics.http_requests.labels("GET", 200).inc(2)
    assert in_files(multiprocess, REQUESTS, GET_200) == 2.0


def test_a_loop_stopped_before_its_flush_does_not_hold_back_the_next_ones(
        multiprocess: Path) -> None:
    """Counts queued on a loop that stopped before flushing them reach the files with the
    next loop's first iteration (and nothing waits for the first loop again)."""
    metrics = Metrics()
    child = metrics.http_requests.labels("GET", 200)
    first = asyncio.new_event_loop()

    async def count_then_stop() -> None:
        first.stop()  # this iteration's callbacks run; the flush it schedules does not
        child.inc()

    counted = first.create_task(count_then_stop())
    first.run_forever()
    first.close()
    assert counted.done()
    assert in_files(multiprocess, REQUESTS, GET_200) in {None, 0.0}

    async def count_again() -> float | None:
        child.inc()
        await asyncio.sleep(0)
        return in_files(multiprocess, REQUESTS, GET_200)

    assert asyncio.run(count_again()) == 2.0
