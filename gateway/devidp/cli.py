"""The blocking entry point behind `cognito-gateway dev-idp`."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

from gateway.devidp.model import UserPool, demo_pool
from gateway.devidp.poolfile import load_pool
from gateway.devidp.server import DevIdp

if TYPE_CHECKING:
    from pathlib import Path

DEMO_CALLBACK_URL = "http://127.0.0.1:4180/oauth2/callback"
DEMO_LOGOUT_URL = "http://127.0.0.1:4180/oauth2/signed_out"


def serve_forever(host: str, port: int, config: Path | None) -> None:
    """Serve the pool from `config` (the demo pool when None) until SIGINT or SIGTERM.

    A bad config raises ValueError listing every problem before anything binds.
    """
    asyncio.run(_serve(_pool(config), host, port))


def _pool(config: Path | None) -> UserPool:
    if config is None:
        return demo_pool(DEMO_CALLBACK_URL, DEMO_LOGOUT_URL)
    return load_pool(config)


async def _serve(pool: UserPool, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    idp = DevIdp(pool, host=host, port=port)
    await idp.start()
    try:
        print(describe(idp), flush=True)
        await stop.wait()
    finally:
        await idp.stop()


def describe(idp: DevIdp) -> str:
    """What a developer needs to point a gateway at this IdP: URLs, clients, users."""
    lines = [
        f"dev IdP for user pool {idp.pool.pool_id} (region {idp.pool.region})",
        f"  hosted UI domain: {idp.base_url}",
        f"  issuer:           {idp.issuer}",
        f"  discovery:        {idp.issuer}/.well-known/openid-configuration",
    ]
    for client in idp.pool.clients:
        secret = client.client_secret if client.client_secret is not None else "(public client)"
        lines += [
            f"  client {client.client_id}  secret: {secret}",
            f"    flows: {', '.join(client.allowed_flows)}",
            f"    scopes: {' '.join(client.allowed_scopes)}",
        ]
        lines += [f"    callback: {url}" for url in client.callback_urls]
        lines += [f"    sign-out: {url}" for url in client.logout_urls]
    for user in idp.pool.users:
        lines.append(f"  user {user.username}  password: {user.password}")
    return "\n".join(lines)
