"""The IdP's metadata endpoints failing: down when the gateway starts, JWKS down later."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.devidp import DevIdp, UserPool
from tests.conftest import ALICE, CLIENT_SECRET, GatewayFactory, Secrets, sign_in_cookies
from tests.faults.conftest import (
    HTML,
    JSON,
    Launcher,
    LogWindow,
    assert_words,
    gateway_settings_env,
    sample,
    wait_for,
)
from tests.support.faults import reserved_port
from tests.support.tokens import user_tokens

if TYPE_CHECKING:
    import io
    import socket

    import aiohttp

    from gateway.devidp.keys import SigningKeys

RECOVERY_WITHIN = 10.0


async def test_idp_down_at_start_is_retried_with_backoff_until_it_comes_up(
        pool: UserPool, shared_keys: SigningKeys, upstream: str, gateway_url: str,
        gateway_socket: socket.socket, launch: Launcher, http: aiohttp.ClientSession,
        log_buffer: io.StringIO) -> None:
    """IdP refusing at start: /ready, sign-in and bearer tokens get 503 in words, discovery is
    retried with growing pauses, and the gateway serves sign-ins by itself once the IdP is up."""
    log = LogWindow(log_buffer)
    with reserved_port() as idp_port:
        base = f"http://127.0.0.1:{idp_port}"
        gateway = await launch(gateway_settings_env(
            issuer=f"{base}/{pool.pool_id}", domain=base, upstream=upstream,
            public_url=gateway_url), gateway_socket)

        async def failures(count: int) -> bool:
            return len(log.named("idp_metadata_unavailable")) >= count

        await wait_for(lambda: failures(2), "two failed discovery attempts", RECOVERY_WITHIN)
        async with http.get(f"{gateway.url}/ready") as resp:
            assert resp.status == 503
            assert (await resp.json())["checks"]["idp"] is False
        assert sample(gateway, "cognito_gateway_ready") == 0
        for path, headers in (("/oauth2/sign_in", HTML), ("/oauth2/sign_in", JSON),
                              ("/api", {"Authorization": "Bearer not-verifiable-yet"})):
            async with http.get(gateway.url + path, headers=headers,
                                allow_redirects=False) as resp:
                assert resp.status == 503
                assert_words(await resp.text(), "identity provider")
        idp = DevIdp(pool, port=idp_port, keys=shared_keys)
        await idp.start()
    try:
        async def ready() -> bool:
            async with http.get(f"{gateway.url}/ready") as resp:
                return resp.status == 200

        await wait_for(ready, "/ready 200 after the IdP came up", RECOVERY_WITHIN)
        assert sample(gateway, "cognito_gateway_ready") == 1
        cookie = await sign_in_cookies(gateway.url)
        async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie}) as resp:
            assert resp.status == 200
    finally:
        await idp.stop()
    attempts = log.named("idp_metadata_unavailable")
    assert {line["reason"] for line in attempts} == {"connect"}
    pauses = [line["retry_in_seconds"] for line in attempts]
    assert pauses == sorted(pauses), pauses
    assert pauses[0] < pauses[-1], f"no backoff: {pauses}"
    assert len(attempts) <= 4, f"a retry flood: {pauses}"
    log.reported_once("idp_ready")
    log.assert_calm("idp_metadata_unavailable", "request_failed")


async def test_jwks_down_later_keeps_cached_keys_working(
        make_gateway: GatewayFactory, idp: DevIdp, upstream: str, http: aiohttp.ClientSession,
        log_buffer: io.StringIO, secrets: Secrets) -> None:
    """JWKS failing after start: sessions and bearer tokens with known kids keep passing,
    /ready stays 200, a token with a new kid gets 503 in words and one counted fetch, and
    the new key is picked up by itself once JWKS answers again."""
    gateway = await make_gateway()
    cookie = await sign_in_cookies(gateway.url)

    async def tokens() -> str:
        issued = await user_tokens(idp.base_url, client_id="gateway-client",
                                   client_secret=CLIENT_SECRET, callback=f"{upstream}/cb",
                                   username=ALICE.username, password=ALICE.password)
        secrets.add(issued["access_token"], issued["id_token"], issued["refresh_token"])
        token: str = issued["access_token"]
        return token

    known = await tokens()
    idp.add_fault("jwks", 500)
    idp.rotate_keys()
    rotated = await tokens()
    log = LogWindow(log_buffer)
    async with http.get(f"{gateway.url}/x", headers={"Cookie": cookie}) as resp:
        assert resp.status == 200
    async with http.get(f"{gateway.url}/api", headers={"Authorization": f"Bearer {known}"}) \
            as resp:
        assert resp.status == 200
    async with http.get(f"{gateway.url}/ready") as resp:
        assert resp.status == 200
    async with http.get(f"{gateway.url}/api", headers={
            "Authorization": f"Bearer {rotated}", **JSON}) as resp:
        assert resp.status == 503
        body = await resp.text()
        request_id = resp.headers["X-Request-Id"]
    assert_words(body, "identity provider")
    assert sample(gateway, "cognito_gateway_jwks_fetches_total", outcome="http_500") == 1
    log.reported_once("request_failed", request_id=request_id)
    log.assert_calm("request_failed")

    idp.clear_faults()

    async def accepted() -> bool:
        async with http.get(f"{gateway.url}/api", headers={
                "Authorization": f"Bearer {rotated}"}) as resp:
            return resp.status == 200

    await wait_for(accepted, "the rotated key accepted after JWKS recovered", 5.0)
    assert sample(gateway, "cognito_gateway_jwks_fetches_total", outcome="ok") == 2

