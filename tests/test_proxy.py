"""Streaming reverse-proxy behaviour, through a signed-in session, over real sockets."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
from typing import TYPE_CHECKING

import aiohttp
import pytest
from yarl import URL

from tests.conftest import GatewayFactory, RunningGateway, sign_in_cookies
from tests.support.ports import refusing_port
from tests.support.rawhttp import raw_request

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def _headers(echoed: dict[str, object]) -> dict[str, str]:
    pairs = echoed["headers"]
    assert isinstance(pairs, list)
    return {k.lower(): v for k, v in pairs}


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest.mark.parametrize(("raw", "forwarded"), [
    ("/a/c%20d;p=1?q=a+b&r=%2F&s=%zz", "/a/c%20d;p=1?q=a+b&r=%2F&s=%zz"),
    ("/plus+sign/%E2%9C%93?x=%3D%26", "/plus+sign/%E2%9C%93?x=%3D%26"),
    ("/double//slash/./dot/../x?a=../%2e", "/double/slash/x?a=../%2e"),
    ("/%7euser/caf%c3%a9", "/~user/caf%C3%A9"),
])
async def test_the_upstream_gets_the_normalised_path_and_the_query_byte_exact(
        gateway: RunningGateway, alice_cookie: str, client: aiohttp.ClientSession,
        raw: str, forwarded: str) -> None:
    """Spaces, plus signs, params and escapes pass; dot segments and // are resolved as decided;
    the query is never touched."""
    async with client.get(URL(gateway.url + raw, encoded=True),
                          headers={"Cookie": alice_cookie}) as resp:
        echoed = await resp.json()
    assert echoed["raw_path"] == forwarded


@pytest.mark.parametrize("name", [
    "X-Auth-Request-User", "x-auth-request-email", "X_Auth_Request_User", "X-AUTH-REQUEST-GROUPS",
    "X-Amzn-Oidc-Data", "x_amzn_oidc_identity", "X-Forwarded-User", "X-Auth-Request-Access-Token",
])
async def test_client_supplied_identity_headers_never_reach_the_upstream(
        gateway: RunningGateway, alice_cookie: str, client: aiohttp.ClientSession,
        name: str) -> None:
    """Every spelling of an identity header is removed; only the gateway's value arrives."""
    async with client.get(gateway.url + "/", headers={"Cookie": alice_cookie,
                                                      name: "mallory"}) as resp:
        echoed = await resp.json()
    values = [v for k, v in echoed["headers"] if k.lower().replace("_", "-")
              == name.lower().replace("_", "-")]
    assert "mallory" not in values
    assert all(v != "mallory" for _, v in echoed["headers"])


async def test_identity_headers_are_stripped_on_public_paths_too(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession) -> None:
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*")
    async with client.get(gateway.url + "/x", headers={"X_Auth_Request_User": "admin",
                                                       "X-Auth-Request-Email": "a@b"}) as resp:
        echoed = await resp.json()
    assert all(v not in {"admin", "a@b"} for _, v in echoed["headers"])


async def test_hop_by_hop_headers_are_not_forwarded(
        gateway: RunningGateway, alice_cookie: str, client: aiohttp.ClientSession) -> None:
    """Connection, Keep-Alive, TE, Proxy-Authorization and headers named in Connection go."""
    async with client.get(gateway.url + "/", headers={
            "Cookie": alice_cookie, "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1", "Keep-Alive": "timeout=5", "TE": "trailers",
            "Proxy-Authorization": "Basic eA==", "X-Kept": "yes"}) as resp:
        headers = _headers(await resp.json())
    for gone in ("x-secret-hop", "keep-alive", "te", "proxy-authorization"):
        assert gone not in headers
    assert headers["x-kept"] == "yes"


async def test_forwarded_headers_are_set_and_untrusted_ones_replaced(
        gateway: RunningGateway, alice_cookie: str, client: aiohttp.ClientSession) -> None:
    async with client.get(gateway.url + "/", headers={
            "Cookie": alice_cookie, "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}) as resp:
        headers = _headers(await resp.json())
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-host"] == URL(gateway.url).host_port_subcomponent
    assert headers["x-forwarded-proto"] == "http"


OVERRIDES = ["X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Forwarded-Uri",
             "X-Forwarded-Path", "X-Forwarded-Prefix", "X-Original-Method", "X-Original-Host",
             "X-Host", "X-Envoy-Original-Path", "X-HTTP-Method-Override", "X-HTTP-Method",
             "X-Method-Override", "x_original_url"]


@pytest.mark.parametrize("trusted", ["", "127.0.0.0/8"], ids=["untrusted", "trusted"])
async def test_forwarded_host_and_proto_never_come_from_an_untrusted_client(
        make_gateway: GatewayFactory, trusted: str) -> None:
    """From an untrusted peer, X-Forwarded-Host/Proto are public_url's whatever Host and
    X-Forwarded-* say; URL- and method-override headers never reach the upstream, trusted or
    not."""
    gateway = await make_gateway(GATEWAY_SERVER_TRUSTED_PROXIES=trusted,
                                 GATEWAY_SERVER_PUBLIC_URL="https://app.example.com",
                                 GATEWAY_SESSION_COOKIE_SECURE="true",
                                 GATEWAY_AUTH_PUBLIC_PATHS="/*")
    port = URL(gateway.url).port
    assert port is not None
    headers = {name: "/admin/panel" for name in OVERRIDES} | {
        "X-Forwarded-Host": "forwarded.example", "X-Forwarded-Proto": "http"}
    response = await raw_request(port, b"GET /page HTTP/1.1", headers | {"X-Host": "x"})
    seen = _headers(json.loads(response.body))
    assert response.status == 200
    assert [name for name in OVERRIDES if name.lower() in seen] == []
    if trusted:
        assert (seen["x-forwarded-host"], seen["x-forwarded-proto"]) == ("forwarded.example",
                                                                         "http")
    else:
        assert (seen["x-forwarded-host"], seen["x-forwarded-proto"]) == ("app.example.com",
                                                                         "https")


async def test_forwarded_headers_from_trusted_proxies_are_extended(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession) -> None:
    gateway = await make_gateway(GATEWAY_SERVER_TRUSTED_PROXIES="127.0.0.0/8",
                                 GATEWAY_AUTH_PUBLIC_PATHS="/*")
    async with client.get(gateway.url + "/", headers={
            "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Host": "app.example.com",
            "X-Forwarded-Proto": "https"}) as resp:
        headers = _headers(await resp.json())
    assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert headers["x-forwarded-host"] == "app.example.com"
    assert headers["x-forwarded-proto"] == "https"


@pytest.mark.parametrize(("name", "passes"), [
    ("app_cookie", True), ("_cognito_gateway", False), ("_cognito_gateway_1", False),
    ("_cognito_gateway_signin_x", False), ("_cognito_gatewayish", True),
])
async def test_the_upstream_cannot_set_the_gateways_cookies(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession, name: str,
        passes: bool) -> None:
    """An upstream Set-Cookie for a cookie of the gateway's (session chunks, sign-in state) is
    dropped: the app can neither fixate nor delete a user's session; its own cookies pass."""
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*")
    async with client.get(gateway.url + "/set-cookie", params={"name": name}) as resp:
        set_cookies = resp.headers.getall("Set-Cookie", [])
    assert any(c.startswith(f"{name}=") for c in set_cookies) is passes


async def test_gateway_cookies_never_reach_the_upstream(
        gateway: RunningGateway, alice_cookie: str, client: aiohttp.ClientSession) -> None:
    """The session cookie is withheld; the app's own cookies pass."""
    async with client.get(gateway.url + "/", headers={
            "Cookie": f"{alice_cookie}; app=1; _cognito_gateway_signin_abc=x"}) as resp:
        headers = _headers(await resp.json())
    assert headers["cookie"] == "app=1"


async def test_upstream_cookies_are_not_shared_between_users(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession) -> None:
    """A Set-Cookie for one user is never replayed on another user's request."""
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*")
    async with client.get(gateway.url + "/set-cookie?value=user-one") as resp:
        assert "app_cookie=user-one" in resp.headers["Set-Cookie"]
    async with client.get(gateway.url + "/set-cookie?value=user-two") as resp:
        body = await resp.json()
    assert body["cookie_header"] is None


async def test_compressed_responses_pass_through_untouched(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession) -> None:
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*")
    async with client.get(gateway.url + "/gzip") as resp:
        raw = await resp.read()
        assert resp.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw) == b"hello compressed world" * 50


async def test_compressed_request_bodies_pass_through_untouched(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession) -> None:
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*")
    body = gzip.compress(b"x" * 10000)
    async with client.post(gateway.url + "/upload", data=body,
                           headers={"Content-Encoding": "gzip"}) as resp:
        echoed = await resp.json()
    assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest()


async def test_large_bodies_stream_both_ways(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession) -> None:
    """A 20 MB chunked upload arrives intact."""
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*")
    blob = os.urandom(20 * 1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(blob), 65536):
            yield blob[i:i + 65536]

    async with client.put(gateway.url + "/upload", data=chunks()) as resp:
        echoed = await resp.json()
    assert echoed["body_bytes"] == len(blob)
    assert echoed["body_sha256"] == hashlib.sha256(blob).hexdigest()


@pytest.mark.parametrize("chunked", [False, True])
async def test_request_bodies_over_the_limit_get_413(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession, chunked: bool) -> None:
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*",
                                 GATEWAY_UPSTREAM_MAX_REQUEST_BODY_BYTES="1000")
    payload = b"y" * 5000

    async def stream() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 500):
            yield payload[i:i + 500]

    async with client.post(gateway.url + "/upload",
                           data=stream() if chunked else payload) as resp:
        assert resp.status == 413
    async with client.post(gateway.url + "/upload", data=b"z" * 1000) as resp:
        assert resp.status == 200


async def test_slow_upstream_is_504(make_gateway: GatewayFactory,
                                    client: aiohttp.ClientSession) -> None:
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*",
                                 GATEWAY_UPSTREAM_TIMEOUT_SECONDS="0.3")
    async with client.get(gateway.url + "/slow?seconds=2") as resp:
        assert resp.status == 504


async def test_failure_after_the_response_started_aborts_the_connection(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession) -> None:
    """A truncated upstream body must not look complete to the client."""
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*")
    async with client.get(gateway.url + "/abort") as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_long_streams_are_not_cut_by_a_total_timeout(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession) -> None:
    """SSE lasting longer than the idle timeout still arrives whole (idle gaps are shorter)."""
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*",
                                 GATEWAY_UPSTREAM_TIMEOUT_SECONDS="0.5")
    async with client.get(gateway.url + "/stream?chunks=8&delay=0.2") as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        body = await resp.text()
    assert body.count("data: event") == 8


async def test_websockets_are_proxied_both_ways_with_close_codes(
        gateway: RunningGateway, alice_cookie: str, client: aiohttp.ClientSession) -> None:
    async with client.ws_connect(gateway.url + "/ws", headers={"Cookie": alice_cookie},
                                 protocols=("chat",)) as ws:
        assert ws.protocol == "chat"
        await ws.send_str("hello")
        assert (await ws.receive_str()) == "echo:hello"
        await ws.send_bytes(b"abc")
        assert (await ws.receive_bytes()) == b"cba"
        await ws.send_str("close:4001")
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 4001


async def test_websocket_without_session_is_refused(
        gateway: RunningGateway, client: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(gateway.url + "/ws")
    assert info.value.status == 401


@pytest.mark.parametrize("websocket", [False, True], ids=["http", "websocket"])
async def test_a_dead_upstream_is_502_and_counted_once(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession, websocket: bool) -> None:
    """HTTP and WebSocket alike: 502, and upstream_errors_total{reason="connect"} counts it
    exactly once (the WebSocket path used to skip the metric)."""
    with refusing_port() as port:
        gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*",
                                     GATEWAY_UPSTREAM_URL=f"http://127.0.0.1:{port}")
        if websocket:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await client.ws_connect(gateway.url + "/ws")
            status = info.value.status
        else:
            async with client.get(gateway.url + "/x") as resp:
                status = resp.status
                assert (await resp.json())["error"] == "upstream_connect"
    assert status == 502
    assert gateway.metrics.registry.get_sample_value(
        "cognito_gateway_upstream_errors_total", {"reason": "connect"}) == 1


async def test_concurrent_users_get_their_own_identity(
        gateway: RunningGateway, client: aiohttp.ClientSession) -> None:
    """Interleaved requests of two users never mix identities."""
    from tests.conftest import BOB

    alice = await sign_in_cookies(gateway.url)
    bob = await sign_in_cookies(gateway.url, BOB.username, BOB.password)

    async def whoami(cookie: str) -> str:
        async with client.get(gateway.url + "/", headers={"Cookie": cookie}) as resp:
            return _headers(await resp.json())["x-auth-request-user"]

    results = await asyncio.gather(*(whoami(alice if i % 2 else bob) for i in range(40)))
    assert results == [("alice" if i % 2 else BOB.username) for i in range(40)]


