"""The one translation point from the upstream side's network failures to the error tree.

The HTTP proxy (over gateway/upstream/client) and the WebSocket proxy (over aiohttp's client)
talk to the app through `UpstreamFailures`:

- `connecting()` wraps everything up to the upstream's response head and maps a failure to
  `UpstreamTimeout` (504) or `UpstreamConnectError` (502);
- `aborted(exc, status)` is for a failure while relaying a body whose response already
  started: the only honest move left is to cut the client's connection (a truncated body must
  never look complete, and no second response may follow the first), so it becomes
  `UpstreamAborted`, which the request layer logs once and the listener turns into a closed
  connection;
- `count(exc)` counts a failure that ends a relayed WebSocket (the caller closes the socket).

Each failure is counted here, once, in `cognito_gateway_upstream_errors_total{reason}`:
`connect`, `timeout`, `reset` (dropped before the response was complete) and `protocol` (the
upstream's bytes are not valid HTTP/1.1, or its head is over the limits). Messages name the
upstream in words, never its address.

The client going away is not an upstream failure: `ClientGone` ends the exchange without a
count (`http_requests_total{code="499"}`, as nginx logs it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

from gateway.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    network_failure_reason,
)
from gateway.upstream.client import (
    ConnectError,
    ConnectionClosed,
    RemoteProtocolError,
    TimedOut,
    TransportError,
)

if TYPE_CHECKING:
    from types import TracebackType

    from gateway.observability.metrics import Metrics

NETWORK_FAILURES = (TransportError, aiohttp.ClientError, TimeoutError, OSError)
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before its answer
_WORDS = {"timeout": "did not answer in time", "connect": "is unreachable",
          "reset": "dropped the connection", "protocol": "sent a malformed response"}


class ExchangeAborted(Exception):
    """The client's connection must end without a (further) response.

    `status` is what the request counts as: the status already sent, or 499.
    """

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class UpstreamAborted(ExchangeAborted):
    """The upstream failed after the response started; `reason` is the metric's label."""

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message, status=status)
        self.reason = reason


class ClientGone(ExchangeAborted):
    """The client closed its connection before its answer was complete."""

    def __init__(self, message: str = "the client closed the connection") -> None:
        super().__init__(message, status=CLIENT_CLOSED_REQUEST)


def failure_reason(exc: BaseException) -> str | None:
    """The bounded reason of an upstream network failure, or None if `exc` is not one."""
    if isinstance(exc, TransportError):
        if isinstance(exc, TimedOut):
            return "timeout"
        if isinstance(exc, ConnectError):
            return "connect"
        if isinstance(exc, ConnectionClosed):
            return "reset"
        if isinstance(exc, RemoteProtocolError):
            return "protocol"
    return network_failure_reason(exc)


class UpstreamFailures:
    """Translates upstream network failures into gateway errors, and counts each by reason."""

    def __init__(self, metrics: Metrics) -> None:
        errors = metrics.upstream_errors
        self._counters = {reason: errors.labels(reason=reason) for reason in _WORDS}
        self._connecting = Connecting(self, "the upstream")

    def connecting(self, what: str = "the upstream") -> Connecting:
        """Before the response started: a failure becomes a 502/504 UpstreamError."""
        if what == "the upstream":
            return self._connecting
        return Connecting(self, what)

    def aborted(self, exc: BaseException, status: int) -> UpstreamAborted:
        """After a response with `status` started: the failure counted, as the UpstreamAborted
        to raise (the client's connection is cut)."""
        reason = self.count(exc, default="reset")
        return UpstreamAborted(f"the upstream {_WORDS[reason]} after the response started",
                               status=status, reason=reason)

    def count(self, exc: BaseException, *, default: str) -> str:
        """Count a failure; its reason (`default` when it is not a known network failure)."""
        reason = failure_reason(exc) or default
        self._counters[reason].inc()
        return reason

    def words(self, reason: str) -> str:
        """What happened, in words: "dropped the connection"."""
        return _WORDS[reason]

    def translate(self, exc: BaseException, what: str) -> UpstreamError:
        """The UpstreamError for a failure before the response started (counted)."""
        reason = self.count(exc, default="connect")
        error = UpstreamTimeout if reason == "timeout" else UpstreamConnectError
        return error(f"{what} {_WORDS[reason]}")


class Connecting:
    """The block of `UpstreamFailures.connecting()`: a plain context manager (holding no
    state of its own, so one serves every request) rather than a generator-based one, whose
    set-up and tear-down were ~1.5 % of a proxied request's CPU (issue #16)."""

    __slots__ = ("_failures", "_what")

    def __init__(self, failures: UpstreamFailures, what: str) -> None:
        self._failures = failures
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, NETWORK_FAILURES):
            raise self._failures.translate(exc, self._what) from exc
