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
    cluster_down, error.
    """
    if isinstance(exc, redis_errors.RedisClusterException) and exc.__cause__ is not None:
        exc = exc.__cause__  # "cannot be connected": judge by what the nodes did
    if isinstance(exc, redis_errors.MaxConnectionsError):
        return "busy", False
    if isinstance(exc, (redis_errors.AuthenticationError, redis_errors.AuthorizationError,
                        redis_errors.NoPermissionError,
                        redis_errors.AuthenticationWrongNumberOfArgsError)):
        return "auth", False
    if isinstance(exc, (redis_errors.TimeoutError, TimeoutError)):
        return "timeout", False
    if _cause(exc, ssl.SSLCertVerificationError) is not None:
        return "tls", False  # an untrusted or mismatched certificate: waiting will not help
    if isinstance(exc, MasterNotFoundError):
        return "master_not_found", True
    if isinstance(exc, redis_errors.BusyLoadingError):
        return "loading", True
    if isinstance(exc, (redis_errors.ConnectionError, OSError)):
        return "connect", True
    if isinstance(exc, redis_errors.ReadOnlyError):
        return "read_only", True
    if isinstance(exc, (redis_errors.ClusterDownError, redis_errors.TryAgainError,
                        redis_errors.SlotNotCoveredError)):
        return "cluster_down", True
    return "error", False


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
