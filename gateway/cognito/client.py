"""The token-endpoint client: code exchange, refresh, revocation.

Confidential clients authenticate with HTTP Basic (client_secret_basic); public clients send
only client_id. Every call is counted in `token_requests_total{grant_type,outcome}` and timed;
every failure raises TokenEndpointError with a diagnosis and logs one `token_endpoint_error`
line with the contract's fields. The diagnosis is the probable cause inferred from the error;
with a `confirm` callable (`cognito.doctor_at_start`: the app client read through the Cognito
API) a cause the app client's settings confirm replaces it, and the line says
`cause_confirmed=true`. Tokens, codes and secrets are never logged.

A token-endpoint 200 is never lost. With refresh-token rotation the 200 of a refresh spends the
refresh token it answers (with a grace period of 0, at once), so the caller must not lose it:
if its work after the 200 fails (the ID token's key not available yet, the session store
down, the task cancelled), presenting the spent token again would get `invalid_grant` and end
the session. So `refresh` remembers each rotating 200 by the hash of the token it spent, and
answers that token again from memory (`expires_in` counted down) instead of spending it twice.
Once the new refresh token is presented in turn, its caller has kept the 200, and the memory of
it is dropped: at most one answer per session is held.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import aiohttp

from gateway.cache import BoundedCache
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.cognito.diagnosis import OAUTH_ERRORS, diagnose
from gateway.errors import TokenEndpointError, network_failure_reason
from gateway.observability.logging import get_logger
from gateway.observability.tracing import (
    COGNITO_REQUEST_ID,
    GRANT_TYPE,
    TRACING_OFF,
    Span,
    Tracing,
)

if TYPE_CHECKING:
    from gateway.observability.metrics import Metrics

log = get_logger(__name__)
SPENT_TOKENS_REMEMBERED = 2048  # rotated refresh tokens spent lately, each with the 200 it got
SPENT_TOKEN_MEMORY_SECONDS = 600.0


class ConfirmCause(Protocol):
    """Names the cause of a token-endpoint error that facts confirm, or None."""

    def __call__(self, *, outcome: str, error_description: str | None,
                 grant_type: str) -> str | None: ...


@dataclass(frozen=True)
class TokenResponse:
    """The fields of a successful token endpoint response that the gateway uses."""

    access_token: str
    expires_in: int
    id_token: str | None
    refresh_token: str | None

    @classmethod
    def from_json(cls, doc: Any) -> TokenResponse | None:
        """Parse a successful token response; None when it is not one."""
        if not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str):
            return None
        expires_in = doc.get("expires_in", 3600)
        id_token, refresh_token = doc.get("id_token"), doc.get("refresh_token")
        if (not isinstance(expires_in, int) or isinstance(expires_in, bool)
                or not isinstance(id_token, str | None)
                or not isinstance(refresh_token, str | None)):
            return None
        return cls(doc["access_token"], expires_in, id_token, refresh_token)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class _Answer:
    """A rotating refresh's 200 and when it arrived (on the client's clock)."""

    tokens: TokenResponse
    received_at: float

    def again(self, now: float) -> TokenResponse:
        """The same tokens, their `expires_in` counted down to `now` (0 once expired: the
        new refresh token in it still refreshes)."""
        left = max(0, self.tokens.expires_in - int(now - self.received_at))
        return TokenResponse(self.tokens.access_token, left, self.tokens.id_token,
                             self.tokens.refresh_token)


class TokenClient:
    """Calls the provider's token and revocation endpoints for one app client."""

    def __init__(self, http: aiohttp.ClientSession, *, token_endpoint: str,  # noqa: PLR0913 - keyword options
                 revocation_endpoint: str | None, client_id: str, client_secret: str,
                 metrics: Metrics, timeout: float = 10.0,
                 tracing: Tracing = TRACING_OFF, confirm: ConfirmCause | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._http = http
        self._confirm = confirm
        self._clock = clock
        self._spent: BoundedCache[str, _Answer] = BoundedCache(SPENT_TOKENS_REMEMBERED,
                                                               clock=clock)
        # The hash of the refresh token each remembered answer was bought with, by the hash of
        # the token the answer carries: presenting that one shows the answer was kept.
        self._bought_with: BoundedCache[str, str] = BoundedCache(SPENT_TOKENS_REMEMBERED,
                                                                 clock=clock)
        self._tracing = tracing
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.token_endpoint = token_endpoint
        self.revocation_endpoint = revocation_endpoint
        self.client_id = client_id
        self._secret = client_secret
        self._metrics = metrics

    def use_secret(self, client_secret: str) -> None:
        """Authenticate with this client secret from the next call on (a reload)."""
        self._secret = client_secret

    async def exchange_code(self, *, code: str, redirect_uri: str,
                            code_verifier: str | None) -> TokenResponse:
        """Trade an authorization code for tokens."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            form["code_verifier"] = code_verifier
        return await self._token_call(form)

    async def refresh(self, refresh_token: str) -> TokenResponse:
        """New tokens from a refresh token (a new refresh token only with rotation).

        A refresh token this client spent in the last SPENT_TOKEN_MEMORY_SECONDS on a 200 that
        rotated it gets that 200 again, without a call (see the module docstring).
        """
        key = _hash(refresh_token)
        spent = self._spent.get(key)
        if spent is not None:
            log.info("refresh_answer_repeated", client_id=self.client_id)
            return spent.again(self._clock.time())
        previous = self._bought_with.get(key)
        if previous is not None:
            self._spent.discard(previous)
            self._bought_with.discard(key)
        tokens = await self._token_call({"grant_type": "refresh_token",
                                         "refresh_token": refresh_token})
        if tokens.refresh_token is not None and tokens.refresh_token != refresh_token:
            now, until = self._clock.time(), self._clock.time() + SPENT_TOKEN_MEMORY_SECONDS
            self._spent.put(key, _Answer(tokens, now), expires_at=until)
            self._bought_with.put(_hash(tokens.refresh_token), key, expires_at=until)
        return tokens

    async def revoke(self, refresh_token: str) -> None:
        """Revoke a refresh token (and, at Cognito, the tokens issued from it)."""
        if not self.revocation_endpoint:
            return
        with self._tracing.client_span("cognito.token", {GRANT_TYPE: "revoke"}) as span:
            status, doc, started, idp_request_id = await self._post(
                self.revocation_endpoint, {"token": refresh_token}, grant_type="revoke",
                span=span)
            if status != 200:
                raise self._failure("revoke", self.revocation_endpoint, status=status, doc=doc,
                                    started=started, idp_request_id=idp_request_id, span=span)
            self._record("revoke", "ok", started, span)

    async def _token_call(self, form: dict[str, str]) -> TokenResponse:
        grant_type = form["grant_type"]
        with self._tracing.client_span("cognito.token", {GRANT_TYPE: grant_type}) as span:
            status, doc, started, idp_request_id = await self._post(
                self.token_endpoint, form, grant_type=grant_type, span=span)
            tokens = TokenResponse.from_json(doc) if status == 200 else None
            if tokens is None:
                raise self._failure(grant_type, self.token_endpoint, status=status, doc=doc,
                                    started=started, idp_request_id=idp_request_id, span=span)
            self._record(grant_type, "ok", started, span)
            return tokens

    async def _post(self, url: str, form: dict[str, str], *, grant_type: str,
                    span: Span) -> tuple[int, Any, float, str | None]:
        headers = {"Accept": "application/json"}
        if self._secret:
            pair = f"{quote(self.client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form = {**form, "client_id": self.client_id}
        started = time.perf_counter()
        try:
            async with self._http.post(url, data=form, headers=headers, timeout=self._timeout,
                                       allow_redirects=False) as resp:
                body = await resp.read()
                status, idp_request_id = resp.status, resp.headers.get("x-amz-cognito-request-id")
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = "timeout" if network_failure_reason(exc) == "timeout" else "network_error"
            raise self._failure(grant_type, url, status=None, doc=None, started=started,
                                idp_request_id=None, outcome=outcome, span=span) from exc
        span.set_status_code(status)
        span.set_attribute(COGNITO_REQUEST_ID, idp_request_id)
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        return status, doc, started, idp_request_id

    def _failure(self, grant_type: str, url: str, *, status: int | None, doc: Any,
                 started: float, idp_request_id: str | None, span: Span,
                 outcome: str | None = None) -> TokenEndpointError:
        error = doc.get("error") if isinstance(doc, dict) else None
        error = error if isinstance(error, str) and error.isascii() and len(error) < 64 else None
        description = doc.get("error_description") if isinstance(doc, dict) else None
        description = description if isinstance(description, str) else None
        if outcome is None and error:
            outcome = error if error in OAUTH_ERRORS else "other_error"
        elif outcome is None:
            outcome = f"http_{status}" if status != 200 else "malformed"
        confirmed = self._confirm(outcome=outcome, error_description=description,
                                  grant_type=grant_type) if self._confirm else None
        hint = (f"Confirmed by the app client's settings: {confirmed}" if confirmed else
                diagnose(outcome, description=description, grant_type=grant_type,
                         public_client=not self._secret))
        duration_ms = self._record(grant_type, outcome, started, span)
        extra = {"cause_confirmed": True} if confirmed else {}
        log.warning("token_endpoint_error", grant_type=grant_type, http_status=status,
                    error=error or outcome, error_description=description, hint=hint,
                    client_id=self.client_id, token_endpoint=url, duration_ms=duration_ms,
                    idp_request_id=idp_request_id, **extra)
        return TokenEndpointError(grant_type=grant_type, outcome=outcome, http_status=status,
                                  error=error, error_description=description, hint=hint,
                                  request_id=idp_request_id)

    def _record(self, grant_type: str, outcome: str, started: float, span: Span) -> float:
        """Count and time a call (the one place every outcome passes), on its span too."""
        span.set_outcome(outcome)
        elapsed = time.perf_counter() - started
        self._metrics.token_requests.labels(grant_type=grant_type, outcome=outcome).inc()
        self._metrics.token_request_duration.labels(grant_type=grant_type).observe(elapsed)
        return round(elapsed * 1000, 1)
