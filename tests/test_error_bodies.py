"""What failed is said in words: error pages and JSON never show an address, errno or repr."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from cryptography.fernet import Fernet

from gateway.sessions.cipher import Cipher
from tests.conftest import GatewayFactory, log_events
from tests.support.ports import refusing_port

if TYPE_CHECKING:
    import io
    from collections.abc import Iterator
    from pathlib import Path

    import aiohttp

# Anything that betrays the inside: an IP or a port, a socket path, errno text, a repr.
LEAKS = re.compile(r"127\.0\.0\.1|:\d{2,5}\b|/tmp/|\.sock|[Ee]rrno|Error \d+|Connection refused"
                   r"|Traceback|<\w+ object|Exception\(|\w+Error\(")
HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def dead_port() -> Iterator[int]:
    with refusing_port() as port:
        yield port



async def bodies(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                 status: int) -> list[str]:
    texts = []
    for accept in (HTML, JSON):
        async with http.get(url, headers=headers | accept) as resp:
            assert resp.status == status
            texts.append(await resp.text())
    return texts


async def test_session_store_down_is_named_without_its_address(
        make_gateway: GatewayFactory, http: aiohttp.ClientSession, tmp_path: Path,
        log_buffer: io.StringIO) -> None:
    """Redis unreachable: 503 naming the session store; the cause (a bounded reason and the
    errno's name) only in the log."""
    key = Fernet.generate_key().decode()
    gateway = await make_gateway(GATEWAY_SESSION_STORE="redis", GATEWAY_SESSION_SECRET=key,
                                 GATEWAY_SESSION_REDIS_URL=f"unix://{tmp_path}/no-redis.sock")
    cookie = "_cognito_gateway=" + Cipher([key]).seal({"sid": "s"})
    for text in await bodies(http, gateway.url + "/x", {"Cookie": cookie}, 503):
        assert "session store" in text
        assert LEAKS.search(text) is None, text
    failures = [e for e in log_events(log_buffer) if e["event"] == "session_store_unavailable"]
    assert failures
    assert (failures[0]["reason"], failures[0]["errno"]) == ("connect", "ENOENT")


async def test_upstream_down_is_named_without_its_address(
        make_gateway: GatewayFactory, http: aiohttp.ClientSession, dead_port: int) -> None:
    """Upstream refusing connections: 502 'the upstream is unreachable', no address."""
    gateway = await make_gateway(GATEWAY_UPSTREAM_URL=f"http://127.0.0.1:{dead_port}",
                                 GATEWAY_AUTH_PUBLIC_PATHS="/*")
    for text in await bodies(http, gateway.url + "/x", {}, 502):
        assert "upstream" in text
        assert LEAKS.search(text) is None, text


async def test_identity_provider_down_is_named_without_its_address(
        make_gateway: GatewayFactory, http: aiohttp.ClientSession, dead_port: int) -> None:
    """IdP unreachable at start: sign-in answers 503 'identity provider', no address."""
    gateway = await make_gateway(ready=False,
                                 GATEWAY_COGNITO_ISSUER=f"http://127.0.0.1:{dead_port}/pool",
                                 GATEWAY_COGNITO_DOMAIN=f"http://127.0.0.1:{dead_port}")
    for text in await bodies(http, gateway.url + "/oauth2/sign_in", {}, 503):
        assert "identity provider" in text
        assert LEAKS.search(text) is None, text
