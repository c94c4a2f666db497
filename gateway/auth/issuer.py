"""Sessions made from token responses: at sign-in, and again at each refresh.

Only a verified ID token makes an identity. A refresh response without an ID token keeps the
verified identity; one with an ID token must name the same `sub` (OIDC Core 12.2). The session's
absolute end never moves: refresh renews tokens, not the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import TokenValidationError
from gateway.identity import Identity
from gateway.sessions.model import Session, new_session_id

if TYPE_CHECKING:
    from gateway.cognito.client import TokenResponse
    from gateway.cognito.provider import IdentityProvider
    from gateway.config import Settings


class SessionIssuer:
    """Turns token responses into sessions: after a sign-in, and after each refresh."""

    def __init__(self, settings: Settings, provider: IdentityProvider, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._settings = settings
        self._clock = clock
        self._provider = provider

    def use(self, settings: Settings) -> None:
        """Issue sessions under these settings from now on (a reload)."""
        self._settings = settings

    async def sign_in(self, tokens: TokenResponse, *, nonce: str) -> Session:
        """A fresh session (new id: no fixation) from a code exchange."""
        if tokens.id_token is None:
            raise TokenValidationError("missing_id_token", "the token response has no id_token "
                                       "(is the openid scope allowed on the app client?)")
        claims = await self._provider.verifier.verify_id_token(tokens.id_token, nonce=nonce)
        now = self._clock.time()
        return Session(
            sid=new_session_id(), identity=Identity.from_claims(claims), created_at=now,
            expires_at=now + self._settings.session.lifetime_seconds,
            tokens_expire_at=min(now + tokens.expires_in, float(claims["exp"])),
            refresh_token=tokens.refresh_token, access_token=self._kept_access(tokens),
            id_token=self._kept_id(tokens), checked_at=now)

    async def refreshed(self, session: Session) -> Session:
        """The session with tokens from the refresh grant (the Refresher of RefreshCoordinator)."""
        assert session.refresh_token is not None
        tokens = await self._provider.tokens.refresh(session.refresh_token)
        now = self._clock.time()
        expire_at = now + tokens.expires_in
        identity = session.identity
        if tokens.id_token is not None:
            claims = await self._provider.verifier.verify_id_token(tokens.id_token, nonce=None)
            if claims["sub"] != session.identity.sub:
                raise TokenValidationError("wrong_subject", "refreshed ID token names another user")
            identity = Identity.from_claims(claims)
            expire_at = min(expire_at, float(claims["exp"]))
        return session.with_tokens(
            identity=identity, tokens_expire_at=expire_at,
            refresh_token=tokens.refresh_token or session.refresh_token,
            access_token=self._kept_access(tokens),
            id_token=self._kept_id(tokens) or session.id_token, checked_at=now)

    def _kept_access(self, tokens: TokenResponse) -> str | None:
        return tokens.access_token if self._settings.session_needs_access_token else None

    def _kept_id(self, tokens: TokenResponse) -> str | None:
        # Only a non-Cognito provider needs the ID token again (id_token_hint at sign-out).
        return None if self._settings.is_cognito else tokens.id_token
