"""Path confusion: no unauthenticated request reaches a non-public path, however it is spelled.

The upstream here serves files the way the most lenient server would (decoding twice, reading
backslashes, dropping `;params`, resolving dot segments, ...) and records every request that
reached it. With `public_paths = ["/public/*"]` and no session, every hostile target below is
sent raw with every method and as a WebSocket upgrade; afterwards, what the upstream served
must all lie under /public/, nothing under /oauth2/ may have been proxied, and no answer may
be a 5xx.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.conftest import GatewayFactory, RunningGateway, serve
from tests.support.rawhttp import raw_request
from tests.support.static_upstream import StaticUpstream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

HOSTILE_TARGETS = [
    "/secret.txt",
    "/oauth2/../secret.txt",
    "/oauth2/%2e%2e/secret.txt",
    "/oauth2/%2E%2E/secret.txt",
    "/oauth2/.%2e/secret.txt",
    "/oauth2/anything",
    "/oauth2/",
    "/oauth2",
    "/oauth2;x/../secret.txt",
    "/oauth2;/sign_in",
    "/oauth2/public-keys/../../secret.txt",
    "/oauth2/sign_in/../../secret.txt",
    "/OAUTH2/../secret.txt",
    "/public/../secret.txt",
    "/public/./../secret.txt",
    "/public/x/../../secret.txt",
    "/public//../secret.txt",
    "//public/../secret.txt",
    "/public/%2e%2e/secret.txt",
    "/public/%2e./secret.txt",
    "/public/.%2E/secret.txt",
    "/public/..%2fsecret.txt",
    "/public%2f..%2fsecret.txt",
    "/public%2F..%2Fsecret.txt",
    "/public/..%5csecret.txt",
    "/public/..\\secret.txt",
    "/public\\..\\secret.txt",
    "/public/..;/secret.txt",
    "/public/..;x=1/secret.txt",
    "/public/.;/../secret.txt",
    "/public;/../secret.txt",
    "/public;x/../secret.txt",
    "/public/..%3b/secret.txt",
    "/public/..%3Bx/secret.txt",
    "/public%3b/../secret.txt",
    "/public/%252e%252e/secret.txt",
    "/public/..%252fsecret.txt",
    "/public/%2561dmin/panel",
    "/public/..%00/secret.txt",
    "/public/%00/../secret.txt",
    "/public/..%20/secret.txt",
    "/public/..%c0%afsecret.txt",
    "/public/..%e0%80%afsecret.txt",
    "/public/%c0%ae%c0%ae/secret.txt",
    "/public/..%ef%bc%8fsecret.txt",
    "/public/%ef%bc%8e%ef%bc%8e/secret.txt",
    "/public/%e2%80%a5/secret.txt",
    "/public/..%u002fsecret.txt",
    "/pub%6cic/../secret.txt",
    "/%2e%2e/secret.txt",
    "/./secret.txt",
    "/public?/../secret.txt",
    "/public/..?x=1",
    "/public#/../secret.txt",
    "/admin/panel",
    "/public/../admin/panel",
    "/public/..%2fadmin/panel",
    "http://evil.example/public/../secret.txt",
    "http://127.0.0.1/secret.txt",
    "HTTP://x/public/../../secret.txt",
    "https://x/oauth2/../secret.txt",
    "http://x:1/public%2f..%2fsecret.txt",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "FOO"]
WEBSOCKET = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.fixture
def static() -> StaticUpstream:
    return StaticUpstream()


@pytest.fixture
async def upstream(static: StaticUpstream) -> AsyncIterator[str]:
    runner, url = await serve(static.app())
    yield url
    await runner.cleanup()


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> RunningGateway:
    return await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS='["/public/*"]')


def port_of(gateway: RunningGateway) -> int:
    port = urlsplit(gateway.url).port
    assert port is not None
    return port


def test_the_table_is_large_enough() -> None:
    """At least 40 hostile targets, all distinct."""
    assert len(set(HOSTILE_TARGETS)) == len(HOSTILE_TARGETS) >= 40


async def test_no_unauthenticated_request_reaches_a_non_public_path(
        gateway: RunningGateway, static: StaticUpstream) -> None:
    """Every method and WebSocket upgrade of every hostile target: the upstream only ever
    served paths under /public/, never anything under /oauth2/, and nothing answered 5xx."""
    answers: dict[tuple[str, str], int] = {}
    for target in HOSTILE_TARGETS:
        for method in METHODS:
            line = f"{method} {target} HTTP/1.1".encode()
            answers[method, target] = (await raw_request(port_of(gateway), line)).status
        line = f"GET {target} HTTP/1.1".encode()
        answers["WS", target] = (await raw_request(port_of(gateway), line, WEBSOCKET)).status
    errors = {k: v for k, v in answers.items() if v >= 500}
    assert errors == {}
    escaped = [r for r in static.received if not fnmatchcase(r.served, "/public/*")]
    assert escaped == []
    assert [r for r in static.received if r.served.startswith("/oauth2")] == []
    assert all(answers["WS", t] != 101 for t in HOSTILE_TARGETS)


@pytest.mark.parametrize(("request_line", "status"), [
    (b"GET /oauth2/anything HTTP/1.1", 404),
    (b"GET /oauth2/ HTTP/1.1", 404),
    (b"GET /oauth2 HTTP/1.1", 404),
    (b"POST /oauth2/callback HTTP/1.1", 405),
    (b"DELETE /oauth2/userinfo HTTP/1.1", 405),
    (b"PUT /oauth2/sign_out HTTP/1.1", 405),
    (b"GET /oauth2/public-keys/a/b HTTP/1.1", 404),
    (b"GET /oauth2/%2e%2e/secret.txt HTTP/1.1", 400),
    (b"GET /public%2F..%2Fsecret.txt HTTP/1.1", 400),
    (b"GET /oauth2;x/sign_in HTTP/1.1", 400),
])
async def test_gateway_paths_answer_themselves_and_are_never_proxied(
        gateway: RunningGateway, static: StaticUpstream, request_line: bytes,
        status: int) -> None:
    """Unknown /oauth2/ paths are 404, wrong methods 405 (with Allow), ambiguity 400."""
    response = await raw_request(port_of(gateway), request_line)
    assert response.status == status
    if status == 405:
        assert response.headers["allow"]
    assert static.received == []


async def test_a_public_path_is_served_by_its_normal_form(
        gateway: RunningGateway, static: StaticUpstream) -> None:
    """`/public/x/../index.html` is public and reaches the upstream as /public/index.html."""
    response = await raw_request(port_of(gateway), b"GET /public/x/../index.html HTTP/1.1")
    assert (response.status, response.body) == (200, b"public page")
    assert [r.raw_path for r in static.received] == ["/public/index.html"]


async def test_absolute_form_is_reduced_to_its_path_and_host_decides_nothing(
        gateway: RunningGateway, static: StaticUpstream) -> None:
    """`GET http://other:99/public/index.html` is proxied as /public/index.html."""
    response = await raw_request(
        port_of(gateway), b"GET http://other.example:99/public/index.html?q=1 HTTP/1.1")
    assert response.status == 200
    assert [r.raw_path for r in static.received] == ["/public/index.html?q=1"]
