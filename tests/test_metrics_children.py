"""The request path's metric types export exactly what prometheus_client's own would."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.observability.metrics import LATENCY_BUCKETS, BisectHistogram, CachedCounter

CALLS: list[tuple[tuple[str, ...], dict[str, str]]] = [
    ((), {"method": "GET", "code": "200"}),
    ((), {"code": "200", "method": "GET"}),
    (("GET", "200"), {}),
    (("POST", "503"), {}),
    ((), {"method": "POST", "code": "503"}),
    (("GET", "404"), {}),
]


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    """Every sample but the `_created` timestamps (which differ between any two metrics)."""
    return [(s.name, s.labels, s.value) for metric in registry.collect()
            for s in metric.samples if not s.name.endswith("_created")]


def _exposition(counter_type: type[Counter]) -> list[tuple[str, dict[str, str], float]]:
    registry = CollectorRegistry()
    counter = counter_type("requests", "Requests.", ["method", "code"], registry=registry)
    for args, kwargs in CALLS:
        counter.labels(*args, **kwargs).inc()
    return _samples(registry)


class TestCachedCounter:
    def test_exports_what_a_plain_counter_exports(self) -> None:
        """Positional, keyword and reordered keyword calls count into the same series."""
        assert _exposition(CachedCounter) == _exposition(Counter)

    def test_every_spelling_of_a_label_set_is_one_child(self) -> None:
        """The cached child is prometheus_client's own child for that label set."""
        counter = CachedCounter("c", "C.", ["method", "code"], registry=None)
        children = {id(counter.labels(*args, **kwargs)) for args, kwargs in CALLS[:3]}
        assert len(children) == 1

    def test_a_removed_series_starts_again_from_zero(self) -> None:
        """remove() and clear() forget the cached children with the series."""
        registry = CollectorRegistry()
        counter = CachedCounter("c", "C.", ["reason"], registry=registry)
        counter.labels(reason="reset").inc(5)
        counter.remove("reset")
        counter.labels(reason="reset").inc()
        assert registry.get_sample_value("c_total", {"reason": "reset"}) == 1
        counter.clear()
        counter.labels("reset").inc()
        assert registry.get_sample_value("c_total", {"reason": "reset"}) == 1


AMOUNTS = [0.0, 0.001, 0.0010001, 0.0025, 0.003, 0.1, 0.25, 59.9, 60.0, 60.1, 1e9, -1.0,
           math.inf]


@pytest.mark.parametrize("amount", AMOUNTS, ids=[repr(a) for a in AMOUNTS])
def test_bisect_histogram_puts_every_amount_in_prometheus_clients_bucket(amount: float) -> None:
    """Bucket bounds are inclusive (le), below the first and past the last (+Inf) alike."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    BisectHistogram("h", "H.", buckets=LATENCY_BUCKETS, registry=ours).observe(amount)
    Histogram("h", "H.", buckets=LATENCY_BUCKETS, registry=theirs).observe(amount)
    assert _samples(ours) == _samples(theirs)
