"""The identity provider as the rest of the gateway sees it.

`IdentityProvider.load()` fetches discovery and JWKS (retrying with backoff until it succeeds;
`ready` stays False until then) and assembles the token client and the verifier. It also builds
the browser-facing URLs: the authorization request and the IdP sign-out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.cognito.authorization import authorization_url
from gateway.cognito.client import ConfirmCause, TokenClient
from gateway.cognito.discovery import ProviderMetadata, discover
from gateway.cognito.jwks import JWKSCache
from gateway.cognito.verify import TokenVerifier, authenticated_channel
from gateway.errors import IdPError
from gateway.observability.logging import get_logger
from gateway.observability.tracing import TRACING_OFF, Tracing

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.observability.metrics import Metrics

log = get_logger(__name__)
MAX_BACKOFF = 30.0


class IdentityProvider:
    """Discovery, keys, token client and verifier of the configured provider."""

    def __init__(self, settings: Settings, metrics: Metrics, *,
                 clock: Clock = SYSTEM_CLOCK, tracing: Tracing = TRACING_OFF,
                 confirm: ConfirmCause | None = None) -> None:
        self._settings = settings
        self._confirm = confirm
        self._clock = clock
        self._tracing = tracing
        self._session: aiohttp.ClientSession | None = None
        self._metrics = metrics
        self._metadata: ProviderMetadata | None = None
        self._jwks: JWKSCache | None = None
        self._client: TokenClient | None = None
        self._verifier: TokenVerifier | None = None

    def use(self, settings: Settings) -> None:
        """Talk to the IdP with these settings from now on (a reload: the client secret); the
        next token call authenticates with the new secret."""
        self._settings = settings
        if self._client is not None:
            self._client.use_secret(settings.cognito.client_secret)

    @property
    def ready(self) -> bool:
        return self._verifier is not None and self._jwks is not None and self._jwks.loaded

    @property
    def metadata(self) -> ProviderMetadata:
        if self._metadata is None:
            raise IdPError("identity provider metadata not loaded yet", reason="not_ready")
        return self._metadata

    @property
    def tokens(self) -> TokenClient:
        if self._client is None:
            raise IdPError("identity provider not loaded yet", reason="not_ready")
        return self._client

    @property
    def verifier(self) -> TokenVerifier:
        if self._verifier is None:
            raise IdPError("identity provider not loaded yet", reason="not_ready")
        return self._verifier

    @property
    def _http(self) -> aiohttp.ClientSession:
        """The provider's own HTTP client: no cookie jar, opened on first use, closed by
        `close`."""
        if self._session is None:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                                  headers={"User-Agent": "cognito-gateway"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def load(self) -> None:
        """Fetch discovery and JWKS once; raise DiscoveryError or JWKSError on failure."""
        s = self._settings
        metadata = await discover(self._http, s.issuer, s.cognito.domain)
        jwks = JWKSCache(self._http, metadata.jwks_uri, self._metrics, clock=self._clock,
                         tracing=self._tracing)
        await jwks.refresh()
        self._metadata, self._jwks = metadata, jwks
        self._client = TokenClient(
            self._http, token_endpoint=metadata.token_endpoint,
            revocation_endpoint=metadata.revocation_endpoint, client_id=s.cognito.client_id,
            client_secret=s.cognito.client_secret, metrics=self._metrics,
            timeout=s.cognito.timeout_seconds, tracing=self._tracing, confirm=self._confirm,
            clock=self._clock)
        self._verifier = TokenVerifier(
            jwks, issuer=metadata.issuer, client_id=s.cognito.client_id,
            bearer_client_ids=s.bearer_client_ids, cognito=s.is_cognito, metrics=self._metrics,
            clock=self._clock,
            token_channel_authenticated=authenticated_channel(metadata.token_endpoint))

    async def load_until_ready(self) -> None:
        """`load()` with exponential backoff until it succeeds (runs as a background task)."""
        delay = 0.5
        while True:
            try:
                await self.load()
            except IdPError as exc:
                log.error("idp_metadata_unavailable", error=str(exc), reason=exc.reason,
                          retry_in_seconds=delay)
                await self._clock.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
            else:
                log.info("idp_ready", issuer=self.metadata.issuer)
                return

    def authorize_url(self, *, state: str, nonce: str, code_challenge: str | None,
                      identity_provider: str | None = None) -> str:
        """The authorization-code request the browser is sent to; with `identity_provider`,
        Cognito skips its provider choice and goes straight to that provider."""
        s = self._settings
        return authorization_url(
            self.metadata.authorization_endpoint, client_id=s.cognito.client_id,
            redirect_uri=s.redirect_uri, scopes=s.cognito.scopes, state=state, nonce=nonce,
            code_challenge=code_challenge, identity_provider=identity_provider)

    def logout_url(self, *, id_token: str | None) -> str | None:
        """Where to end the IdP session: Cognito's /logout, else the OIDC end_session_endpoint."""
        s, endpoint = self._settings, self.metadata.end_session_endpoint
        if s.is_cognito:
            base = f"{s.cognito.domain.rstrip('/')}/logout" if s.cognito.domain else endpoint
            if not base:
                return None
            query = urlencode({"client_id": s.cognito.client_id, "logout_uri": s.logout_uri})
            return f"{base}?{query}"
        if not endpoint:
            return None
        params = {"client_id": s.cognito.client_id, "post_logout_redirect_uri": s.logout_uri}
        if id_token:
            params["id_token_hint"] = id_token
        return f"{endpoint}?{urlencode(params)}"


PROVIDER = web.AppKey("provider", IdentityProvider)
