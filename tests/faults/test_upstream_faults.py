"""The upstream failing: refusing connections, too slow, reset mid-response, a WebSocket
dropped without a close frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import pytest

from tests.faults.conftest import JSON, LogWindow, assert_words, sample
from tests.support.faults import FaultProxy
from tests.support.ports import refusing_port

if TYPE_CHECKING:
    import io
    from collections.abc import AsyncIterator, Iterator

    from tests.conftest import GatewayFactory, RunningGateway

UPSTREAM_TIMEOUT = "0.5"
UNSENDABLE_OR_NORMAL = {1000, 1005, 1006}
EVERYONE = {"GATEWAY_AUTH_PUBLIC_PATHS": "/*", "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": UPSTREAM_TIMEOUT}


@pytest.fixture
def dead_port() -> Iterator[int]:
    with refusing_port() as port:
        yield port


@pytest.fixture
async def upstream_proxy(upstream: str) -> AsyncIterator[FaultProxy]:
    """The test upstream behind a proxy that can cut its connections."""
    async with FaultProxy(int(upstream.rpartition(":")[2])) as proxy:
        yield proxy


def upstream_errors(gateway: RunningGateway, reason: str) -> float:
    return sample(gateway, "cognito_gateway_upstream_errors_total", reason=reason)


@dataclass(frozen=True)
class BeforeResponse:
    """An upstream failure before any response byte: the gateway answers it itself."""

    path: str
    status: int
    reason: str
    words: str
    stall: bool = False           # the connection is accepted and never answered


BEFORE_RESPONSE = {
    "connection refused": BeforeResponse("/x", 502, "connect", "unreachable"),
    "slow past upstream.timeout_seconds": BeforeResponse("/slow?seconds=1", 504, "timeout",
                                                         "did not answer in time"),
    "accepts and never answers": BeforeResponse("/x", 504, "timeout", "did not answer in time",
                                                stall=True),
}


@pytest.mark.parametrize("case", list(BEFORE_RESPONSE.values()), ids=list(BEFORE_RESPONSE))
async def test_upstream_failure_before_the_response_is_answered_in_words(
        case: BeforeResponse, make_gateway: GatewayFactory, upstream: str, dead_port: int,
        upstream_proxy: FaultProxy, http: aiohttp.ClientSession,
        log_buffer: io.StringIO) -> None:
    """Refused: 502; too slow or silent: 504; with words, the reason counted and one line."""
    url = f"http://127.0.0.1:{dead_port}" if case.reason == "connect" else upstream
    if case.stall:
        upstream_proxy.stall()
        url = upstream_proxy.url
    gateway = await make_gateway(GATEWAY_UPSTREAM_URL=url, **EVERYONE)
    log = LogWindow(log_buffer)
    async with http.get(gateway.url + case.path, headers=JSON) as resp:
        assert resp.status == case.status
        request_id = resp.headers["X-Request-Id"]
        body = await resp.text()
    assert_words(body, "upstream", case.words)
    assert upstream_errors(gateway, case.reason) == 1
    log.reported_once("request_failed", request_id=request_id)
    log.assert_calm("request_failed")


MID_RESPONSE = {
    "fixed length, connection closed": ("/abort", 0),
    "chunked, connection reset": ("/stream?chunks=20&delay=0.01", 300),
}


@pytest.mark.parametrize(("path", "cut_after"), list(MID_RESPONSE.values()), ids=list(MID_RESPONSE))
async def test_upstream_dropping_mid_response_aborts_the_client_connection(
        path: str, cut_after: int, make_gateway: GatewayFactory,
        upstream_proxy: FaultProxy, http: aiohttp.ClientSession,
        log_buffer: io.StringIO) -> None:
    """The response started, then the upstream went away: the client's connection aborts
    (never a complete-looking truncated body), the reset is counted, one line says so, and
    the next request is served."""
    gateway = await make_gateway(GATEWAY_UPSTREAM_URL=upstream_proxy.url, **EVERYONE)
    if cut_after:
        upstream_proxy.cut_responses_after(cut_after)
    log = LogWindow(log_buffer)
    # A connection left hanging fails the read with a timeout instead of the payload error.
    async with http.get(gateway.url + path, timeout=aiohttp.ClientTimeout(total=5)) as resp:
        assert resp.status == 200
        request_id = resp.headers["X-Request-Id"]
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert upstream_errors(gateway, "reset") == 1
    log.reported_once("request_failed", request_id=request_id)
    log.assert_calm("request_failed")
    upstream_proxy.pass_through()
    async with http.get(f"{gateway.url}/x") as resp:
        assert resp.status == 200, "the next request is not served"


async def test_upstream_websocket_dropped_without_a_close_frame_closes_the_client_socket(
        make_gateway: GatewayFactory, upstream_proxy: FaultProxy,
        http: aiohttp.ClientSession, log_buffer: io.StringIO) -> None:
    """The upstream's WebSocket connection is reset: the client's socket is closed, dropped or
    with a close frame that says it failed; the reset is counted and one line says so."""
    gateway = await make_gateway(GATEWAY_UPSTREAM_URL=upstream_proxy.url, **EVERYONE)
    async with http.ws_connect(f"{gateway.url}/ws") as ws:
        await ws.send_str("hi")
        assert await ws.receive_str(timeout=5) == "echo:hi"
        log = LogWindow(log_buffer)
        upstream_proxy.reset_open()
        message = await ws.receive(timeout=5)
    if message.type == aiohttp.WSMsgType.CLOSE:
        # A close frame must carry a code an endpoint may send (RFC 6455 7.4.1: never 1005 or
        # 1006) and must not call the end normal.
        assert message.data not in UNSENDABLE_OR_NORMAL, f"closed with {message.data}"
    else:
        assert message.type in {aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR}, message
    assert upstream_errors(gateway, "reset") == 1
    log.reported_once("request_failed")
    log.assert_calm("request_failed")
