"""What the IdP remembers between requests: codes, refresh tokens, hosted-UI sessions, revocations.

Everything is in memory and keyed by the opaque value the browser or client holds. Times are
Unix seconds on the IdP's clock (`GrantStore.now`, `time.time` unless a test passes its
own), the clock the tokens' iat/exp use.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

# The refresh token imitates Cognito's: a compact JWE (5 parts) of about 1.8 KB.
_JWE_HEADER = base64.urlsafe_b64encode(
    json.dumps({"cty": "JWT", "enc": "A256GCM", "alg": "RSA-OAEP"}, separators=(",", ":")).encode()
).rstrip(b"=")
_JWE_PART_BYTES = (256, 12, 1008, 16)  # encrypted key, IV, ciphertext, tag

HOSTED_UI_SESSION_SECONDS = 3600
# How long a sign-in at an external provider may take (UNCONFIRMED; SAML requests commonly
# expire within minutes).
FEDERATION_SECONDS = 600


@dataclass(frozen=True)
class SignIn:
    """One authentication event: who signed in, to which client, with which scopes, when."""

    username: str
    client_id: str
    scopes: tuple[str, ...]
    auth_time: int
    event_id: str
    nonce: str | None = None


@dataclass(frozen=True)
class AuthorizationCode:
    """An issued code and everything it is bound to."""

    sign_in: SignIn
    redirect_uri: str
    code_challenge: str | None
    expires_at: float


@dataclass
class RefreshGrant:
    """A refresh token's server-side record; `origin_jti` ties it to its access and ID tokens."""

    sign_in: SignIn
    origin_jti: str
    expires_at: float
    retired_at: float | None = None  # set when rotation replaced it
    grace_seconds: int = 0

    def usable(self, now: float) -> bool:
        """Not expired, and not past its retry grace period if rotated out."""
        if now >= self.expires_at:
            return False
        return self.retired_at is None or now < self.retired_at + self.grace_seconds


@dataclass(frozen=True)
class HostedUiSession:
    """The hosted UI's own sign-in session (its `cognito` cookie), valid one hour."""

    username: str
    auth_time: int
    expires_at: float


@dataclass(frozen=True)
class PendingFederation:
    """An authorize request waiting for the user to come back from an external provider."""

    provider: str
    authorize_query: str
    expires_at: float


@dataclass(frozen=True)
class FederatedAssertion:
    """What a provider asserted: this user id signed in, for that pending request."""

    relay_state: str
    provider: str
    user_id: str
    expires_at: float


@dataclass
class GrantStore:
    """The in-memory records of one IdP."""

    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh: dict[str, RefreshGrant] = field(default_factory=dict)
    sessions: dict[str, HostedUiSession] = field(default_factory=dict)
    revoked_origins: set[str] = field(default_factory=set)
    federations: dict[str, PendingFederation] = field(default_factory=dict)
    assertions: dict[str, FederatedAssertion] = field(default_factory=dict)
    now: Callable[[], float] = time.time

    def take_code(self, code: str) -> AuthorizationCode | None:
        """Remove and return the code's record: a code is consumed by its first presentation."""
        return self.codes.pop(code, None)

    def add_refresh(self, grant: RefreshGrant) -> str:
        """Store a grant under a new refresh token and return the token."""
        token = new_refresh_token()
        self.refresh[token] = grant
        return token

    def live_refresh(self, token: str, now: float) -> RefreshGrant | None:
        """The grant of a refresh token that is known, unexpired, unrevoked and not retired."""
        grant = self.refresh.get(token)
        if grant is None or grant.origin_jti in self.revoked_origins or not grant.usable(now):
            return None
        return grant

    def revoke_origin(self, origin_jti: str) -> None:
        """Revoke every refresh, access and ID token descending from one code exchange."""
        self.revoked_origins.add(origin_jti)

    def revoke_user(self, username: str) -> None:
        """Global sign-out: revoke every refresh token of the user and their access tokens."""
        for grant in self.refresh.values():
            if grant.sign_in.username == username:
                self.revoked_origins.add(grant.origin_jti)

    def open_session(self, username: str, auth_time: int) -> str:
        """Start a hosted-UI session and return its cookie value."""
        session_id = secrets.token_urlsafe(32)
        self.sessions[session_id] = HostedUiSession(
            username=username,
            auth_time=auth_time,
            expires_at=self.now() + HOSTED_UI_SESSION_SECONDS,
        )
        return session_id

    def session(self, session_id: str | None) -> HostedUiSession | None:
        """The live hosted-UI session for a cookie value, or None."""
        found = self.sessions.get(session_id or "")
        if found is None or self.now() >= found.expires_at:
            return None
        return found

    def close_session(self, session_id: str | None) -> None:
        """End a hosted-UI session (unknown ids are ignored)."""
        self.sessions.pop(session_id or "", None)


    def begin_federation(self, provider: str, authorize_query: str) -> str:
        """Remember an authorize request sent to a provider; return its RelayState."""
        relay_state = secrets.token_urlsafe(24)
        self.federations[relay_state] = PendingFederation(
            provider, authorize_query, self.now() + FEDERATION_SECONDS)
        return relay_state

    def federation(self, relay_state: str) -> PendingFederation | None:
        """The live pending request for a RelayState, or None."""
        found = self.federations.get(relay_state)
        if found is None or self.now() >= found.expires_at:
            return None
        return found

    def assert_federated(self, relay_state: str, provider: str, user_id: str) -> str:
        """Record a provider's successful sign-in; return the one-time code for idpresponse."""
        code = secrets.token_urlsafe(24)
        self.assertions[code] = FederatedAssertion(
            relay_state, provider, user_id, self.now() + FEDERATION_SECONDS)
        return code

    def take_federation(
        self, code: str, relay_state: str
    ) -> tuple[PendingFederation, FederatedAssertion] | None:
        """Consume a provider's code and its pending request; None unless both are live and
        belong together."""
        assertion = self.assertions.pop(code, None)
        pending = self.federation(relay_state)
        if (assertion is None or pending is None or assertion.relay_state != relay_state
                or self.now() >= assertion.expires_at):
            return None
        del self.federations[relay_state]
        return pending, assertion


def new_refresh_token() -> str:
    """An unguessable opaque token shaped like Cognito's 5-part JWE."""
    parts = [_JWE_HEADER.decode()]
    parts += [
        base64.urlsafe_b64encode(secrets.token_bytes(n)).rstrip(b"=").decode()
        for n in _JWE_PART_BYTES
    ]
    return ".".join(parts)
