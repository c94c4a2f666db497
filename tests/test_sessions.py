"""The session cookie: encryption, tampering, key rotation, sizes; and the endpoints that
read a session (/oauth2/userinfo, /oauth2/auth) or report health (/ping, /ready)."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import TYPE_CHECKING

import jwt
import pytest
from cryptography.fernet import Fernet

from gateway.devidp import DevIdp, UserPool
from tests.conftest import (
    ALICE,
    GatewayFactory,
    RunningGateway,
    gateway_client,
    gateway_env,
    sign_in_cookies,
    start_gateway,
)
from tests.support.browser import ScriptedBrowser
from tests.support.ports import listening_socket

if TYPE_CHECKING:
    import socket

    import aiohttp

BIG_ATTRIBUTES = {f"custom:attr{i}": "v" * 60 for i in range(12)}


async def _status(http: aiohttp.ClientSession, url: str, cookie: str) -> int:
    async with http.get(url, headers={"Cookie": cookie, "Accept": "application/json"}) as resp:
        return resp.status


def _sealed(cookies: dict[str, str]) -> str:
    """The session value spread over the chunk cookies, in order."""
    return "".join(v for k, v in sorted(cookies.items()) if k.startswith("_cognito_gateway"))


def _cookie_values(cookie: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in cookie.split("; "))


async def test_cookies_are_secure_when_configured(make_gateway: GatewayFactory,
                                                  http: aiohttp.ClientSession) -> None:
    """cookie_secure (the default) marks every gateway cookie Secure."""
    gateway = await make_gateway(GATEWAY_SESSION_COOKIE_SECURE="true")
    async with http.get(f"{gateway.url}/", allow_redirects=False,
                        headers={"Accept": "text/html"}) as resp:
        assert resp.status == 302
        set_cookie = resp.headers["Set-Cookie"].lower()
    assert "; secure" in set_cookie
    assert "path=/oauth2/callback" in set_cookie


async def test_session_cookie_is_encrypted_httponly_lax(gateway: RunningGateway) -> None:
    """The cookie reveals nothing and carries the safe attributes."""
    async with ScriptedBrowser() as browser:
        await browser.sign_in(f"{gateway.url}/", ALICE.username, ALICE.password)
        headers = [h for h in browser.set_cookie_headers if h.startswith("_cognito_gateway=")]
    assert headers
    attributes = headers[-1].lower()
    for attribute in ("httponly", "samesite=lax", "max-age=86400", "path=/"):
        assert attribute in attributes
    sealed = _sealed(browser.cookies_for(gateway.url))
    assert "alice" not in sealed
    plain = Fernet(gateway.settings.session.secret[0].encode()).decrypt(sealed.encode())
    assert b'"username":"alice"' in plain


async def test_tampered_cookie_is_no_session(gateway: RunningGateway,
                                             http: aiohttp.ClientSession) -> None:
    cookie = await sign_in_cookies(gateway.url)
    name, value = cookie.split("=", 1)
    flipped = value[:40] + ("A" if value[40] != "A" else "B") + value[41:]
    assert await _status(http, f"{gateway.url}/x", f"{name}={flipped}") == 401
    assert await _status(http, f"{gateway.url}/x", cookie) == 200


@pytest.mark.usefixtures("make_gateway")
async def test_new_key_in_front_keeps_sessions_and_old_key_removed_ends_them(
        idp: DevIdp, http: aiohttp.ClientSession,
        upstream: str, gateway_url: str, gateway_socket: socket.socket) -> None:
    """Key rotation: [new, old] still reads old cookies and writes with the new key."""
    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    port = gateway_socket.getsockname()[1]
    first_runner, first = await start_gateway(
        gateway_env(idp, upstream, gateway_url, GATEWAY_SESSION_SECRET=old_key), gateway_socket)
    cookie = await sign_in_cookies(first.url)
    await first_runner.cleanup()
    with listening_socket(port) as sock:
        rotated_runner, rotated = await start_gateway(gateway_env(
            idp, upstream, gateway_url, GATEWAY_SESSION_SECRET=f"{new_key},{old_key}"), sock)
        try:
            assert await _status(http, f"{rotated.url}/x", cookie) == 200
            fresh = await sign_in_cookies(rotated.url)
            Fernet(new_key.encode()).decrypt(_sealed(_cookie_values(fresh)).encode())
        finally:
            await rotated_runner.cleanup()
    with listening_socket(port) as sock:
        only_new_runner, only_new = await start_gateway(
            gateway_env(idp, upstream, gateway_url, GATEWAY_SESSION_SECRET=new_key), sock)
        try:
            assert await _status(http, f"{only_new.url}/x", cookie) == 401
            assert await _status(http, f"{only_new.url}/x", fresh) == 200
        finally:
            await only_new_runner.cleanup()
    assert only_new.metrics.registry.get_sample_value(
        "cognito_gateway_reauthentications_total", {"reason": "key_rotated"}) == 1


@pytest.fixture
def pool(gateway_url: str) -> UserPool:
    """Alice with many attributes, so tokens are at least as large as real Cognito ones."""
    return UserPool(users=[replace(ALICE, attributes={**ALICE.attributes, **BIG_ATTRIBUTES})],
                    clients=[gateway_client(gateway_url)])


@pytest.mark.parametrize("pass_access_token", ["false", "true"])
async def test_no_cookie_exceeds_the_browser_limit_with_real_token_sizes(
        make_gateway: GatewayFactory, http: aiohttp.ClientSession,
        pass_access_token: str) -> None:
    """With a ~1.8 KB refresh token and large ID/access tokens, every cookie stays < 4096 B
    (the session splits into chunks when it must) and the session still works."""
    gateway = await make_gateway(GATEWAY_HEADERS_PASS_ACCESS_TOKEN=pass_access_token)
    cookie = await sign_in_cookies(gateway.url)
    for name, value in _cookie_values(cookie).items():
        assert len(name) + len(value) < 4096
    if pass_access_token == "true":
        assert "_cognito_gateway_1" in _cookie_values(cookie)
    async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie}) as resp:
        echoed = await resp.json()
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert ("x-auth-request-access-token" in headers) == (pass_access_token == "true")


async def test_alb_data_header_verifies_like_aws_alb(make_gateway: GatewayFactory,
                                                     http: aiohttp.ClientSession) -> None:
    """x-amzn-oidc-data: padded base64url ES256, signer/client/kid in its header, key served
    as PEM by kid; ALB-style app code verifies it unchanged."""
    gateway = await make_gateway(GATEWAY_HEADERS_SETS="x-auth-request,alb")
    cookie = await sign_in_cookies(gateway.url)
    async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie}) as resp:
        headers = {k.lower(): v for k, v in (await resp.json())["headers"]}
    data = headers["x-amzn-oidc-data"]
    assert headers["x-amzn-oidc-identity"] == ALICE.subject
    parts = data.split(".")
    assert len(parts) == 3
    assert all(len(p) % 4 == 0 for p in parts)
    assert len(base64.urlsafe_b64decode(parts[2])) == 64
    header = jwt.get_unverified_header(data)
    assert header["alg"] == "ES256"
    assert header["client"] == gateway.settings.cognito.client_id
    assert header["signer"].startswith("arn:aws:elasticloadbalancing:")
    async with http.get(f"{gateway.url}/oauth2/public-keys/{header['kid']}") as resp:
        pem = await resp.text()
    claims = jwt.decode(data, pem, algorithms=["ES256"])
    assert claims["sub"] == ALICE.subject
    assert claims["email"] == ALICE.email
    assert claims["email_verified"] == "true"
    assert claims["iss"] == gateway.settings.issuer
    async with http.get(f"{gateway.url}/oauth2/jwks.json") as resp:
        keys = (await resp.json())["keys"]
    assert [k["kid"] for k in keys] == [header["kid"]]


async def test_userinfo_reports_the_identity_or_401(gateway: RunningGateway,
                                                    http: aiohttp.ClientSession) -> None:
    cookie = await sign_in_cookies(gateway.url)
    async with http.get(f"{gateway.url}/oauth2/userinfo", headers={"Cookie": cookie}) as resp:
        body = await resp.json()
    assert body["username"] == "alice"
    assert body["email"] == ALICE.email
    assert body["groups"] == ["admins", "staff"]
    async with http.get(f"{gateway.url}/oauth2/userinfo") as resp:
        assert resp.status == 401


async def test_forward_auth_answers_202_with_headers_or_401(gateway: RunningGateway,
                                                            http: aiohttp.ClientSession) -> None:
    cookie = await sign_in_cookies(gateway.url)
    async with http.get(f"{gateway.url}/oauth2/auth", headers={"Cookie": cookie}) as resp:
        assert resp.status == 202
        assert resp.headers["X-Auth-Request-User"] == "alice"
    async with http.get(f"{gateway.url}/oauth2/auth") as resp:
        assert resp.status == 401


async def test_ping_always_and_ready_once_the_idp_is_loaded(
        make_gateway: GatewayFactory, idp: DevIdp, http: aiohttp.ClientSession) -> None:
    """/ready is 503 while discovery fails and turns 200 once it loads."""
    idp.add_fault("discovery", 503)
    gateway = await make_gateway(ready=False)
    async with http.get(f"{gateway.url}/ping") as resp:
        assert resp.status == 200
    async with http.get(f"{gateway.url}/ready") as resp:
        assert resp.status == 503
        assert (await resp.json())["checks"]["idp"] is False
    idp.clear_faults()
    await gateway.provider.load()
    async with http.get(f"{gateway.url}/ready") as resp:
        assert resp.status == 200
