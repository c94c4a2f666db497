"""Forward-auth (/oauth2/auth) decides on the original URI, normalised, and only if trusted."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import GatewayFactory

PUBLIC = '["/public/*"]'


@pytest.mark.parametrize(("trusted", "headers", "status"), [
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/public/page"}, 202),
    ("127.0.0.1/32", {"X-Original-URI": "/public/page?x=1"}, 202),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/public/../secret"}, 401),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/secret"}, 401),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/public/%2e%2e/secret"}, 400),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/public%2F..%2Fsecret"}, 400),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/public;x/..;/secret"}, 400),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "http://evil/public/page"}, 202),
    ("10.0.0.0/8", {"X-Forwarded-Uri": "/public/page"}, 401),
    ("", {"X-Original-URI": "/public/page"}, 401),
    ("127.0.0.1/32", {}, 401),
])
async def test_original_uri_from_trusted_proxies_is_normalised_then_decided(
        make_gateway: GatewayFactory, trusted: str, headers: dict[str, str],
        status: int) -> None:
    """A public original URI passes (202) only when a trusted proxy sent it; dot segments are
    resolved before deciding; ambiguous URIs are refused; without it nothing is public."""
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS=PUBLIC,
                                 GATEWAY_SERVER_TRUSTED_PROXIES=trusted)
    async with aiohttp.ClientSession() as http, http.get(
            f"{gateway.url}/oauth2/auth", headers=headers) as resp:
        assert resp.status == status
        assert not any(k.lower().startswith("x-auth-request-") for k in resp.headers)
