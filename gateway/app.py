"""The aiohttp application: every component built once from Settings and bound to its users.

`create_app` is where the gateway is assembled. Handlers and middlewares are closed over the
components they use; nothing looks components up per request. The few app keys set here exist
for the process around the app (server.py: shutdown) and for tests, next to their types.

The way of a request, top to bottom (see docs/architecture.md):
  listener.py -> observability/requests.py (id, target, logs, metrics, errors)
  -> dispatch.py (routing.py: a gateway endpoint, or: auth/guard.py -> upstream/proxy.py)
  -> sessions/layer.py writes the session cookie as the response starts.

`app[RECONFIGURE]` applies a reloaded configuration (reload.py, called by server.py): the
session keys, the client secret, the rules, the identity providers.

Start-up opens the shared clients and loads the IdP metadata in the background (`/ready` is 503
until discovery and JWKS are loaded and the session store answers); clean-up closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.auth.alb import AlbDataSigner, AlbKeys
from gateway.auth.bearer import BearerTokens, Verify
from gateway.auth.guard import Guard
from gateway.auth.headers import IdentityHeaders
from gateway.auth.issuer import SessionIssuer
from gateway.auth.pending import PendingSignIns
from gateway.auth.policy import AccessPolicy
from gateway.auth.principal import Principals
from gateway.auth.signin import SignIn, SignInSettings
from gateway.auth.signout import SignOut, SignOutSettings
from gateway.auth.whoami import Whoami
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.cognito.provider import PROVIDER, IdentityProvider
from gateway.dispatch import Dispatcher
from gateway.doctor.at_start import StartupDoctor
from gateway.express import EXPRESS_LANE, ExpressLane
from gateway.health import HEALTH, Health
from gateway.observability.logging import get_logger
from gateway.observability.metrics import METRICS, Metrics
from gateway.observability.requests import request_middleware
from gateway.observability.tracing import TRACING_OFF, Tracing
from gateway.routing import ROUTER, Router
from gateway.sessions.cipher import Cipher
from gateway.sessions.cookies import CookiePolicy
from gateway.sessions.layer import SessionLayer
from gateway.sessions.redis_store import RedisSessionStore
from gateway.sessions.refresh import RefreshCoordinator, longest_refresh
from gateway.sessions.store import SESSION_STORE, CookieSessionStore, SessionStore
from gateway.translate import ErrorResponses
from gateway.upstream.failures import UpstreamFailures
from gateway.upstream.forwarding import TrustedProxies
from gateway.upstream.proxy import ProxySettings, UpstreamProxy
from gateway.upstream.websocket import OPEN_SOCKETS, OpenSockets, WebSocketRelay

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.reload import Apply

log = get_logger(__name__)
ALB_SIGNER = "arn:aws:elasticloadbalancing:local:000000000000:loadbalancer/app/cognito-gateway"
LOCK_MARGIN = 5.0  # a Redis refresh lock outlives the longest refresh by this much
RECONFIGURE: web.AppKey[Apply] = web.AppKey("reconfigure")
"""Applies a reloaded configuration's live settings (reload.LIVE) to this app."""


def create_app(settings: Settings, *, metrics: Metrics | None = None,
               clock: Clock = SYSTEM_CLOCK, tracing: Tracing = TRACING_OFF) -> web.Application:
    """The gateway application for these settings."""
    s = settings
    metrics = metrics or Metrics()
    doctor = StartupDoctor(s) if s.cognito.doctor_at_start else None
    provider = IdentityProvider(s, metrics, clock=clock, tracing=tracing,
                                confirm=doctor.confirm if doctor else None)
    cookies = CookiePolicy(s.session.cookie_name, s.session.cookie_secure,
                           s.session.cookie_samesite)
    cipher = Cipher(s.session.secret, clock=clock)
    store = session_store(s, cookies, cipher, clock, tracing)
    issuer = SessionIssuer(s, provider, clock=clock)
    sessions = SessionLayer(
        store, RefreshCoordinator(store.coordinate(issuer.refreshed), metrics, clock=clock),
        metrics, refresh_before=s.session.refresh_before_expiry_seconds,
        revalidate_after=s.session.revalidate_seconds if s.session.store == "cookie" else 0,
        clock=clock)
    signers = alb_signers(s)
    identity_headers = IdentityHeaders(s.headers, signers[0])
    bearer = (BearerTokens(_verify_access_token(provider), identity_headers, clock=clock)
              if s.auth.accept_bearer_tokens else None)
    principals = Principals(sessions, bearer, identity_headers, clock=clock)
    guard = Guard(AccessPolicy(s.auth), principals, metrics)
    sign_in = SignIn(sign_in_settings(s),
                     provider=provider, pending=PendingSignIns(cookies, cipher), issuer=issuer,
                     sessions=sessions, metrics=metrics)
    sockets = OpenSockets()
    failures = UpstreamFailures(metrics)
    trusted = TrustedProxies(s.server.trusted_proxies)
    proxy = UpstreamProxy(
        ProxySettings(s.upstream, s.server.public_url, s.server.client_body_timeout_seconds,
                      s.server.max_header_bytes),
        trusted=trusted, cookies=cookies, metrics=metrics, failures=failures,
        websockets=WebSocketRelay(sockets, failures, max_sockets=s.upstream.max_websockets,
                                  max_message_bytes=s.upstream.websocket_max_message_bytes,
                                  clock=clock),
        tracing=tracing)
    sign_out = SignOut(SignOutSettings(s.server.public_url, s.logout_uri), provider=provider,
                       sessions=sessions, sockets=sockets, cookies=cookies, metrics=metrics)
    keys = AlbKeys(signers)
    health = Health(provider, store, metrics)
    router = Router({**health.endpoints(), **sign_in.endpoints(), **sign_out.endpoints(),
                     **Whoami(guard, principals, trusted).endpoints(), **keys.endpoints()},
                    keys.prefixed())

    errors = ErrorResponses(s.server.public_url)
    app = web.Application(middlewares=[request_middleware(metrics, errors, tracing, trusted)])
    app.on_response_prepare.append(sessions.write_cookies)
    app.router.add_route("*", "/{tail:.*}", Dispatcher(router, guard, sign_in, proxy).dispatch)
    background = BackgroundTasks()
    app.cleanup_ctx.append(_lifecycle(provider, proxy, store, metrics, doctor=doctor,
                                      background=background))

    def reconfigure(new: Settings) -> None:
        """Apply the settings of reload.LIVE: every other setting is as it was at start."""
        store.rekey(new.session.secret)
        new_signers = alb_signers(new)
        identity_headers.use_signer(new_signers[0])
        keys.use(new_signers)
        principals.forget_headers()
        if bearer is not None:
            bearer.forget()
        provider.use(new)
        issuer.use(new)
        sign_in.use(sign_in_settings(new))
        guard.use_policy(AccessPolicy(new.auth))
        if doctor is not None:  # reads the app client again: its secret may have changed
            doctor.use(new)
            background.start(doctor.run())

    app[METRICS], app[PROVIDER], app[SESSION_STORE] = metrics, provider, store
    app[RECONFIGURE], app[HEALTH], app[OPEN_SOCKETS], app[ROUTER] = (
        reconfigure, health, sockets, router)
    if not tracing.enabled:  # a traced request's spans are the full path's
        app[EXPRESS_LANE] = ExpressLane(router=router, guard=guard, proxy=proxy, errors=errors,
                                        metrics=metrics)
    return app


def alb_signers(s: Settings) -> list[AlbDataSigner]:
    """A signer of `x-amzn-oidc-data` per session key: the first signs, all are served."""
    return [AlbDataSigner(secret, issuer=s.issuer, client_id=s.cognito.client_id,
                          signer=ALB_SIGNER) for secret in s.session.secret]


def sign_in_settings(s: Settings) -> SignInSettings:
    """The part of `s` the sign-in endpoints read (rebuilt on each reload)."""
    return SignInSettings(s.server.public_url, s.redirect_uri, s.cognito.pkce,
                          s.identity_provider_names)


def session_store(s: Settings, cookies: CookiePolicy, cipher: Cipher, clock: Clock,
                  tracing: Tracing = TRACING_OFF) -> SessionStore:
    """The configured session store."""
    if s.session.store == "redis":
        return RedisSessionStore(
            cookies, cipher, s.session, clock=clock, tracing=tracing,
            lock_seconds=longest_refresh(s.cognito.timeout_seconds) + LOCK_MARGIN)
    return CookieSessionStore(cookies, cipher, s.session.lifetime_seconds, clock=clock)


def _verify_access_token(provider: IdentityProvider) -> Verify:
    """Verification through the provider's verifier, which exists once discovery loaded."""
    async def verify(token: str) -> dict[str, Any]:
        return await provider.verifier.verify_access_token(token)

    return verify


Lifecycle = Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]


class BackgroundTasks:
    """Tasks that run beside the app and are cancelled when it stops."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _lifecycle(provider: IdentityProvider, proxy: UpstreamProxy, store: SessionStore,
               metrics: Metrics, *, doctor: StartupDoctor | None,
               background: BackgroundTasks) -> Lifecycle:
    @contextlib.asynccontextmanager
    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await proxy.start()
        metrics.ready.set(0)
        loader = background.start(provider.load_until_ready())
        if doctor is not None:  # never delays readiness
            background.start(doctor.run())

        def loaded(task: asyncio.Task[None]) -> None:
            if task.cancelled():
                return
            exc = task.exception()
            if exc is None:
                metrics.ready.set(1)  # /ready refines it (session store, shutdown) when probed
            else:  # a bug: load_until_ready retries every IdP failure itself
                log.error("idp_loader_failed", error=type(exc).__name__, exc_info=exc)

        loader.add_done_callback(loaded)
        try:
            yield
        finally:
            metrics.ready.set(0)
            await background.cancel()
            await proxy.close()
            await store.close()
            await provider.close()

    return lifecycle


def create_metrics_app(metrics: Metrics) -> web.Application:
    """The /metrics listener."""
    async def serve_metrics(_request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    return app
