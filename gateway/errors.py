"""The gateway's error tree. Errors say what went wrong; gateway/translate.py alone says what
each one looks like over HTTP (status, JSON code, page), in one table.

```
GatewayError
├── ConfigError                    bad settings; lists every problem by key
├── IdPError                       talking to the identity provider failed (reason: a label)
│   ├── DiscoveryError             openid-configuration missing or malformed
│   ├── JWKSError                  signing keys could not be fetched or parsed
│   └── TokenEndpointError         /oauth2/token (or /revoke) answered with an error
├── TokenValidationError           a token failed verification (reason: a bounded label)
├── SignInError                    the callback could not complete a sign-in
├── RequestRefused                 refused before any decision (reason: a bounded label)
│   ├── BadTarget                  an ambiguous or malformed request target
│   ├── UnknownEndpoint            a path under /oauth2/ the gateway does not serve
│   ├── MethodNotAllowed           a gateway endpoint called with another method
│   └── TooManyWebSockets          upstream.max_websockets are open already
├── ClientRequestError             the client's request cannot be forwarded as it was sent
│   ├── RequestBodyTooLarge        over upstream.max_request_body_bytes
│   └── RequestBodyTimeout         the body stalled past client_body_timeout_seconds
├── AuthError                      the request may not pass the guard
│   ├── Unauthenticated            no session and no acceptable bearer token
│   │   ├── InvalidBearerToken     a bearer token was sent and failed verification
│   │   └── SignInRequired         ... and the answer names the way to sign in (or is it)
│   └── Forbidden                  signed in, but a rule or allowed_groups says no
│       └── AccessDenied           ... with who asked and what the deciding rule requires
├── SessionError                   the session cannot serve this request
│   ├── RefreshRejected            the IdP refused the refresh token: sign in again
│   ├── SessionUnavailable         its tokens expired while the IdP is unavailable
│   └── SessionStoreUnavailable    the session store (Redis) cannot be reached
└── UpstreamError                  forwarding to the app failed before the response started
    ├── UpstreamConnectError       refused, reset or unreachable
    └── UpstreamTimeout            no answer in time
```

`network_failure_reason` classifies a client-side network exception as a bounded reason
("timeout", "connect", "reset"); gateway/upstream/failures.py and the IdP client turn that into
the errors above.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from collections.abc import Mapping


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
    """A sign-in could not complete; shown to the browser with `code` and `hint`.

    `transient` when the IdP failed (trying again may work) rather than refused.
    """

    def __init__(self, code: str, hint: str, *, transient: bool = False) -> None:
        super().__init__(f"{code}: {hint}")
        self.code = code
        self.hint = hint
        self.transient = transient


class RequestRefused(GatewayError):
    """The request was refused before any decision; `reason` labels the refusal metric."""

    reason = "bad_request"

    def __init__(self, detail: str, message: str) -> None:
        super().__init__(message)
        self.detail = detail


class BadTarget(RequestRefused):
    """The request target is malformed, or ambiguous between strict and lenient servers.

    `detail` names the class of the problem (encoded_slash, ambiguous_dot_segment, ...).
    """

    reason = "bad_target"


class UnknownEndpoint(RequestRefused):
    """A path under /oauth2/ that the gateway does not serve (it is never proxied)."""

    reason = "unknown_endpoint"


class MethodNotAllowed(RequestRefused):
    """A gateway endpoint called with a method it does not answer."""

    reason = "method_not_allowed"

    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__("method", f"this endpoint answers {', '.join(allowed)}")
        self.allowed = allowed


class TooManyWebSockets(RequestRefused):
    """`upstream.max_websockets` sockets are open already; the upgrade is refused."""

    reason = "too_many_websockets"


class AuthError(GatewayError):
    """The request may not pass the guard."""


class Unauthenticated(AuthError):
    """No session and no acceptable bearer token."""


class InvalidBearerToken(Unauthenticated):
    """A bearer token was sent and failed verification; `reason` is the bounded label."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid bearer token: {reason}")
        self.reason = reason


class SignInRequired(Unauthenticated):
    """No principal where one is needed; the answer leads to the sign-in.

    `return_to` is the target to come back to (the original one, for forward-auth) and
    `identity_provider` the deciding rule's. With `redirect` the answer is the redirect to the
    sign-in itself (forward-auth's `redirect=1`), else a 401 that names it.
    """

    def __init__(self, message: str, *, return_to: str, identity_provider: str | None = None,
                 redirect: bool = False) -> None:
        super().__init__(message)
        self.return_to = return_to
        self.identity_provider = identity_provider
        self.redirect = redirect


class Forbidden(AuthError):
    """Signed in, but a rule or `auth.allowed_groups` does not let this principal in."""


class AccessDenied(Forbidden):
    """A rule refused the request: `required` is what it requires, in the rules' own words
    ({"groups": [...], "scopes": [...], ...}, or {"action": "deny"}), `rule` its label.

    `username`, `groups` and `signed_in_with` ("session" or "bearer") say who was refused, when
    known; `page` whether the answer is an HTML page (a browser navigation); `return_to` is the
    target refused (the original one, for forward-auth).
    """

    def __init__(self, message: str, *, rule: str, required: Mapping[str, Any],
                 username: str | None = None, groups: tuple[str, ...] = (),
                 signed_in_with: str | None = None, page: bool = False,
                 return_to: str = "/") -> None:
        super().__init__(message)
        self.rule = rule
        self.required = required
        self.username = username
        self.groups = groups
        self.signed_in_with = signed_in_with
        self.page = page
        self.return_to = return_to


class SessionError(GatewayError):
    """The request's session cannot serve it."""


class RefreshRejected(SessionError):
    """The IdP refused the session's refresh token (revoked, expired): sign in again."""


class SessionUnavailable(SessionError):
    """The session's tokens expired and could not be refreshed because the IdP is unavailable."""


class SessionStoreUnavailable(SessionError):
    """The session store (Redis) cannot be reached."""


class ClientRequestError(GatewayError):
    """The client's request cannot be forwarded as it was sent."""


class RequestBodyTooLarge(ClientRequestError):
    """The request body exceeds `upstream.max_request_body_bytes`."""


class RequestBodyTimeout(ClientRequestError):
    """The client stopped sending its body for longer than `client_body_timeout_seconds`."""


class UpstreamError(GatewayError):
    """Forwarding to the upstream failed before the response started; `reason` is the label
    of `upstream_errors_total`."""

    reason = "connect"


class UpstreamConnectError(UpstreamError):
    """The upstream refused or dropped the connection."""

    reason = "connect"


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""

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
