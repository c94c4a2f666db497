"""The gateway's Prometheus metrics: one registry per application, names from the contract.

Label values come from bounded sets only (normalised methods, status codes, OAuth error codes,
fixed reasons); never user ids, paths or raw error text.

Counters on the request path are `CachedCounter`s: `labels()` finds the child in a dict keyed
by the arguments as given, instead of prometheus_client's checks, string conversions and lock
on every call (~5 us each, profiled; issue #16). Children are prometheus_client's own, so the
multiprocess mode of `--workers N` (values in memory-mapped files) works unchanged; there their
values are BufferedValues, written to the files once per event-loop iteration. Histograms
find their bucket by bisection.
"""

from __future__ import annotations

import asyncio
import atexit
from bisect import bisect_left
from threading import Lock
from typing import Any, Self

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.values import MutexValue

from gateway import __version__

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
                           "CONNECT", "TRACE"})


def normalise_method(method: str) -> str:
    """Client-controlled method names map to a bounded set ("other" for the rest)."""
    return method if method in KNOWN_METHODS else "other"


class LoopValue(MutexValue):
    """prometheus_client's in-process value without its lock.

    The request path's counters and histograms change only on the event loop's thread (the
    gateway runs no other thread that counts), where the lock of every `inc` only cost time
    (~3 % of a proxied request's CPU with the Python frames around it, issue #16). Values in
    multiprocess mode (`--workers N`: memory-mapped files) are never replaced by this.
    """

    def __init__(self, value: float = 0.0) -> None:
        self._value = value
        self._exemplar = None
        self._lock = Lock()  # for the exemplar methods inherited from MutexValue

    def inc(self, amount: float) -> None:
        self._value += amount

    def set(self, value: float, timestamp: float | None = None) -> None:  # noqa: ARG002 - MutexValue.set
        self._value = value

    def get(self) -> float:
        return self._value


class BufferedValue:
    """A multiprocess value (`--workers N`: prometheus_client's memory-mapped file) that counts
    in memory and adds what it counted to its file once per event-loop iteration.

    Each write to the file takes a lock and packs a float (1.9 us an `inc`, 3.1 us an
    `observe`, measured: ~9 us per proxied request); within one iteration of the loop, every
    request counting into the same value now shares one. What is counted reaches the file
    before the loop does anything else (`call_soon`), so the supervisor's /metrics reads it as
    before; without a running loop, an `inc` goes to the file at once.
    """

    __slots__ = ("_file", "_pending", "_queued")

    def __init__(self, file: Any) -> None:
        self._file = file
        self._pending = 0.0
        self._queued = False

    def inc(self, amount: float) -> None:
        self._pending += amount
        if not self._queued:
            self._queued = True
            _flushes.values.append(self)
        _flushes.schedule()

    def flush(self) -> None:
        """Add what was counted since the last flush to the file."""
        pending, self._pending, self._queued = self._pending, 0.0, False
        if pending:
            self._file.inc(pending)

    def set(self, value: float, timestamp: float | None = None) -> None:
        self._pending = 0.0
        self._file.set(value, timestamp)

    def get(self) -> float:
        return float(self._file.get()) + self._pending

    def set_exemplar(self, exemplar: Any) -> None:
        self._file.set_exemplar(exemplar)

    def get_exemplar(self) -> Any:
        return self._file.get_exemplar()


class _Flushes:
    """The BufferedValues counted into since the loop last flushed them."""

    def __init__(self) -> None:
        self.values: list[BufferedValue] = []
        # The loop a flush is scheduled on: a loop that stopped before running it leaves
        # nothing that keeps the next loop from scheduling its own.
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def schedule(self) -> None:
        """Flush in this loop's next iteration (once), or now when no loop runs."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()  # no loop (a CLI command, a test): at once
            return
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled_on = None
        values, self.values = self.values, []
        for value in values:
            value.flush()


_flushes = _Flushes()
atexit.register(_flushes.flush)  # what the last iteration counted, when the loop is gone


def _unlocked(value: Any) -> Any:
    """`value` as a LoopValue when it is the plain in-process MutexValue, as a BufferedValue
    when it is a multiprocess one, else unchanged."""
    if type(value) is MutexValue:
        return LoopValue(value.get())  # type: ignore[no-untyped-call]
    if getattr(value, "_multiprocess", False):
        return BufferedValue(value)
    return value


class CachedCounter(Counter):
    """A Counter whose `labels(...)` remembers the child for each set of arguments, and whose
    children count in a LoopValue.

    The cache holds one entry per distinct call (bounded, as label values must be).
    """

    _loop_value: LoopValue | BufferedValue | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._children: dict[object, Self] = {}
        super().__init__(*args, **kwargs)

    def _metric_init(self) -> None:
        super()._metric_init()
        self._value = _unlocked(self._value)
        if isinstance(self._value, (LoopValue, BufferedValue)):
            self._loop_value = self._value

    def inc(self, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        value = self._loop_value
        if value is None or exemplar is not None or amount < 0:
            super().inc(amount, exemplar)  # checks, exemplars, multiprocess values
            return
        value.inc(amount)

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> Self:
        key = labelvalues or tuple(labelkwargs.items())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = super().labels(*labelvalues, **labelkwargs)
        return child

    def remove(self, *labelvalues: Any) -> None:
        self._children.clear()
        super().remove(*labelvalues)

    def clear(self) -> None:
        self._children.clear()
        super().clear()


class BisectHistogram(Histogram):
    """A Histogram that finds an observation's bucket by bisection (no exemplars), counting
    in LoopValues."""

    def _metric_init(self) -> None:
        super()._metric_init()
        self._sum = _unlocked(self._sum)
        self._buckets = [_unlocked(bucket) for bucket in self._buckets]

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        if exemplar is not None:
            super().observe(amount, exemplar)
            return
        self._raise_if_not_observable()  # type: ignore[no-untyped-call]
        self._sum.inc(amount)
        self._buckets[bisect_left(self._upper_bounds, amount)].inc(1)


class Metrics:
    """Every metric the gateway exports, registered on its own CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        p = "cognito_gateway_"
        self.http_requests = CachedCounter(
            p + "http_requests", "Requests answered by the gateway.", ["method", "code"],
            registry=r)
        self.http_request_duration = BisectHistogram(
            p + "http_request_duration_seconds", "Time to answer a request (to response start "
            "for proxied requests).", buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_request_duration = BisectHistogram(
            p + "upstream_request_duration_seconds", "Time until the upstream's response headers.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_errors = CachedCounter(p + "upstream_errors", "Failed upstream requests.",
                                             ["reason"], registry=r)
        self.auth_decisions = CachedCounter(
            p + "auth_decisions", "Guard decisions, by the deciding rule's index or `default`.",
            ["decision", "rule"], registry=r)
        self.token_requests = Counter(p + "token_requests", "Calls to the IdP token endpoint.",
                                      ["grant_type", "outcome"], registry=r)
        self.token_request_duration = Histogram(
            p + "token_request_duration_seconds", "Token endpoint latency.", ["grant_type"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.session_refreshes = Counter(p + "session_refreshes", "Session token refreshes.",
                                         ["outcome"], registry=r)
        self.jwks_fetches = Counter(p + "jwks_fetches", "JWKS fetches.", ["outcome"], registry=r)
        self.token_validation_failures = Counter(
            p + "token_validation_failures", "Tokens that failed verification.", ["reason"],
            registry=r)
        self.sign_ins = Counter(p + "sign_ins", "Completed and failed sign-ins.", ["outcome"],
                                registry=r)
        self.sign_outs = Counter(p + "sign_outs", "Sign-outs.", registry=r)
        self.ready = Gauge(p + "ready", "1 when the gateway is ready to serve.", registry=r)
        self.requests_refused = Counter(
            p + "requests_refused", "Requests refused before any decision (bad_target, "
            "unknown_endpoint, method_not_allowed, malformed, ...).", ["reason"], registry=r)
        self.reauthentications = Counter(
            p + "reauthentications", "Why signed-in users had to sign in again.", ["reason"],
            registry=r)
        self.config_reloads = Counter(p + "config_reloads", "Configuration reloads.",
                                      ["outcome"], registry=r)
        self.build_info = Gauge(p + "build_info", "Build information.", ["version"], registry=r)
        self.build_info.labels(version=__version__).set(1)
        # Registered with the first lost line (see log_lines_lost).
        self.log_lines_dropped = Counter(
            p + "log_lines_dropped", "Log lines lost because the log destination failed "
            "(a full disk, a closed pipe).", registry=None)
        self._log_lines_dropped_registered = False

    def count_request(self, method: str, status: int, seconds: float) -> None:
        """One answered request: `http_requests_total{method,code}` and its duration."""
        self.http_requests.labels(normalise_method(method), status).inc()  # method, code
        self.http_request_duration.observe(seconds)

    def log_lines_lost(self, count: int) -> None:
        """Count log lines the sink could not write (observability/logging.py calls it).

        The series is exported from the first lost line on: until docs/observability.md lists
        it, a healthy gateway's /metrics holds exactly the documented families.
        """
        if not self._log_lines_dropped_registered:
            self._log_lines_dropped_registered = True
            self.registry.register(self.log_lines_dropped)
        self.log_lines_dropped.inc(count)


METRICS = web.AppKey("metrics", Metrics)
