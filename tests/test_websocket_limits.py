"""The WebSocket limits at their edges: `upstream.max_websockets` open sockets per worker (one
more gets 503, and a closed one frees its place) and `upstream.websocket_max_message_bytes` in
both directions (a message of exactly the limit is relayed; one byte more closes with 1009).

The test upstream echoes a text message as "echo:" + the message (5 bytes longer)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType

if TYPE_CHECKING:
    from tests.conftest import GatewayFactory

LIMIT = 1024  # the smallest the config accepts
ECHO_PREFIX = len("echo:")


async def test_one_socket_over_the_cap_gets_503_and_a_closed_one_frees_its_place(
        make_gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*",
                                 GATEWAY_UPSTREAM_MAX_WEBSOCKETS="2")
    first = await http.ws_connect(f"{gateway.url}/ws")
    second = await http.ws_connect(f"{gateway.url}/ws")

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{gateway.url}/ws")
    assert refused.value.status == 503

    await first.close()
    third = await connect_when_free(http, f"{gateway.url}/ws")
    await third.send_str("still")
    assert (await third.receive(timeout=5)).data == "echo:still"
    await second.close()
    await third.close()


async def connect_when_free(http: aiohttp.ClientSession, url: str,
                            within: float = 5.0) -> aiohttp.ClientWebSocketResponse:
    """Connect once the gateway has let go of a closed socket (its relay ends just after the
    client's close); fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await http.ws_connect(url)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status != 503 or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(("binary", "sent", "expected"), [
    pytest.param(False, LIMIT - ECHO_PREFIX, "relayed", id="upstream's message of the limit"),
    pytest.param(False, LIMIT - ECHO_PREFIX + 1, WSCloseCode.MESSAGE_TOO_BIG,
                 id="upstream's message one byte over: 1009"),
    pytest.param(True, LIMIT, "relayed", id="client's message of the limit"),
    pytest.param(True, LIMIT + 1, WSCloseCode.MESSAGE_TOO_BIG,
                 id="client's message one byte over: 1009"),
])
async def test_a_message_over_the_size_limit_closes_the_socket_with_1009(
        make_gateway: GatewayFactory, http: aiohttp.ClientSession, binary: bool, sent: int,
        expected: str | int) -> None:
    """Text is echoed 5 bytes longer (the upstream's message is the one over); binary is
    echoed as long (the client's message is)."""
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS="/*",
                                 GATEWAY_UPSTREAM_WEBSOCKET_MAX_MESSAGE_BYTES=str(LIMIT))
    async with http.ws_connect(f"{gateway.url}/ws", max_msg_size=0) as ws:
        if binary:
            await ws.send_bytes(b"x" * sent)
        else:
            await ws.send_str("x" * sent)
        answer = await ws.receive(timeout=5)
        if expected == "relayed":
            assert answer.type in {WSMsgType.TEXT, WSMsgType.BINARY}, answer
            assert len(answer.data) == (sent if binary else sent + ECHO_PREFIX) == LIMIT
        else:
            assert answer.type is WSMsgType.CLOSE
            assert answer.data == expected
