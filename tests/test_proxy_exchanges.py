"""The proxy's exchanges with the upstream over its own client, end to end through the gateway
against real servers (Debian's nginx, an aiohttp app): every response framing, HEAD, interim
and bodiless answers, trailers and hop-by-hop headers, keep-alive reuse, a failure in the
middle of a body, and a client that leaves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import GatewayFactory, RunningGateway, log_events, serve
from tests.support.nginx import RunningNginx, start_nginx
from tests.support.rawhttp import raw_request

if TYPE_CHECKING:
    import io
    from collections.abc import AsyncIterator, Iterator

PUBLIC = {"GATEWAY_AUTH_PUBLIC_PATHS": "/*"}
FILE_BODY = b"static file body"
FUTURE = "Fri, 01 Jan 2100 00:00:00 GMT"
DRIP_CHUNK = b"x" * 65536
NGINX_CONF = """
location = /cl { return 200 'hello, content-length'; }
location = /chunked { sub_filter 'zzz' 'zzz'; sub_filter_types *; return 200 'hello, chunked'; }
location = /until-close {
    chunked_transfer_encoding off; sub_filter 'zzz' 'zzz'; sub_filter_types *;
    return 200 'hello, until close';
}
location = /trailer {
    sub_filter 'zzz' 'zzz'; sub_filter_types *; add_trailer X-Checksum abc123 always;
    return 200 'hello, trailer';
}
location = /no-content { return 204; }
location /static/ { alias STATIC/; if_modified_since before; }
"""


@dataclass(frozen=True)
class Exchange:
    """One request through the gateway to nginx, and what the client must get."""

    method: str
    path: str
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    kept_alive: bool = True


EXCHANGES = {
    "content-length": Exchange("GET", "/cl", 200, b"hello, content-length"),
    "chunked": Exchange("GET", "/chunked", 200, b"hello, chunked"),
    "until close": Exchange("GET", "/until-close", 200, b"hello, until close",
                            kept_alive=False),
    "trailers dropped": Exchange("GET", "/trailer", 200, b"hello, trailer"),
    "HEAD": Exchange("HEAD", "/cl", 200, b""),
    "204": Exchange("GET", "/no-content", 204, b""),
    "304": Exchange("GET", "/static/file.txt", 304, b"", {"If-Modified-Since": FUTURE}),
    "file": Exchange("GET", "/static/file.txt", 200, FILE_BODY),
}


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNginx]:
    static = tmp_path_factory.mktemp("static")
    (static / "file.txt").write_bytes(FILE_BODY)
    server = start_nginx(NGINX_CONF.replace("STATIC", str(static)))
    yield server
    server.stop()


@pytest.fixture
async def via_nginx(make_gateway: GatewayFactory, nginx: RunningNginx) -> RunningGateway:
    """A gateway in front of nginx, every path public."""
    return await make_gateway(GATEWAY_UPSTREAM_URL=nginx.url, **PUBLIC)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest.mark.parametrize("case", list(EXCHANGES.values()), ids=list(EXCHANGES))
async def test_every_framing_and_bodiless_answer_reaches_the_client_whole(
        case: Exchange, via_nginx: RunningGateway, nginx: RunningNginx,
        client: aiohttp.ClientSession) -> None:
    """Status and body arrive as nginx sent them, three times in a row, over one upstream
    connection unless the framing ends it (a body read until close)."""
    before = nginx.accepts()
    for _ in range(3):
        async with client.request(case.method, via_nginx.url + case.path,
                                  headers=case.headers) as resp:
            assert (resp.status, await resp.read()) == (case.status, case.body)
    assert nginx.accepts() - before == (1 if case.kept_alive else 3)


async def test_head_keeps_the_upstreams_content_length(
        via_nginx: RunningGateway, client: aiohttp.ClientSession) -> None:
    """A HEAD answer says how long the GET body would be, and has none."""
    async with client.head(via_nginx.url + "/cl") as resp:
        assert resp.headers["Content-Length"] == str(len(b"hello, content-length"))
        assert await resp.read() == b""


async def test_trailers_never_reach_the_client(via_nginx: RunningGateway,
                                               nginx: RunningNginx) -> None:
    """The upstream's trailer fields are dropped; the chunked body still ends properly."""
    direct = await raw_request(nginx.port, b"GET /trailer HTTP/1.1", {"TE": "trailers"})
    assert b"X-Checksum: abc123" in direct.body, "nginx sent no trailer: the test shows nothing"
    port = int(via_nginx.url.rpartition(":")[2])
    answer = await raw_request(port, b"GET /trailer HTTP/1.1", {"TE": "trailers"})
    assert answer.status == 200
    assert answer.headers.get("transfer-encoding") == "chunked"
    assert answer.body.endswith(b"0\r\n\r\n")
    assert b"abc123" not in answer.body


# -- an aiohttp app: interim answers, hop-by-hop headers, and a body that never ends ---------


@dataclass
class AppUpstream:
    """The aiohttp app, and an event set when a streaming response lost its connection."""

    url: str = ""
    drip_gone: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


APP = web.AppKey("app", AppUpstream)


async def early_hints(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
    return web.Response(body=b"after the hints")


async def hop_by_hop(_request: web.Request) -> web.Response:
    return web.Response(body=b"hop", headers={
        "Connection": "X-Hop-Secret", "X-Hop-Secret": "1", "Keep-Alive": "timeout=5",
        "X-Kept": "yes"})


async def drip(request: web.Request) -> web.StreamResponse:
    """64 KiB chunks until the connection goes away."""
    response = web.StreamResponse()
    await response.prepare(request)
    try:
        while True:
            await response.write(DRIP_CHUNK)
    except ConnectionError:
        request.app[APP].drip_gone.set()
    return response


async def held(request: web.Request) -> web.StreamResponse:
    """The head at once; the body only when the test releases it."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await request.app[APP].release.wait()
    await response.write(b"data: done\n\n")
    await response.write_eof()
    return response


@pytest.fixture
async def app_upstream() -> AsyncIterator[AppUpstream]:
    upstream = AppUpstream()
    app = web.Application()
    app[APP] = upstream
    app.router.add_get("/early-hints", early_hints)
    app.router.add_get("/hop", hop_by_hop)
    app.router.add_get("/drip", drip)
    app.router.add_get("/held", held)
    runner, upstream.url = await serve(app)
    yield upstream
    await runner.cleanup()


@pytest.fixture
async def via_app(make_gateway: GatewayFactory, app_upstream: AppUpstream) -> RunningGateway:
    return await make_gateway(GATEWAY_UPSTREAM_URL=app_upstream.url, **PUBLIC)


async def test_interim_answers_are_skipped(via_app: RunningGateway,
                                           client: aiohttp.ClientSession) -> None:
    """A 103 Early Hints before the answer: the client gets the final 200 and its body."""
    async with client.get(via_app.url + "/early-hints") as resp:
        assert (resp.status, await resp.read()) == (200, b"after the hints")
        assert "Link" not in resp.headers


async def test_hop_by_hop_answer_headers_stop_at_the_gateway(
        via_app: RunningGateway, app_upstream: AppUpstream,
        client: aiohttp.ClientSession) -> None:
    """Keep-Alive and the headers the upstream's Connection names are dropped; others pass."""
    async with client.get(app_upstream.url + "/hop") as direct:
        assert direct.headers["X-Hop-Secret"] == "1", "the app sent no hop-by-hop header"
    async with client.get(via_app.url + "/hop") as resp:
        assert await resp.read() == b"hop"
        assert resp.headers["X-Kept"] == "yes"
        assert "X-Hop-Secret" not in resp.headers
        assert "Keep-Alive" not in resp.headers


async def test_a_response_head_reaches_the_client_before_its_body_exists(
        via_app: RunningGateway, app_upstream: AppUpstream,
        client: aiohttp.ClientSession) -> None:
    """An event stream's head is passed on at once, not held back for its first event."""
    try:
        async with client.get(via_app.url + "/held",
                              timeout=aiohttp.ClientTimeout(sock_read=5)) as resp:
            assert resp.status == 200
            app_upstream.release.set()
            assert await resp.read() == b"data: done\n\n"
    finally:
        app_upstream.release.set()  # a failed run must not hold the app's handler open


async def test_a_client_that_leaves_mid_body_closes_the_upstream_connection(
        via_app: RunningGateway, app_upstream: AppUpstream,
        client: aiohttp.ClientSession) -> None:
    """The client reads a little of an endless body and hangs up: the gateway closes its
    upstream connection (the app sees it go), and the next request is served cleanly."""
    resp = await client.get(via_app.url + "/drip")
    assert await resp.content.readexactly(len(DRIP_CHUNK)) == DRIP_CHUNK
    resp.close()
    await asyncio.wait_for(app_upstream.drip_gone.wait(), 10)
    async with client.get(via_app.url + "/hop") as again:
        assert (again.status, await again.read()) == (200, b"hop")


async def test_an_upstream_silent_mid_body_past_the_timeout_aborts_the_response(
        make_gateway: GatewayFactory, client: aiohttp.ClientSession,
        log_buffer: io.StringIO) -> None:
    """The body stalls longer than upstream.timeout_seconds after the 200 was sent: the
    client's connection is cut (a truncated body, never a complete-looking one), counted as a
    timeout, and logged once."""
    gateway = await make_gateway(GATEWAY_UPSTREAM_TIMEOUT_SECONDS="0.3", **PUBLIC)
    async with client.get(gateway.url + "/stream?chunks=3&delay=2") as resp:
        assert resp.status == 200
        request_id = resp.headers["X-Request-Id"]
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert gateway.metrics.registry.get_sample_value(
        "cognito_gateway_upstream_errors_total", {"reason": "timeout"}) == 1
    failed = [e for e in log_events(log_buffer) if e["event"] == "request_failed"]
    assert [(e["request_id"], e["error"]) for e in failed] == [(request_id, "UpstreamAborted")]
    assert not [e for e in log_events(log_buffer) if e["event"] == "unhandled_error"]

