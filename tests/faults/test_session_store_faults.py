"""Redis (session.store = "redis") going down and coming back, with no gateway restart."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ALICE, CLIENT_SECRET, GatewayFactory, Secrets, sign_in_cookies
from tests.faults.conftest import HTML, JSON, LogWindow, assert_words, sample
from tests.support.tokens import user_tokens

if TYPE_CHECKING:
    import io

    import aiohttp

    from gateway.devidp import DevIdp
    from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.redis


async def test_redis_down_and_back_is_ridden_out_without_a_restart(
        make_gateway: GatewayFactory, idp: DevIdp, upstream: str, redis_server: RedisServer,
        http: aiohttp.ClientSession, log_buffer: io.StringIO, secrets: Secrets) -> None:
    """Redis down: signed-in requests get 503 in words (one line each), /ready 503, public
    paths and bearer tokens keep working; Redis back: the same sessions work again."""
    gateway = await make_gateway(GATEWAY_SESSION_STORE="redis",
                                 GATEWAY_SESSION_REDIS_URL=redis_server.url(),
                                 GATEWAY_AUTH_PUBLIC_PATHS="/public/*")
    cookie = await sign_in_cookies(gateway.url)
    issued = await user_tokens(idp.base_url, client_id="gateway-client",
                               client_secret=CLIENT_SECRET, callback=f"{upstream}/cb",
                               username=ALICE.username, password=ALICE.password)
    secrets.add(issued["access_token"], issued["id_token"], issued["refresh_token"])
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}
    with redis_server.admin() as admin:
        admin.save()  # a Redis that persists its data, as in production
    await asyncio.to_thread(redis_server.stop)
    log = LogWindow(log_buffer)

    async def get(path: str, headers: dict[str, str]) -> tuple[int, str, str]:
        async with http.get(gateway.url + path, headers=headers) as resp:
            return resp.status, await resp.text(), resp.headers["X-Request-Id"]

    (api, api_body, api_id), (page, page_body, page_id), (ready, *_), (public, *_), \
        (token, *_) = await asyncio.gather(
            get("/x", {"Cookie": cookie, **JSON}), get("/x", {"Cookie": cookie, **HTML}),
            get("/ready", {}), get("/public/a", {}), get("/x", bearer))
    assert (api, page, ready, public, token) == (503, 503, 503, 200, 200)
    assert_words(api_body, "session store")
    assert_words(page_body, "session store", "Try again")
    assert sample(gateway, "cognito_gateway_ready") == 0
    assert sample(gateway, "cognito_gateway_http_requests_total", method="GET", code="503") == 3
    for request_id in (api_id, page_id):
        log.reported_once("session_store_unavailable", request_id=request_id)
        log.reported_once("request_failed", request_id=request_id)
    log.assert_calm("session_store_unavailable", "request_failed")

    await asyncio.to_thread(redis_server.start)
    status, _, _ = await get("/x", {"Cookie": cookie, **JSON})
    assert status == 200
    status, _, _ = await get("/ready", {})
    assert status == 200
    assert sample(gateway, "cognito_gateway_ready") == 1
