"""The demo stack: dev IdP, demo upstream and gateway, wired together on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from dataclasses import dataclass

from aiohttp import web
from cryptography.fernet import Fernet

from gateway.app import create_app
from gateway.cognito.provider import PROVIDER
from gateway.config import Settings, load_settings
from gateway.demo.upstream import create_upstream_app
from gateway.devidp import DevIdp, demo_pool

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - the dev IdP's published demo credentials
PARTNER_USER = "carol@partner.example"
PARTNER_PASSWORD = "carol-password-1"  # noqa: S105 - the simulated SAML provider's demo user


@dataclass
class DemoStack:
    """The running demo: its dev IdP, the gateway's URL and settings, and the servers to stop."""

    idp: DevIdp
    gateway_url: str
    settings: Settings
    runners: list[web.AppRunner]

    async def stop(self) -> None:
        for runner in reversed(self.runners):
            await runner.cleanup()
        await self.idp.stop()


RECENT_PORTS = 256
_handed_out: deque[int] = deque(maxlen=RECENT_PORTS)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, and none of the last RECENT_PORTS this
    process was given: each port is free when asked for, but not yet bound by whoever asked, so
    two calls in a row could otherwise get the same one (it happened: an nginx whose status
    and service ports were one port)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.append(port)
            return port


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def start_demo(*, gateway_port: int = 4180, idp_port: int = 4181,
                     upstream_port: int = 4182) -> DemoStack:
    """Start everything on 127.0.0.1 (port 0: a free one); returns once the gateway is ready."""
    gateway_port, upstream_port = gateway_port or free_port(), upstream_port or free_port()
    public_url = f"http://127.0.0.1:{gateway_port}"
    pool = demo_pool(f"{public_url}/oauth2/callback", f"{public_url}/oauth2/signed_out")
    # The stand-in on its own host name, like a real Cognito domain: its hosted-UI cookies
    # never reach the app on 127.0.0.1.
    idp = DevIdp(pool, host="127.0.0.1", port=idp_port, public_host="localhost")
    await idp.start()
    settings = load_settings(environ={
        "GATEWAY_SERVER_LISTEN": f"127.0.0.1:{gateway_port}",
        "GATEWAY_SERVER_PUBLIC_URL": public_url,
        "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}",
        "GATEWAY_COGNITO_ISSUER": idp.issuer,
        "GATEWAY_COGNITO_DOMAIN": idp.base_url,
        "GATEWAY_COGNITO_CLIENT_ID": pool.clients[0].client_id,
        "GATEWAY_COGNITO_CLIENT_SECRET": pool.clients[0].client_secret or "",
        "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
        "GATEWAY_SESSION_COOKIE_SECURE": "false",
        "GATEWAY_HEADERS_SETS": "x-auth-request,alb",
    })
    upstream = create_upstream_app(
        public_keys_url=f"{public_url}/oauth2/public-keys",
        refresh_before_seconds=settings.session.refresh_before_expiry_seconds)
    upstream_runner = await _serve(upstream, upstream_port)
    app = create_app(settings)
    gateway_runner = await _serve(app, gateway_port)
    for _ in range(200):
        if app[PROVIDER].ready:
            break
        await asyncio.sleep(0.05)
    return DemoStack(idp, public_url, settings, [upstream_runner, gateway_runner])
