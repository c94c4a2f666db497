"""The request path's counters and histograms count without a lock, exporting the same."""

from __future__ import annotations

import pytest

from gateway.observability.metrics import LoopValue, Metrics


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
