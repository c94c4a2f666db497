"""Safe probes of the IdP: what it answers, before the verdicts are drawn.

- The token probe exchanges a made-up authorization code through the gateway's own
  `TokenClient` (so client authentication is exactly the gateway's: HTTP Basic for a
  confidential client, client_id in the body for a public one). No real code is ever spent:
  `invalid_grant` means the IdP authenticated the client and allows the grant.
- The authorize probe requests `/oauth2/authorize` with the real client_id and redirect_uri and
  does not follow the redirect. Cognito sends an unregistered redirect_uri (or an unknown
  client) to its `/error?error=redirect_mismatch` page, a disabled grant back to the
  redirect_uri with `error=unauthorized_client`, and a good request on to `/login`.
- Every answer's `Date` header is kept for the clock check.
"""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import aiohttp

from gateway.cognito.authorization import authorization_url
from gateway.cognito.client import TokenClient
from gateway.cognito.http import IDP_TIMEOUT
from gateway.cognito.pkce import code_challenge, random_token
from gateway.errors import IdPError, TokenEndpointError, network_failure_reason
from gateway.observability.metrics import Metrics

if TYPE_CHECKING:
    from datetime import datetime


class AuthorizeVerdict(enum.Enum):
    """Where the IdP's /oauth2/authorize sent a probe request."""

    SIGN_IN = "sign_in"                      # on to the login page (or a code, silently)
    REDIRECT_MISMATCH = "redirect_mismatch"  # Cognito's error page: callback or client unknown
    ERROR = "error"                          # back to redirect_uri with error=<code>
    UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class AuthorizeProbe:
    """What one probe of /oauth2/authorize found: its verdict, status and any OAuth error."""

    verdict: AuthorizeVerdict
    status: int
    error: str | None = None
    error_description: str | None = None
    skew_seconds: float | None = None  # local clock minus the IdP's Date header


@dataclass(frozen=True)
class TokenProbe:
    """The token endpoint's answer to a made-up code: `outcome` is the metric label it got."""

    outcome: str
    http_status: int | None
    error_description: str | None
    hint: str


def _skew(date_header: str | None, sent: float, received: float) -> float | None:
    if not date_header:
        return None
    try:
        server: datetime = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    # Date has one-second resolution and is truncated: the IdP's clock read date .. date + 1.
    return (sent + received) / 2 - (server.timestamp() + 0.5)


async def probe_authorize(http: aiohttp.ClientSession, endpoint: str, *, client_id: str,
                          redirect_uri: str, scopes: list[str], pkce: bool) -> AuthorizeProbe:
    """GET the authorization endpoint as the gateway's sign-in would, without following it."""
    url = authorization_url(
        endpoint, client_id=client_id, redirect_uri=redirect_uri, scopes=scopes,
        state="doctor-" + random_token(16), nonce=random_token(16),
        code_challenge=code_challenge(random_token(48)) if pkce else None)
    sent = time.time()
    try:
        async with http.get(url, allow_redirects=False,
                            timeout=IDP_TIMEOUT) as resp:
            await resp.read()
            status, location = resp.status, resp.headers.get("Location", "")
            skew = _skew(resp.headers.get("Date"), sent, time.time())
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = network_failure_reason(exc) or "network_error"
        raise IdPError(f"GET {endpoint} failed: {reason}", reason=reason) from exc
    target = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    if query.get("error") == "redirect_mismatch" or (
            status == 400 and "redirect_mismatch" in location):
        return AuthorizeProbe(AuthorizeVerdict.REDIRECT_MISMATCH, status, skew_seconds=skew)
    if status in {301, 302, 303, 307} and location.startswith(redirect_uri):
        if "error" in query:
            return AuthorizeProbe(AuthorizeVerdict.ERROR, status, query["error"][:64],
                                  query.get("error_description", "")[:200] or None, skew)
        return AuthorizeProbe(AuthorizeVerdict.SIGN_IN, status, skew_seconds=skew)
    # Cognito goes on to /login; other OpenID providers to their own sign-in pages.
    if (status in {301, 302, 303, 307} and "error" not in query) or status == 200:
        return AuthorizeProbe(AuthorizeVerdict.SIGN_IN, status, skew_seconds=skew)
    return AuthorizeProbe(AuthorizeVerdict.UNEXPECTED, status, skew_seconds=skew)


async def probe_token(http: aiohttp.ClientSession, endpoint: str, *, client_id: str,
                      client_secret: str, redirect_uri: str, pkce: bool) -> TokenProbe:
    """Exchange a made-up code exactly as the gateway exchanges real ones; report the answer."""
    client = TokenClient(http, token_endpoint=endpoint, revocation_endpoint=None,
                         client_id=client_id, client_secret=client_secret, metrics=Metrics())
    verifier = random_token(48) if pkce else None
    try:
        await client.exchange_code(code=str(uuid.uuid4()), redirect_uri=redirect_uri,
                                   code_verifier=verifier)
    except TokenEndpointError as exc:
        return TokenProbe(exc.outcome, exc.http_status, exc.error_description, exc.hint)
    return TokenProbe("accepted", 200, None, "The token endpoint accepted a made-up code.")
