"""The token endpoint failing: slow, 5xx, malformed, an HTML page, a reset, an untrusted
certificate; at sign-in (the code exchange) and at refresh (a signed-in session).

The gateway's `cognito.domain` is a `FaultProxy` in front of the stand-in, so its token calls
go through it; the browser signs in at the stand-in directly. Each row arms its fault on the
stand-in (`add_fault`) or on the proxy (a reset), or is the proxy itself (TLS with a
certificate no one trusts).
"""

from __future__ import annotations

import asyncio
import html
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import pytest

from gateway.devidp import DevIdp, UserPool
from tests.conftest import (
    ALICE,
    GatewayFactory,
    RunningGateway,
    gateway_client,
    gateway_env,
    sign_in_cookies,
)
from tests.faults.conftest import (
    HTML,
    JSON,
    Launcher,
    LogWindow,
    assert_words,
    callback_url,
    sample,
    wait_for,
)
from tests.support.browser import ScriptedBrowser
from tests.support.certificates import TlsFiles
from tests.support.faults import FaultProxy
from tests.support.ports import listening_socket

if TYPE_CHECKING:
    import io
    import socket
    from pathlib import Path

TOKEN_TIMEOUT = "0.25"        # cognito.timeout_seconds of the gateway under test
SLOW_SECONDS = 1.0            # the stand-in's answer comes this late: past the timeout
TOKEN_SECONDS = 4             # access and ID token lifetime at the stand-in
REQUEST_ID = re.compile(r"Request id: <code>([^<]+)</code>")
Arm = Callable[[DevIdp, FaultProxy], None]


@dataclass(frozen=True)
class TokenFault:
    """One way the token endpoint fails, and how the gateway names it."""

    arm: Arm
    outcome: str                  # token_requests_total{outcome}, and the log line's `error`
    http_status: int | None       # the log line's `http_status`
    hint: str                     # words of the hint (page and log)
    sign_in_status: int = 502     # the sign-in page's status
    tls: bool = False             # the proxy speaks TLS with an untrusted certificate


def _nothing(_idp: DevIdp, _proxy: FaultProxy) -> None:
    """The fault is the proxy itself."""


FAULTS = {
    "slow past the timeout": TokenFault(
        lambda idp, _: idp.add_fault("token", delay_seconds=SLOW_SECONDS),
        "timeout", None, "did not answer in time"),
    "5xx": TokenFault(
        lambda idp, _: idp.add_fault("token", 500, body=""),
        "http_500", 500, "The IdP failed (HTTP 5xx)"),
    "malformed JSON": TokenFault(
        lambda idp, _: idp.add_fault("token", 200, body='{"access_token": "x", "expires',
                                     content_type="application/json"),
        "malformed", 200, "not a token response", sign_in_status=400),
    "HTML error page": TokenFault(
        lambda idp, _: idp.add_fault("token", 502, body="<html><body><h1>502 Bad Gateway</h1>"
                                     "</body></html>", content_type="text/html"),
        "http_502", 502, "The IdP failed (HTTP 5xx)"),
    "connection reset": TokenFault(
        lambda _, proxy: proxy.reset_connections(),
        "network_error", None, "could not be reached"),
    "untrusted TLS certificate": TokenFault(
        _nothing, "network_error", None, "could not be reached", tls=True),
}


@pytest.fixture
def fault() -> TokenFault:
    """The row under test (parametrised); fixtures below build what it needs."""
    return FAULTS["5xx"]


@pytest.fixture
def pool(gateway_url: str) -> UserPool:
    """Tokens live TOKEN_SECONDS, so a refresh test can outlive them."""
    return UserPool(users=[ALICE], clients=[gateway_client(
        gateway_url, access_token_validity_seconds=TOKEN_SECONDS,
        id_token_validity_seconds=TOKEN_SECONDS)])


@pytest.fixture
async def token_proxy(fault: TokenFault, idp: DevIdp, tmp_path: Path
                      ) -> AsyncIterator[FaultProxy]:
    """The gateway's way to the token endpoint: in clear, or TLS nobody here trusts."""
    context = trusting = None
    if fault.tls:
        files = TlsFiles.generate(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(files.cert, files.key)
        trusting = ssl.create_default_context(cafile=files.ca)
    port = int(idp.base_url.rpartition(":")[2])
    async with FaultProxy(port, tls=context) as proxy:
        if trusting is not None:
            # The proxy works for a client that trusts its CA: the only fault is the trust.
            async with aiohttp.ClientSession() as client, client.get(
                    f"{proxy.url}/{idp.pool.pool_id}/.well-known/openid-configuration",
                    ssl=trusting) as resp:
                assert resp.status == 200
        yield proxy


def faulty(proxy: FaultProxy) -> dict[str, str]:
    """The settings that send the gateway's token calls through the proxy, with a short
    timeout."""
    return {"GATEWAY_COGNITO_DOMAIN": proxy.url,
            "GATEWAY_COGNITO_TIMEOUT_SECONDS": TOKEN_TIMEOUT}


def token_calls(gateway: RunningGateway, grant_type: str, outcome: str) -> float:
    return sample(gateway, "cognito_gateway_token_requests_total", grant_type=grant_type,
                  outcome=outcome)


@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
async def test_sign_in_shows_the_token_endpoint_failure_in_words(
        fault: TokenFault, idp: DevIdp, token_proxy: FaultProxy, make_gateway: GatewayFactory,
        log_buffer: io.StringIO) -> None:
    """The code exchange fails: the browser gets a page with the outcome, the hint, a request
    id and a retry link; the outcome is counted; one token_endpoint_error line has the hint."""
    gateway = await make_gateway(**faulty(token_proxy))
    async with ScriptedBrowser() as browser:
        callback = await callback_url(browser, gateway.url, idp.base_url)
        fault.arm(idp, token_proxy)
        log = LogWindow(log_buffer)
        page = await browser.request("GET", callback, follow_redirects=False)
    assert page.status == fault.sign_in_status, page.text[:500]
    assert f"Error: <code>{fault.outcome}</code>" in page.text
    assert_words(html.unescape(page.text), fault.hint, "Try again")
    assert 'href="/oauth2/sign_in"' in page.text
    shown = REQUEST_ID.search(page.text)
    assert shown is not None, page.text[:500]
    assert shown.group(1) == page.headers["X-Request-Id"]
    assert token_calls(gateway, "authorization_code", fault.outcome) == 1
    assert sample(gateway, "cognito_gateway_sign_ins_total", outcome="token_error") == 1
    line = log.reported_once("token_endpoint_error", request_id=shown.group(1))
    assert (line["grant_type"], line["error"], line["http_status"]) == (
        "authorization_code", fault.outcome, fault.http_status)
    assert fault.hint in line["hint"]
    log.assert_calm("token_endpoint_error", "request_failed")



@pytest.fixture
def replica_socket() -> Iterator[socket.socket]:
    """The listening socket of a second gateway replica (asked for before `launch`, so that it
    closes after the replica's runner has stopped)."""
    with listening_socket() as sock:
        yield sock

@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
async def test_refresh_failure_keeps_the_session_until_its_tokens_expire(
        fault: TokenFault, idp: DevIdp, token_proxy: FaultProxy, upstream: str,
        gateway_url: str, make_gateway: GatewayFactory, replica_socket: socket.socket,
        launch: Launcher, http: aiohttp.ClientSession, log_buffer: io.StringIO) -> None:
    """Refresh fails: the session keeps serving while its tokens are valid (the refresh runs
    in the background, the request is answered at once); after expiry APIs get 503 JSON and
    browsers a retry page, in words, and the session is kept."""
    # Alice signs in at a healthy replica; a second replica (same keys) reaches the token
    # endpoint only through the fault, and finds her tokens due for refresh at once.
    healthy = await make_gateway(GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS="0")
    env = gateway_env(idp, upstream, gateway_url, **faulty(token_proxy),
                      GATEWAY_SESSION_SECRET=",".join(healthy.settings.session.secret),
                      GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS=str(TOKEN_SECONDS))
    replica = await launch(env, replica_socket)

    async def ready() -> bool:
        async with http.get(f"{replica.url}/ready") as resp:
            return resp.status == 200

    await wait_for(ready, "the second replica ready", 10.0)
    valid_until = time.time() + TOKEN_SECONDS - 1  # at least: `exp` is in whole seconds
    cookie = await sign_in_cookies(healthy.url)
    expired_by = time.time() + TOKEN_SECONDS + 0.1
    fault.arm(idp, token_proxy)
    log = LogWindow(log_buffer)

    async with http.get(f"{replica.url}/x", headers={"Cookie": cookie, **JSON}) as resp:
        status, text = resp.status, await resp.text()
    assert time.time() < valid_until, "inconclusive: the tokens expired before the answer"
    assert status == 200, text  # at once: the refresh runs in the background

    async def refresh_failed() -> bool:
        return sample(replica, "cognito_gateway_session_refreshes_total", outcome="failed") >= 1

    await wait_for(refresh_failed, "the background refresh failing", TOKEN_SECONDS + 1.0)
    assert token_calls(replica, "refresh_token", fault.outcome) >= 1

    await asyncio.sleep(expired_by - time.time())
    statuses, request_ids = [], []
    for accept, phrase in ((JSON, "identity provider"), (HTML, "Try again")):
        async with http.get(f"{replica.url}/x", headers={"Cookie": cookie, **accept}) as resp:
            statuses.append(resp.status)
            request_ids.append(resp.headers["X-Request-Id"])
            assert "Set-Cookie" not in resp.headers, "the session was dropped"
            assert_words(await resp.text(), phrase)
    assert statuses == [503, 503]
    calls = token_calls(replica, "refresh_token", fault.outcome)
    lines = [e for e in log.named("token_endpoint_error") if e["grant_type"] == "refresh_token"]
    assert len(lines) == calls, f"{len(lines)} log lines for {calls} failed refresh calls"
    assert all(fault.hint in e["hint"] and e["error"] == fault.outcome for e in lines)
    for request_id in request_ids:
        log.reported_once("request_failed", request_id=request_id)
    log.assert_calm("token_endpoint_error", "request_failed")

