"""Redis failures, translated: one exception type with a bounded reason.

redis-py raises a wide tree (ConnectionError and its AuthenticationError, BusyLoadingError,
MasterNotFoundError; TimeoutError; ResponseError and its ReadOnlyError, ClusterDownError,
TryAgainError; RedisClusterException beside them), and its messages carry server addresses.
`classify` reduces any of them to a reason label and whether waiting may cure it;
`RedisUnavailable` is what the session store raises, a `SessionStoreUnavailable` (503)
whose message names the reason only.
"""

from __future__ import annotations

import errno
import ssl

from redis import exceptions as redis_errors
from redis.asyncio.sentinel import MasterNotFoundError

from gateway.errors import SessionStoreUnavailable

__all__ = ["RedisUnavailable", "classify", "errno_name"]


class RedisUnavailable(SessionStoreUnavailable):
    """Redis failed or could not be reached; `reason` is a bounded label (see `classify`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the session store (Redis) is unavailable: {reason}")
        self.reason = reason


def classify(exc: BaseException) -> tuple[str, bool]:
    """The bounded reason for a Redis failure, and whether retrying soon may cure it.

    Reasons: timeout, busy, auth, tls, master_not_found, loading, connect, read_only,
    cluster_down, client, error. `client` is redis-py failing inside itself: its Cluster
    client disconnects a node's idle connections after a connection error or timeout, and a
    call that took one of them meanwhile finds its socket gone mid-handshake (an
    AttributeError on the vanished writer); the next attempt gets a sound connection.
    """
    if isinstance(exc, redis_errors.RedisClusterException) and exc.__cause__ is not None:
        exc = exc.__cause__  # "cannot be connected": judge by what the nodes did
    for kinds, reason, retry in _BEFORE_TLS:
        if isinstance(exc, kinds):
            return reason, retry
    if _cause(exc, ssl.SSLCertVerificationError) is not None:
        return "tls", False  # an untrusted or mismatched certificate: waiting will not help
    for kinds, reason, retry in _AFTER_TLS:
        if isinstance(exc, kinds):
            return reason, retry
    return "error", False


_Reasons = tuple[tuple[tuple[type[BaseException], ...], str, bool], ...]
# Checked in order, first match wins: BusyLoadingError is a ConnectionError, TimeoutError an
# OSError, so the narrower kinds come first.
_BEFORE_TLS: _Reasons = (
    ((redis_errors.MaxConnectionsError,), "busy", False),
    ((redis_errors.AuthenticationError, redis_errors.AuthorizationError,
      redis_errors.NoPermissionError, redis_errors.AuthenticationWrongNumberOfArgsError),
     "auth", False),
    ((redis_errors.TimeoutError, TimeoutError), "timeout", False),
)
_AFTER_TLS: _Reasons = (
    ((MasterNotFoundError,), "master_not_found", True),
    ((redis_errors.BusyLoadingError,), "loading", True),
    ((redis_errors.ConnectionError, OSError), "connect", True),
    ((redis_errors.ReadOnlyError,), "read_only", True),
    ((redis_errors.ClusterDownError, redis_errors.TryAgainError,
      redis_errors.SlotNotCoveredError), "cluster_down", True),
    ((AttributeError,), "client", True),
)


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of `kind` in the chain of causes and contexts of `exc`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def errno_name(exc: BaseException) -> str | None:
    """The symbolic errno (`ECONNREFUSED`) behind `exc`, if an OS error caused it."""
    found = _cause(exc, OSError)
    code = getattr(found, "errno", None)
    return errno.errorcode.get(code) if isinstance(code, int) else None
