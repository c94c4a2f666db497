"""gateway.upstream.client against real upstreams: Debian's nginx and an aiohttp app.

One conformance table runs every response framing (content-length, chunked, read until close),
HEAD, interim 1xx, 204 and 304 against both servers where the server can produce it, and checks
the body, the status and whether the connection was kept alive, counted by the upstream itself
(nginx's stub_status `accepts`; the connections the aiohttp app has seen).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import json
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict

from gateway.upstream.client import ConnectError, UpstreamClient
from tests.support.nginx import RunningNginx, start_nginx

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from aiohttp.typedefs import Handler

FILE_BODY = b"static file body"
FUTURE = "Fri, 01 Jan 2100 00:00:00 GMT"
NGINX_CONF = """
location = /cl { return 200 'hello, content-length'; }
location = /chunked { sub_filter 'zzz' 'zzz'; sub_filter_types *; return 200 'hello, chunked'; }
location = /until-close {
    chunked_transfer_encoding off; sub_filter 'zzz' 'zzz'; sub_filter_types *;
    return 200 'hello, until close';
}
location = /no-content { return 204; }
location = /close { keepalive_timeout 0; return 200 'closing'; }
location /static/ { alias STATIC/; if_modified_since before; }
"""


class Upstream(Protocol):
    """What the table needs from a server: where it is, and how many connections it accepted."""

    @property
    def url(self) -> str: ...

    def accepts(self) -> int: ...


@dataclass
class AppUpstream:
    """The aiohttp app, counting the distinct connections its requests came on."""

    url: str = ""
    transports: set[object] = field(default_factory=set)

    def accepts(self) -> int:
        return len(self.transports)


APP_UPSTREAM = web.AppKey("app_upstream", AppUpstream)


@web.middleware
async def count_connections(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[APP_UPSTREAM].transports.add(request.transport)
    response: web.StreamResponse = await handler(request)
    return response


async def content_length(_: web.Request) -> web.Response:
    return web.Response(body=b"hello, content-length")


async def chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"hello, ")
    await response.write(b"chunked")
    await response.write_eof()
    return response


async def no_content(_: web.Request) -> web.Response:
    return web.Response(status=204)


async def closing(_: web.Request) -> web.Response:
    response = web.Response(body=b"closing")
    response.force_close()
    return response


async def static_file(request: web.Request) -> web.Response:
    if "If-Modified-Since" in request.headers:
        return web.Response(status=304)
    return web.Response(body=FILE_BODY)


async def early_hints(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
    return web.Response(body=b"hello, content-length")


async def echo(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    return web.json_response({
        "method": request.method, "raw_path": request.raw_path,
        "raw_headers": [[k.decode("latin-1"), v.decode("latin-1")]
                        for k, v in request.raw_headers],
        "size": size, "sha256": digest.hexdigest(),
    })


def create_app() -> web.Application:
    app = web.Application(middlewares=[count_connections])
    app.router.add_get("/cl", content_length)
    app.router.add_post("/cl", content_length)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/no-content", no_content)
    app.router.add_get("/close", closing)
    app.router.add_get("/static/file.txt", static_file)
    app.router.add_get("/early-hints", early_hints)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    return app


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("static")
    (directory / "file.txt").write_bytes(FILE_BODY)
    return directory


@pytest.fixture(scope="module")
def nginx(static_dir: Path) -> Iterator[RunningNginx]:
    server = start_nginx(NGINX_CONF.replace("STATIC", str(static_dir)))
    yield server
    server.stop()


@pytest.fixture
async def app_upstream() -> AsyncIterator[AppUpstream]:
    upstream = AppUpstream()
    app = create_app()
    app[APP_UPSTREAM] = upstream
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    upstream.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield upstream
    await runner.cleanup()


@pytest.fixture
def upstreams(nginx: RunningNginx, app_upstream: AppUpstream) -> dict[str, Upstream]:
    return {"nginx": nginx, "aiohttp": app_upstream}


@dataclass(frozen=True)
class Case:
    """One row: a request, what must come back, and whether its connection is kept alive."""

    method: str
    path: str
    status: int
    body: bytes
    reused: bool
    headers: tuple[tuple[str, str], ...] = ()
    request_body: bytes | None = None


BOTH = ("nginx", "aiohttp")
CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    "content-length": (Case("GET", "/cl", 200, b"hello, content-length", True), BOTH),
    "chunked": (Case("GET", "/chunked", 200, b"hello, chunked", True), BOTH),
    "read-until-close": (Case("GET", "/until-close", 200, b"hello, until close", False),
                         ("nginx",)),
    "connection-close": (Case("GET", "/close", 200, b"closing", False), BOTH),
    "head": (Case("HEAD", "/static/file.txt", 200, b"", True), BOTH),
    "head-of-chunked": (Case("HEAD", "/chunked", 200, b"", True), ("nginx",)),
    "204": (Case("GET", "/no-content", 204, b"", True), BOTH),
    "304": (Case("GET", "/static/file.txt", 304, b"", True,
                 headers=(("If-Modified-Since", FUTURE),)), BOTH),
    "static-file": (Case("GET", "/static/file.txt", 200, FILE_BODY, True), BOTH),
    "100-continue": (Case("POST", "/cl", 200, b"hello, content-length", True,
                          headers=(("Expect", "100-continue"),), request_body=b"abc"),
                     ("nginx",)),
    "103-early-hints": (Case("GET", "/early-hints", 200, b"hello, content-length", True),
                        ("aiohttp",)),
}


class TestConformance:
    """The same table against every real upstream that can produce the row."""

    @pytest.mark.parametrize(("kind", "case"), [
        pytest.param(kind, case, id=f"{kind}-{name}")
        for name, (case, kinds) in CASES.items() for kind in kinds
    ])
    async def test_row(self, upstreams: dict[str, Upstream], kind: str, case: Case) -> None:
        """Twice in a row: the right status and body; one connection exactly when kept alive."""
        upstream = upstreams[kind]
        accepted_before = upstream.accepts()
        async with UpstreamClient(upstream.url, read_timeout=5) as client:
            for _ in range(2):
                response = await client.request(case.method, case.path, case.headers,
                                                case.request_body)
                assert (response.status, await response.read()) == (case.status, case.body)
                assert client.idle_connections == (1 if case.reused else 0)
            assert client.open_connections == client.idle_connections
        assert upstream.accepts() - accepted_before == (1 if case.reused else 2)

    async def test_headers_as_sent(self, nginx: RunningNginx) -> None:
        """Headers come back in order as pairs; Content-Length is read into content_length."""
        async with UpstreamClient(nginx.url) as client:
            response = await client.request("GET", "/cl")
            names = [name for name, _ in response.headers]
            assert names == ["Server", "Date", "Content-Type", "Content-Length", "Connection"]
            assert response.content_length == len(await response.read())
            assert response.reason == "OK"

    @pytest.mark.parametrize("kind", BOTH)
    async def test_keep_alive_over_many_requests(self, upstreams: dict[str, Upstream],
                                                 kind: str) -> None:
        """Fifty sequential requests travel on one connection."""
        upstream = upstreams[kind]
        before = upstream.accepts()
        async with UpstreamClient(upstream.url) as client:
            for _ in range(50):
                assert await (await client.request("GET", "/cl")).read() == \
                    b"hello, content-length"
        assert upstream.accepts() - before == 1

    @pytest.mark.parametrize("kind", BOTH)
    async def test_concurrent_requests(self, upstreams: dict[str, Upstream], kind: str) -> None:
        """Concurrent requests each get their own answer, then share the pooled connections."""
        upstream = upstreams[kind]
        before = upstream.accepts()
        async with UpstreamClient(upstream.url) as client:
            for _ in range(3):
                paths = ["/cl", "/chunked", "/static/file.txt", "/no-content"] * 5
                responses = await asyncio.gather(*(client.request("GET", p) for p in paths))
                bodies = [await response.read() for response in responses]
                assert bodies == [b"hello, content-length", b"hello, chunked", FILE_BODY,
                                  b""] * 5
            assert client.open_connections == client.idle_connections <= 20
        assert upstream.accepts() - before <= 20


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class TestRequests:
    """What the upstream receives: the target byte-exact, the framing the body calls for."""

    @pytest.mark.parametrize(("body", "length", "framing"), [
        pytest.param(None, None, ("Content-Length", "0"), id="no-body"),
        pytest.param(b"", None, ("Content-Length", "0"), id="empty-bytes"),
        pytest.param(b"abc" * 1000, None, ("Content-Length", "3000"), id="bytes"),
        pytest.param(b"x" * 200_000, None, ("Content-Length", "200000"), id="large-bytes"),
        pytest.param("stream", 6, ("Content-Length", "6"), id="stream-with-length"),
        pytest.param("stream", None, ("Transfer-Encoding", "chunked"), id="stream-chunked"),
    ])
    async def test_body_framing(self, app_upstream: AppUpstream, body: bytes | str | None,
                                length: int | None, framing: tuple[str, str] | None) -> None:
        """The body arrives whole, framed by exactly one Content-Length or chunked."""
        async with UpstreamClient(app_upstream.url) as client:
            sent = _chunks(b"abc", b"", b"def") if isinstance(body, str) else body
            expected = b"abcdef" if isinstance(body, str) else (body or b"")
            response = await client.request("PUT", "/echo/x", body=sent, body_length=length)
            echoed = json.loads(await response.read())
        assert (echoed["size"], echoed["sha256"]) == (len(expected),
                                                      hashlib.sha256(expected).hexdigest())
        framing_headers = [[k, v] for k, v in echoed["raw_headers"]
                           if k.lower() in {"content-length", "transfer-encoding"}]
        assert framing_headers == ([list(framing)] if framing else [])

    @pytest.mark.parametrize(("method", "sends_zero_length"), [
        ("GET", False), ("HEAD", False), ("OPTIONS", False), ("DELETE", True), ("POST", True),
    ])
    async def test_bodyless_framing(self, app_upstream: AppUpstream, method: str,
                                    sends_zero_length: bool) -> None:
        """Without a body, Content-Length: 0 goes only with methods whose body means something."""
        async with UpstreamClient(app_upstream.url) as client:
            response = await client.request(method, "/echo/x")
            echoed = json.loads(await response.read() or b'{"raw_headers": []}')
        if method != "HEAD":
            assert (["Content-Length", "0"] in echoed["raw_headers"]) is sends_zero_length

    async def test_target_and_headers_byte_exact(self, app_upstream: AppUpstream) -> None:
        """The raw path, query, header case, order and UTF-8 values reach the upstream unchanged."""
        headers = [("X-First", "1"), ("x-lower", "é ü"), ("X-Dup", "a"), ("X-Dup", "b")]
        async with UpstreamClient(app_upstream.url) as client:
            response = await client.request("GET", "/echo/a%2Fb;p=1?x=%20y&z", headers)
            echoed = json.loads(await response.read())
        assert echoed["raw_path"] == "/echo/a%2Fb;p=1?x=%20y&z"
        host = app_upstream.url.removeprefix("http://")
        sent = [(k, v.encode("latin-1").decode()) for k, v in echoed["raw_headers"]]
        assert sent == [(k, v) for k, v in headers] + [("Host", host)]

    async def test_headers_from_a_multidict(self, app_upstream: AppUpstream) -> None:
        """A multidict's items() go out as they are, duplicates and order kept."""
        headers = CIMultiDict([("X-Dup", "1"), ("Accept", "*/*"), ("x-dup", "2")])
        async with UpstreamClient(app_upstream.url) as client:
            response = await client.request("GET", "/echo/x", headers.items())
            echoed = json.loads(await response.read())
        assert echoed["raw_headers"][:3] == [["X-Dup", "1"], ["Accept", "*/*"], ["x-dup", "2"]]

    async def test_host_from_the_caller_wins(self, app_upstream: AppUpstream) -> None:
        """A Host the caller passes is sent as it is, and no second one is added."""
        async with UpstreamClient(app_upstream.url) as client:
            response = await client.request("GET", "/echo/x", [("Host", "app.example.com")])
            echoed = json.loads(await response.read())
        assert [v for k, v in echoed["raw_headers"] if k.lower() == "host"] == ["app.example.com"]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningNginx, str]]:
    """nginx serving TLS with a self-signed certificate, and that certificate (PEM)."""
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    server = start_nginx(
        f"ssl_certificate {cert}; ssl_certificate_key {key};\n"
        "location = /cl { return 200 'hello, tls'; }", listen_options="ssl")
    yield server, cert.read_text()
    server.stop()


class TestHttps:
    """https:// origins: TLS through loop.create_connection, verified against a given CA."""

    async def test_keep_alive_over_tls(self, tls_nginx: tuple[RunningNginx, str]) -> None:
        """Requests over TLS succeed and share one connection."""
        server, certificate = tls_nginx
        context = ssl.create_default_context(cadata=certificate)
        before = server.accepts()
        async with UpstreamClient(server.url, ssl_context=context) as client:
            for _ in range(3):
                assert await (await client.request("GET", "/cl")).read() == b"hello, tls"
        assert server.accepts() - before == 1

    async def test_untrusted_certificate(self, tls_nginx: tuple[RunningNginx, str]) -> None:
        """A certificate the default context does not trust is a ConnectError."""
        async with UpstreamClient(tls_nginx[0].url) as client:
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.request("GET", "/cl")
            assert client.open_connections == 0
