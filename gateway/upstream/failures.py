"""The one translation point from the upstream side's network failures to the error tree.

Both the HTTP proxy and the WebSocket proxy talk to the app through `UpstreamFailures`:
`connecting()` wraps everything up to the upstream's response head, and maps a failure to
`UpstreamTimeout` (504) or `UpstreamConnectError` (502); `streaming()` wraps relaying a body
whose response already started, where the only honest move is to re-raise so the client's
connection aborts (a truncated body must never look complete). Either way the failure is
counted here, once, in `cognito_gateway_upstream_errors_total{reason}` (connect, timeout,
reset). Messages name the upstream in words, never its address.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp

from gateway.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    network_failure_reason,
)
from gateway.observability.metrics import Metrics

NETWORK_FAILURES = (aiohttp.ClientError, TimeoutError, OSError)
_WORDS = {"timeout": "did not answer in time", "connect": "is unreachable",
          "reset": "dropped the connection"}


class UpstreamFailures:
    def __init__(self, metrics: Metrics) -> None:
        self._errors = metrics.upstream_errors

    @contextmanager
    def connecting(self, what: str = "the upstream") -> Iterator[None]:
        """Before the response started: a failure becomes a 502/504 UpstreamError."""
        try:
            yield
        except NETWORK_FAILURES as exc:
            raise self._translate(exc, what) from exc

    @contextmanager
    def streaming(self) -> Iterator[None]:
        """After the response started: a failure is counted and re-raised (the client's
        connection aborts)."""
        try:
            yield
        except NETWORK_FAILURES as exc:
            self._errors.labels(reason=network_failure_reason(exc) or "reset").inc()
            raise

    def _translate(self, exc: BaseException, what: str) -> UpstreamError:
        reason = network_failure_reason(exc) or "connect"
        self._errors.labels(reason=reason).inc()
        error = UpstreamTimeout if reason == "timeout" else UpstreamConnectError
        return error(f"{what} {_WORDS[reason]}")
