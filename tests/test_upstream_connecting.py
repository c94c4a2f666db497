"""UpstreamFailures.connecting(): network failures before the response become 502/504."""

from __future__ import annotations

import pytest

from gateway.errors import UpstreamConnectError, UpstreamTimeout
from gateway.observability.metrics import Metrics
from gateway.upstream.client import ConnectError, ConnectionClosed, ReadTimeout
from gateway.upstream.failures import UpstreamFailures


@pytest.mark.parametrize(("failure", "expected", "reason"), [
    (ConnectError("refused"), UpstreamConnectError, "connect"),
    (ReadTimeout("slow"), UpstreamTimeout, "timeout"),
    (ConnectionClosed("gone"), UpstreamConnectError, "reset"),
    (ConnectionRefusedError(), UpstreamConnectError, "connect"),
], ids=["connect", "timeout", "closed", "os-error"])
def test_a_network_failure_becomes_an_upstream_error_and_counts(
        failure: Exception, expected: type[Exception], reason: str) -> None:
    """The block raises the error tree's UpstreamError caused by the failure, counted once."""
    metrics = Metrics()
    with pytest.raises(expected) as raised, UpstreamFailures(metrics).connecting():
        raise failure
    assert raised.value.__cause__ is failure
    assert metrics.registry.get_sample_value(
        "cognito_gateway_upstream_errors_total", {"reason": reason}) == 1.0


def test_other_errors_pass_through_untouched() -> None:
    """An error that is no network failure leaves the block as it is, uncounted."""
    failures = UpstreamFailures(Metrics())
    with pytest.raises(KeyError), failures.connecting("the upstream WebSocket"):
        raise KeyError("x")
