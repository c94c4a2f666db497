"""Fixtures: real servers on 127.0.0.1 (dev IdP, test upstream, gateway) and isolation.

Every test runs with the gateway's real logging pipeline writing into a buffer; at the end of
each test the buffer is scanned for every secret the fixtures handed out and for anything
shaped like a JWT, so a leak anywhere in the suite fails the test that caused it.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from cryptography.fernet import Fernet

from gateway.app import create_app
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.cognito.provider import PROVIDER, IdentityProvider
from gateway.config import Settings, load_settings
from gateway.devidp import AppClient, DevIdp, User, UserPool
from gateway.listener import gateway_runner
from gateway.observability.logging import configure_logging, flush_logs
from gateway.observability.metrics import METRICS, Metrics
from gateway.observability.tracing import TRACING_OFF, Tracing
from gateway.sessions.store import SESSION_STORE, SessionStore
from tests.support.ports import listening_socket
from tests.support.redis_servers import RedisServer
from tests.support.upstream import create_test_upstream

if TYPE_CHECKING:
    import socket
    from pathlib import Path

CLIENT_ID = "gateway-client"
CLIENT_SECRET = "gateway-client-secret-0123456789abcdefghij"
ALICE = User(username="alice", password="alice-Password-1", email="alice@example.com",
             email_verified=True, groups=["admins", "staff"],
             attributes={"name": "Alice Example", "custom:tenant": "acme"})
BOB = User(username="google_1234567890", password="bob-Password-1", email=None,
           groups=[], attributes={"name": "Bob Federated"})
JWT_SHAPED = re.compile(r"eyJ[\w-]{10,}\.eyJ[\w-]{10,}")


@dataclass
class Secrets:
    """Values that must never appear in a log line."""

    values: set[str] = field(default_factory=set)

    def add(self, *values: str | None) -> None:
        self.values.update(v for v in values if v and len(v) >= 8)


@pytest.fixture
def secrets() -> Secrets:
    return Secrets({CLIENT_SECRET, ALICE.password, BOB.password})


@pytest.fixture(autouse=True)
def log_buffer(secrets: Secrets) -> Iterator[io.StringIO]:
    """Route all logging through the gateway's JSON pipeline into a buffer; scan it afterwards."""
    buffer = io.StringIO()
    configure_logging("debug", stream=buffer)
    structlog.contextvars.clear_contextvars()
    yield buffer
    flush_logs()
    structlog.contextvars.clear_contextvars()
    for line in buffer.getvalue().splitlines():
        leaked = [s for s in secrets.values if s in line]
        assert not leaked, f"a secret reached the log: {line[:300]}"
        assert not JWT_SHAPED.search(line), f"a token reached the log: {line[:300]}"


def log_text(buffer: io.StringIO) -> str:
    """Everything logged so far (queued access lines included)."""
    flush_logs()
    return buffer.getvalue()


def log_events(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Parsed JSON log lines written so far."""
    return [json.loads(line) for line in log_text(buffer).splitlines() if line.startswith("{")]


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve `app` on a port the OS picks on 127.0.0.1; return its runner and URL."""
    runner = web.AppRunner(app, access_log=None, auto_decompress=False,
                           max_field_size=65536, max_line_size=65536)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    runner, url = await serve(create_test_upstream())
    yield url
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client without a cookie jar: each request carries exactly the cookies the test gives
    it, as a replayed or stolen cookie would be."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest.fixture
def gateway_socket() -> Iterator[socket.socket]:
    """The gateway's listening socket, bound before the gateway starts: the IdP's pool needs
    the gateway's URL (its callback) first, and a bound socket cannot be taken meanwhile."""
    with listening_socket() as sock:
        yield sock


@pytest.fixture
def gateway_port(gateway_socket: socket.socket) -> int:
    port: int = gateway_socket.getsockname()[1]
    return port


@pytest.fixture
def gateway_url(gateway_port: int) -> str:
    return f"http://127.0.0.1:{gateway_port}"


def gateway_client(gateway_url: str, **overrides: Any) -> AppClient:
    settings: dict[str, Any] = {
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "callback_urls": [f"{gateway_url}/oauth2/callback"],
        "logout_urls": [f"{gateway_url}/oauth2/signed_out"],
    }
    return AppClient(**(settings | overrides))


@pytest.fixture
def pool(gateway_url: str) -> UserPool:
    """The user pool the gateway signs in against; tests may replace it."""
    return UserPool(users=[ALICE, BOB], clients=[gateway_client(gateway_url)])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, killed at teardown whatever happened."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def clock() -> Clock:
    """The time the gateway and the IdP read; a module wanting to move it returns a
    tests.support.clock.ManualClock instead."""
    return SYSTEM_CLOCK


@pytest.fixture
async def idp(pool: UserPool, clock: Clock) -> AsyncIterator[DevIdp]:
    async with DevIdp(pool, now=clock.time) as running:
        yield running


@dataclass
class RunningGateway:
    url: str
    app: web.Application
    settings: Settings
    runner: web.AppRunner

    @property
    def metrics(self) -> Metrics:
        return self.app[METRICS]

    @property
    def provider(self) -> IdentityProvider:
        return self.app[PROVIDER]

    @property
    def store(self) -> SessionStore:
        return self.app[SESSION_STORE]


GatewayFactory = Callable[..., Awaitable[RunningGateway]]


def gateway_env(idp: DevIdp, upstream: str, gateway_url: str, **env: str) -> dict[str, str]:
    base = {
        "GATEWAY_SERVER_PUBLIC_URL": gateway_url,
        "GATEWAY_UPSTREAM_URL": upstream,
        "GATEWAY_COGNITO_ISSUER": idp.issuer,
        "GATEWAY_COGNITO_DOMAIN": idp.base_url,
        "GATEWAY_COGNITO_CLIENT_ID": CLIENT_ID,
        "GATEWAY_COGNITO_CLIENT_SECRET": CLIENT_SECRET,
        "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
        "GATEWAY_SESSION_COOKIE_SECURE": "false",
    }
    return base | env


READY_WITHIN = 10.0


async def start_gateway(env: dict[str, str], sock: socket.socket, *,
                        clock: Clock = SYSTEM_CLOCK, tracing: Tracing = TRACING_OFF,
                        ready: bool = True) -> tuple[web.AppRunner, RunningGateway]:
    """Serve a gateway on the listening socket `sock`; with `ready`, wait (failing loudly
    after READY_WITHIN seconds) until it has loaded the IdP's metadata and keys."""
    settings = load_settings(environ=env)
    app = create_app(settings, clock=clock, tracing=tracing)
    runner = gateway_runner(app, settings, app[METRICS])
    await runner.setup()
    await web.SockSite(runner, sock).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    gateway = RunningGateway(url, app, settings, runner)
    if ready:
        try:
            async with asyncio.timeout(READY_WITHIN):
                while not app[PROVIDER].ready:  # noqa: ASYNC110 - no event for "loaded"
                    await asyncio.sleep(0.02)
        except TimeoutError:
            await runner.cleanup()
            pytest.fail(f"the gateway did not load the IdP's metadata within {READY_WITHIN} s")
    return runner, gateway


@pytest.fixture
async def make_gateway(idp: DevIdp, upstream: str, gateway_url: str,
                       gateway_socket: socket.socket, secrets: Secrets,
                       clock: Clock) -> AsyncIterator[GatewayFactory]:
    """Start a gateway in front of `upstream`, signing in at `idp`; GATEWAY_* overrides apply."""
    runners: list[web.AppRunner] = []

    async def make(*, ready: bool = True, **env: str) -> RunningGateway:
        full = gateway_env(idp, upstream, gateway_url, **env)
        secrets.add(full["GATEWAY_SESSION_SECRET"], full["GATEWAY_COGNITO_CLIENT_SECRET"])
        runner, gateway = await start_gateway(full, gateway_socket, clock=clock, ready=ready)
        runners.append(runner)
        return gateway

    yield make
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> RunningGateway:
    return await make_gateway()


async def sign_in_cookies(gateway_url: str, username: str = ALICE.username,
                          password: str = ALICE.password) -> str:
    """Sign in through the hosted-UI form; return the gateway's Cookie header value."""
    from tests.support.browser import ScriptedBrowser

    async with ScriptedBrowser() as browser:
        page = await browser.sign_in(f"{gateway_url}/", username, password)
        assert page.status == 200, page.text[:500]
        cookies = browser.cookies_for(gateway_url)
    return "; ".join(f"{k}={v}" for k, v in cookies.items() if k.startswith("_cognito_gateway"))


@pytest.fixture
async def alice_cookie(gateway: RunningGateway) -> str:
    return await sign_in_cookies(gateway.url)
