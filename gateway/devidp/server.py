"""DevIdp: the stand-in user pool served over real HTTP, and its aiohttp application."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.devidp import admin
from gateway.devidp.authorize import authorize
from gateway.devidp.cognito_api import cognito_api
from gateway.devidp.discovery import jwks, openid_configuration
from gateway.devidp.faults import Fault, faultable
from gateway.devidp.federation import idp_response, provider_sign_in_form, provider_sign_in_submit
from gateway.devidp.hosted_ui import error, login_form, login_submit, logout
from gateway.devidp.keys import SigningKeys
from gateway.devidp.revoke import revoke
from gateway.devidp.state import STATE, IdpState, faults_of
from gateway.devidp.token_endpoint import counting, token
from gateway.devidp.userinfo import userinfo

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable
    from types import TracebackType

    from gateway.devidp.model import UserPool


def build_app(st: IdpState) -> web.Application:
    """The IdP's routes: hosted-UI domain paths, the issuer's well-known paths, the user
    pools API (POST /), /_admin/."""
    app = web.Application()
    app[STATE] = st
    well_known = f"/{st.pool.pool_id}/.well-known"
    app.router.add_get(
        f"{well_known}/openid-configuration",
        faultable("discovery", faults_of, openid_configuration),
    )
    app.router.add_get(f"{well_known}/jwks.json", faultable("jwks", faults_of, jwks))
    app.router.add_get("/oauth2/authorize", authorize)
    app.router.add_post("/oauth2/token", counting(faultable("token", faults_of, token)))
    app.router.add_get("/oauth2/userInfo", faultable("userInfo", faults_of, userinfo))
    app.router.add_post("/oauth2/revoke", faultable("revoke", faults_of, revoke))
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login_submit)
    app.router.add_get("/logout", logout)
    app.router.add_get("/error", error)
    app.router.add_get("/oauth2/idpresponse", idp_response)
    app.router.add_get("/simulated-idp/{provider}/sign-in", provider_sign_in_form)
    app.router.add_post("/simulated-idp/{provider}/sign-in", provider_sign_in_submit)
    # The user pools API (cognito-idp.<region>.amazonaws.com/): ListUsers, global sign-out.
    app.router.add_post("/", faultable("cognito-api", faults_of, cognito_api))
    admin.add_admin_routes(app)
    return app


class DevIdp:
    """A local Cognito user pool: hosted UI, /oauth2/* endpoints, discovery and JWKS.

    `start()` binds `host:port` (port 0 picks a free one); `base_url` is the hosted-UI domain
    and `issuer` is `base_url/<pool id>`. `public_host` is the host name in those URLs when it
    differs from the bound address: `DevIdp(pool, "127.0.0.1", public_host="localhost")`
    serves on 127.0.0.1 as `http://localhost:<port>`, so a browser keeps the stand-in's
    cookies apart from an app on 127.0.0.1 (cookies are per host, not per port). `keys` lets
    tests share pre-generated signing keys; `now` is the IdP's clock (seconds since the epoch:
    tokens' iat/exp, code and session lifetimes), so a test can move it with the gateway's.
    """

    def __init__(
        self,
        pool: UserPool,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        keys: SigningKeys | None = None,
        public_host: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self._host = host
        self._public_host = public_host or host
        self._port = port
        self._state = IdpState(pool=pool, keys=keys or SigningKeys.generate(), now=now)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve; returns once the socket is listening."""
        if self._runner is not None:
            raise RuntimeError("DevIdp already started")
        runner = web.AppRunner(build_app(self._state), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        port = runner.addresses[0][1]
        host = f"[{self._public_host}]" if ":" in self._public_host else self._public_host
        self._state.base_url = f"http://{host}:{port}"
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving and close every connection (idempotent)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DevIdp:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The hosted-UI domain, `http://<host>:<port>`; only known once started."""
        if not self._state.base_url:
            raise RuntimeError("DevIdp not started")
        return self._state.base_url

    @property
    def issuer(self) -> str:
        """`<base_url>/<pool id>`, the `iss` of every token."""
        return f"{self.base_url}/{self.pool.pool_id}"

    @property
    def keys(self) -> SigningKeys:
        """The current signing keys (they change on rotate_keys)."""
        return self._state.keys

    @property
    def token_requests(self) -> Counter[str]:
        """Calls to /oauth2/token so far, by grant_type as sent."""
        return self._state.token_requests

    def rotate_keys(self, keys: SigningKeys | None = None) -> None:
        """New ID and access keys with new kids (or `keys`); the old ones leave the JWKS."""
        admin.rotate_keys(self._state, keys)

    def global_sign_out(self, username: str) -> None:
        """Revoke every refresh token of the user and their access tokens; KeyError if unknown."""
        admin.global_sign_out(self._state, username)

    def set_client_enabled(self, client_id: str, enabled: bool) -> None:
        """Enable or disable an app client; KeyError if unknown."""
        admin.set_client_enabled(self._state, client_id, enabled)

    def add_fault(
        self,
        endpoint: str,
        status: int | None = None,
        *,
        delay_seconds: float = 0.0,
        body: str = "",
        content_type: str = "text/html",
        count: int | None = None,
    ) -> None:
        """Arm a fault for the next `count` calls (None = until cleared) of an endpoint.

        endpoint: "token", "revoke", "userInfo", "jwks", "discovery" or "cognito-api" (the
        user pools API at POST /). Without a status the fault only delays and the endpoint
        then answers normally.
        """
        self._state.faults.add(
            endpoint,
            Fault(
                status=status,
                delay_seconds=delay_seconds,
                body=body,
                content_type=content_type,
                remaining=count,
            ),
        )

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._state.faults.clear()

    def reset_stats(self) -> None:
        """Zero the token request counters."""
        self._state.token_requests.clear()
