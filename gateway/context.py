"""Everything the request path shares, built once per application from Settings."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from gateway.auth.alb import AlbDataSigner
from gateway.auth.guard import Guard
from gateway.auth.headers import IdentityHeaders
from gateway.auth.issuer import SessionIssuer
from gateway.auth.pending import PendingSignIns
from gateway.cognito.provider import IdentityProvider
from gateway.config import Settings
from gateway.forwarding import TrustedProxies
from gateway.observability.metrics import Metrics
from gateway.proxy import UpstreamProxy
from gateway.sessions.cipher import Cipher
from gateway.sessions.cookies import CookiePolicy
from gateway.sessions.redis_store import RedisSessionStore
from gateway.sessions.refresh import RefreshCoordinator, longest_refresh
from gateway.sessions.store import CookieSessionStore, SessionStore

LOCK_MARGIN = 5.0  # a refresh lock outlives the longest refresh by this much
ALB_SIGNER = "arn:aws:elasticloadbalancing:local:000000000000:loadbalancer/app/cognito-gateway"


@dataclass
class GatewayContext:
    settings: Settings
    metrics: Metrics
    idp_http: aiohttp.ClientSession
    provider: IdentityProvider
    store: SessionStore
    pending: PendingSignIns
    issuer: SessionIssuer
    refresher: RefreshCoordinator
    alb: AlbDataSigner
    guard: Guard
    proxy: UpstreamProxy
    trusted: TrustedProxies
    shutting_down: bool = False

    @classmethod
    def create(cls, settings: Settings, metrics: Metrics) -> GatewayContext:
        """Wire the components; network clients are opened here and closed by `close`."""
        s = settings
        idp_http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                         headers={"User-Agent": "cognito-gateway"})
        provider = IdentityProvider(s, idp_http, metrics)
        cookies = CookiePolicy(s.session.cookie_name, s.session.cookie_secure,
                               s.session.cookie_samesite)
        cipher = Cipher(s.session.secret)
        store: SessionStore
        if s.session.store == "redis":
            store = RedisSessionStore(
                cookies, cipher, s.session,
                lock_seconds=longest_refresh(s.cognito.timeout_seconds) + LOCK_MARGIN)
        else:
            store = CookieSessionStore(cookies, cipher, s.session.lifetime_seconds)
        pending = PendingSignIns(cookies, cipher)
        issuer = SessionIssuer(s, provider)
        refresher = RefreshCoordinator(store.coordinate(issuer.refreshed), metrics)
        alb = AlbDataSigner(s.session.secret[0], issuer=s.issuer, client_id=s.cognito.client_id,
                            signer=ALB_SIGNER)
        guard = Guard(s, provider=provider, store=store, refresher=refresher,
                      headers=IdentityHeaders(s.headers, alb), pending=pending, metrics=metrics)
        trusted = TrustedProxies(s.server.trusted_proxies)
        proxy = UpstreamProxy(s.upstream, public_url=s.server.public_url, trusted=trusted,
                              cookies=cookies, metrics=metrics,
                              body_timeout=s.server.client_body_timeout_seconds)
        return cls(settings=s, metrics=metrics, idp_http=idp_http, provider=provider, store=store,
                   pending=pending, issuer=issuer, refresher=refresher, alb=alb, guard=guard,
                   proxy=proxy, trusted=trusted)

    async def close(self) -> None:
        await self.proxy.close()
        await self.store.close()
        await self.idp_http.close()
