"""The demo app reads x-amzn-oidc-data like an ALB app: it trusts only a good signature by the
key its key endpoint serves, before exp."""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from gateway.auth.alb import AlbDataSigner
from gateway.demo.upstream import create_upstream_app
from gateway.identity import Identity
from tests.conftest import serve

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

GATEWAY_SIGNER = AlbDataSigner(Fernet.generate_key().decode(), issuer="http://idp.test/pool",
                               client_id="client", signer="gateway")
OTHER_SIGNER = AlbDataSigner(Fernet.generate_key().decode(), issuer="http://idp.test/pool",
                             client_id="client", signer="gateway")
ALICE = Identity(sub="alice-sub", username="alice", email="alice@example.com",
                 groups=("admins", "staff"), claims={"name": "Alice Liddell"})


def key_server() -> web.Application:
    """The gateway's /oauth2/public-keys/<kid>: its own PEM by kid, 404 otherwise."""
    async def public_key(request: web.Request) -> web.Response:
        if request.match_info["kid"] != GATEWAY_SIGNER.kid:
            raise web.HTTPNotFound
        return web.Response(text=GATEWAY_SIGNER.public_pem)

    app = web.Application()
    app.router.add_get("/oauth2/public-keys/{kid}", public_key)
    return app


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    """The demo app, verifying against a real key server."""
    keys, keys_url = await serve(key_server())
    app, url = await serve(create_upstream_app(public_keys_url=f"{keys_url}/oauth2/public-keys",
                                               refresh_before_seconds=120))
    yield url
    await app.cleanup()
    await keys.cleanup()


def forged_kid(token: str) -> str:
    """The token with its header's kid replaced by a path (and the signature left stale)."""
    header, _, rest = token.partition(".")
    decoded = json.loads(base64.urlsafe_b64decode(header))
    decoded["kid"] = "../../admin"
    return base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode() + "." + rest


NOW = int(time.time())


@pytest.mark.parametrize(("assertion", "badge", "detail"), [
    pytest.param(GATEWAY_SIGNER.assertion(ALICE, exp=NOW + 3600), "verified",
                 "ES256 signature verified", id="gateway-signed"),
    pytest.param(OTHER_SIGNER.assertion(ALICE, exp=NOW + 3600), "not verified", "unavailable",
                 id="unknown-key"),
    pytest.param(GATEWAY_SIGNER.assertion(ALICE, exp=NOW - 10), "not verified",
                 "signature refused", id="expired"),
    pytest.param(forged_kid(GATEWAY_SIGNER.assertion(ALICE, exp=NOW + 3600)), "not verified",
                 "no key to verify it with", id="kid-is-a-path"),
    pytest.param("not-a-jwt", "not verified", "not a JWT", id="garbage"),
])
async def test_the_page_says_whether_the_assertion_is_verified(
        demo_url: str, assertion: str, badge: str, detail: str) -> None:
    """Only the gateway's key, before exp, makes the page say "verified"."""
    headers = {"X-Auth-Request-User": "alice", "X-Amzn-Oidc-Data": assertion}
    async with aiohttp.ClientSession() as http, http.get(demo_url, headers=headers) as response:
        page = await response.text()
    css = "ok" if badge == "verified" else "bad"
    assert f'id="verification" class="badge {css}">{badge}<' in page
    assert detail in page


async def test_the_page_shows_the_identity_and_the_next_refresh(demo_url: str) -> None:
    """Name from the assertion, groups from the header, refresh = exp - refresh_before."""
    exp = NOW + 3600
    headers = {"X-Auth-Request-User": "alice", "X-Auth-Request-Groups": "admins,staff",
               "X-Auth-Request-Email": "alice@example.com",
               "X-Amzn-Oidc-Data": GATEWAY_SIGNER.assertion(ALICE, exp=exp)}
    async with aiohttp.ClientSession() as http, http.get(demo_url, headers=headers) as response:
        page = await response.text()
    assert '<span id="name">Alice Liddell</span>' in page
    assert '<li class="pill">admins</li><li class="pill">staff</li>' in page
    assert f'data-at="{exp - 120}"' in page


async def test_headers_are_escaped(demo_url: str) -> None:
    """Whatever arrives in a header is shown as text, never as markup."""
    headers = {"X-Auth-Request-User": "<script>alert(1)</script>", "X-Other": "<b>x</b>"}
    async with aiohttp.ClientSession() as http, http.get(demo_url, headers=headers) as response:
        page = await response.text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page
