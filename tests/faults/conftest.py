"""What every fault test checks, and the servers they share.

A fault test drives real servers (the dev IdP, the test upstream, redis-server, the gateway in
process or as a subprocess) and checks four things from the outside: the status, a message in
words (never an address, errno or repr: `assert_words`), a metric from the gateway's registry,
and the log: the fault's event exactly once, no traceback, and no other warning
(`LogWindow`).
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from gateway.devidp import DevIdp, UserPool
from gateway.devidp.keys import SigningKeys
from tests.conftest import (
    ALICE,
    CLIENT_ID,
    CLIENT_SECRET,
    RunningGateway,
    Secrets,
    gateway_client,
    log_events,
    start_gateway,
)

if TYPE_CHECKING:
    import io

    from tests.support.browser import ScriptedBrowser

# Anything that betrays the inside: an IP or a port, a socket path, errno text, a repr.
LEAKS = re.compile(r"127\.0\.0\.1|:\d{2,5}\b|/tmp/|\.sock|[Ee]rrno|Error \d+|Connection refused"
                   r"|Traceback|<\w+ object|Exception\(|\w+Error\(")
WARNING_LEVELS = frozenset({"warning", "error", "critical", "exception"})
HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}
CLIENT_TIMEOUT = 15.0  # no request of these tests may hang a run: each one fails by then


def assert_words(text: str, *phrases: str) -> None:
    """The message says each phrase and shows no address, errno, repr or traceback."""
    flat = " ".join(text.split())
    for phrase in phrases:
        assert phrase in flat, f"{phrase!r} not in {flat[:600]!r}"
    leak = LEAKS.search(text)
    assert leak is None, f"the message leaks {leak.group(0)!r}: {flat[:600]!r}"


def sample(gateway: RunningGateway, name: str, **labels: str) -> float:
    """A sample of the gateway's own registry (0 when the series does not exist yet)."""
    value = gateway.metrics.registry.get_sample_value(name, labels)
    return float(value or 0.0)


class LogWindow:
    """The JSON log lines written after the window was opened."""

    def __init__(self, buffer: io.StringIO) -> None:
        self._buffer = buffer
        self._start = len(log_events(buffer))

    def events(self) -> list[dict[str, Any]]:
        return log_events(self._buffer)[self._start:]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def reported_once(self, event: str, **fields: Any) -> dict[str, Any]:
        """The one line of `event` (with these fields); fails on none or several."""
        lines = [e for e in self.named(event)
                 if all(e.get(k) == v for k, v in fields.items())]
        assert len(lines) == 1, (
            f"expected one {event!r} line with {fields}, got {len(lines)}:\n{self.dump()}")
        return lines[0]

    def assert_calm(self, *allowed: str) -> None:
        """No line carries a traceback, and every warning or error is one of `allowed`."""
        for line in self.events():
            text = str(line)
            assert "exception" not in line, f"a traceback reached the log: {text[:800]}"
            assert "exc_info" not in line, f"a traceback reached the log: {text[:800]}"
            assert "Traceback" not in text, f"a traceback reached the log: {text[:800]}"
            if line.get("level") in WARNING_LEVELS:
                assert line.get("event") in allowed, (
                    f"unexpected {line.get('level')} line {line.get('event')!r} "
                    f"(allowed: {allowed}):\n{self.dump()}")

    def dump(self) -> str:
        return "\n".join(str(e)[:400] for e in self.events())


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, within: float) -> float:
    """Poll `check` every 20 ms until it is true; the seconds it took, or fail naming `what`."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    pytest.fail(f"{what} not reached within {within} s")


def gateway_settings_env(*, issuer: str, domain: str, upstream: str, public_url: str,
                         **env: str) -> dict[str, str]:
    """The GATEWAY_* environment of a gateway signing in at `issuer` (hosted UI at `domain`)."""
    base = {
        "GATEWAY_SERVER_PUBLIC_URL": public_url,
        "GATEWAY_UPSTREAM_URL": upstream,
        "GATEWAY_COGNITO_ISSUER": issuer,
        "GATEWAY_COGNITO_DOMAIN": domain,
        "GATEWAY_COGNITO_CLIENT_ID": CLIENT_ID,
        "GATEWAY_COGNITO_CLIENT_SECRET": CLIENT_SECRET,
        "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
        "GATEWAY_SESSION_COOKIE_SECURE": "false",
    }
    return base | env


Launcher = Callable[[dict[str, str], socket.socket], Awaitable[RunningGateway]]


@pytest.fixture
async def launch(secrets: Secrets) -> AsyncIterator[Launcher]:
    """Start a gateway from an environment on a listening socket, without waiting for the
    IdP."""
    runners: list[web.AppRunner] = []

    async def start(env: dict[str, str], sock: socket.socket) -> RunningGateway:
        secrets.add(env["GATEWAY_SESSION_SECRET"], env["GATEWAY_COGNITO_CLIENT_SECRET"])
        runner, gateway = await start_gateway(env, sock, ready=False)
        runners.append(runner)
        return gateway

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture(scope="session")
def shared_keys() -> SigningKeys:
    """One signing key pair for every stand-in of the run (RSA generation is slow)."""
    return SigningKeys.generate()


@pytest.fixture
def pool(gateway_url: str, upstream: str) -> UserPool:
    """Alice, and the gateway's app client; `<upstream>/cb` lets a test get bearer tokens."""
    callbacks = [f"{gateway_url}/oauth2/callback", f"{upstream}/cb"]
    return UserPool(users=[ALICE], clients=[gateway_client(gateway_url,
                                                          callback_urls=callbacks)])


@pytest.fixture
async def idp(pool: UserPool, shared_keys: SigningKeys) -> AsyncIterator[DevIdp]:
    async with DevIdp(pool, keys=shared_keys) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client without a cookie jar (each request carries the cookies the test gives it)
    whose requests fail after CLIENT_TIMEOUT seconds."""
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                     timeout=timeout) as session:
        yield session


async def callback_url(browser: ScriptedBrowser, gateway_url: str, idp_base_url: str) -> str:
    """Sign Alice in at the hosted UI up to the redirect back to the gateway; its URL.

    The gateway's authorize URL is opened on `idp_base_url` (the gateway's `cognito.domain`
    may be a faulty proxy meant for its own calls only); the callback is not followed.
    """
    start = await browser.request("GET", f"{gateway_url}/private", follow_redirects=False)
    assert start.status == 302, start.text[:300]
    authorize = urlsplit(start.headers["Location"])
    direct = urlsplit(idp_base_url)
    page = await browser.get(urlunsplit(authorize._replace(scheme=direct.scheme,
                                                           netloc=direct.netloc)))
    form = page.login_form()
    assert form is not None, page.text[:300]
    values = [(k, v) for k, v in form.values() if k not in {"username", "password"}]
    values += [("username", ALICE.username), ("password", ALICE.password)]
    answer = await browser.request("POST", form.action, data=values, follow_redirects=False,
                                   headers={"Origin": idp_base_url, "Referer": page.url})
    location = answer.headers.get("Location", "")
    assert location.startswith(f"{gateway_url}/oauth2/callback?"), answer.text[:300]
    return location
