"""The gateway's error tree, and the one place where low-level failures are mapped into it.

```
GatewayError
├── ConfigError                    bad settings; lists every problem by key
├── IdPError                       talking to the identity provider failed
│   ├── DiscoveryError             openid-configuration missing or malformed
│   ├── JWKSError                  signing keys could not be fetched or parsed
│   └── TokenEndpointError         /oauth2/token (or /revoke) answered with an error
├── TokenValidationError           a token failed verification (reason is a bounded label)
├── SignInError                    the callback could not complete a sign-in (400 page)
├── RequestRefused                 refused before any decision (reason is a bounded label)
│   ├── BadTarget                  400: an ambiguous or malformed request target
│   ├── UnknownEndpoint            404: a path under /oauth2/ the gateway does not serve
│   └── MethodNotAllowed           405: a gateway endpoint called with another method
├── AuthError                      the request may not pass the guard
│   ├── Unauthenticated            401: no session and no acceptable bearer token
│   ├── Forbidden                  403: signed in, but not in allowed_groups
│   ├── SessionUnavailable         503: tokens expired while the IdP is unreachable
│   └── SessionStoreUnavailable    503: the session store (Redis) cannot be reached
├── ClientRequestError             the client's request cannot be forwarded as it was sent
│   ├── RequestBodyTooLarge        413: over upstream.max_request_body_bytes
│   └── RequestBodyTimeout         408: the body stalled past client_body_timeout_seconds
└── UpstreamError                  forwarding to the app failed before the response started
    ├── UpstreamConnectError       502
    └── UpstreamTimeout            504
```

`network_failure_reason` is the single translation point from aiohttp's client exceptions to
the bounded reasons ("timeout", "connect", "reset") that the IdP client and the proxy report.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One invalid setting: the dotted key (`cognito.client_id`) and what is wrong with it."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(GatewayError):
    """The configuration is unusable; `problems` lists every bad key at once."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class IdPError(GatewayError):
    """The identity provider could not be reached or answered something unusable."""

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


class DiscoveryError(IdPError):
    """The provider's openid-configuration could not be loaded."""


class JWKSError(IdPError):
    """The provider's signing keys could not be loaded."""


class TokenEndpointError(IdPError):
    """A call to the token or revocation endpoint failed.

    `outcome` is the metric label: the OAuth error code (`invalid_grant`, ...), `http_<status>`
    for an answer without one, `timeout` or `network_error`. `hint` names the probable
    misconfiguration and its fix.
    """

    def __init__(
        self,
        *,
        grant_type: str,
        outcome: str,
        http_status: int | None,
        error: str | None,
        error_description: str | None,
        hint: str,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"token endpoint error {outcome} ({grant_type}): {hint}", reason=outcome)
        self.grant_type = grant_type
        self.outcome = outcome
        self.http_status = http_status
        self.error = error
        self.error_description = error_description
        self.hint = hint
        self.idp_request_id = request_id

    @property
    def transient(self) -> bool:
        """True when retrying later may succeed (IdP down or slow), False for a rejection."""
        return self.error is None and (
            self.outcome in {"timeout", "network_error"}
            or (self.http_status is not None and self.http_status >= 500)
        )


class TokenValidationError(GatewayError):
    """A token failed verification. `reason` is a bounded metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SignInError(GatewayError):
    """A sign-in could not complete; shown to the browser with `code` and `hint`."""

    def __init__(self, code: str, hint: str, *, status: int = 400) -> None:
        super().__init__(f"{code}: {hint}")
        self.code = code
        self.hint = hint
        self.status = status


class RequestRefused(GatewayError):
    """The request was refused before any decision; `reason` labels the refusal metric."""

    status = 400
    reason = "bad_request"
    code = "bad_request"

    def __init__(self, detail: str, message: str) -> None:
        super().__init__(message)
        self.detail = detail


class BadTarget(RequestRefused):
    """The request target is malformed, or ambiguous between strict and lenient servers.

    `detail` names the class of the problem (encoded_slash, ambiguous_dot_segment, ...).
    """

    status = 400
    reason = "bad_target"
    code = "bad_target"


class UnknownEndpoint(RequestRefused):
    """A path under /oauth2/ that the gateway does not serve (it is never proxied)."""

    status = 404
    reason = "unknown_endpoint"
    code = "not_found"


class MethodNotAllowed(RequestRefused):
    """A gateway endpoint called with a method it does not answer."""

    status = 405
    reason = "method_not_allowed"
    code = "method_not_allowed"

    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__("method", f"this endpoint answers {', '.join(allowed)}")
        self.allowed = allowed


class AuthError(GatewayError):
    """The request may not pass the guard."""

    status = 401
    code = "unauthorized"


class Unauthenticated(AuthError):
    """No session and no acceptable bearer token."""

    status = 401
    code = "unauthorized"


class Forbidden(AuthError):
    """Signed in, but outside the allowed groups."""

    status = 403
    code = "forbidden"


class SessionUnavailable(AuthError):
    """The session's tokens expired and could not be refreshed because the IdP is unavailable."""

    status = 503
    code = "idp_unavailable"


class SessionStoreUnavailable(AuthError):
    """The session store (Redis) cannot be reached."""

    status = 503
    code = "session_store_unavailable"


class ClientRequestError(GatewayError):
    """The client's request cannot be forwarded as it was sent."""

    status = 400
    code = "bad_request"


class RequestBodyTooLarge(ClientRequestError):
    """The request body exceeds `upstream.max_request_body_bytes`."""

    status = 413
    code = "request_body_too_large"


class RequestBodyTimeout(ClientRequestError):
    """The client stopped sending its body for longer than `client_body_timeout_seconds`."""

    status = 408
    code = "request_body_timeout"


class UpstreamError(GatewayError):
    """Forwarding to the upstream failed before the response started."""

    status = 502
    reason = "connect"


class UpstreamConnectError(UpstreamError):
    """The upstream refused or dropped the connection."""

    status = 502
    reason = "connect"


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""

    status = 504
    reason = "timeout"


def network_failure_reason(exc: BaseException) -> str | None:
    """Classify a client-side exception as "timeout", "connect" or "reset"; None if it is not one.

    `ServerTimeoutError` is both a timeout and a connection error in aiohttp, so timeouts are
    tested first.
    """
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout"
    if isinstance(exc, (aiohttp.ClientConnectorError, ConnectionRefusedError)):
        return "connect"
    if isinstance(exc, (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError,
                        aiohttp.ClientPayloadError, ConnectionResetError)):
        return "reset"
    if isinstance(exc, aiohttp.ClientError):
        return "connect"
    return None
