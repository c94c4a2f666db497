"""Requests gateway.upstream.client refuses before any byte leaves, and settings it refuses
when it is built: the caller's mistakes are LocalProtocolError or ValueError, never sent.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import pytest

from gateway.upstream.client import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    LocalProtocolError,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    UpstreamClient,
    UpstreamClientError,
    WriteTimeout,
)
from tests.test_upstream_client_failures import OK, answer, scripted

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


async def _streamed(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class TestRequestsTheClientRefuses:
    """Requests that cannot be sent as given raise LocalProtocolError before any byte leaves."""

    @pytest.mark.parametrize(("method", "target", "headers"), [
        pytest.param("GET", "/", [("Content-Length", "3")], id="content-length"),
        pytest.param("GET", "/", [("transfer-encoding", "chunked")], id="transfer-encoding"),
        pytest.param("GET", "/", [("Connection", "close")], id="connection"),
        pytest.param("GET", "/", [("Upgrade", "websocket")], id="upgrade"),
        pytest.param("GET", "/", [("X-A", "1\r\nX-Injected: 1")], id="crlf-in-value"),
        pytest.param("GET", "/", [("X-A\r\nX-B", "1")], id="crlf-in-name"),
        pytest.param("GET", "/", [("X-A", "a\nb")], id="lf-in-value"),
        pytest.param("GET", "/", [("X-A", "a\x00b")], id="nul-in-value"),
        pytest.param("GET", "/a b", [], id="space-in-target"),
        pytest.param("GET", "/a\r\nX: y", [], id="crlf-in-target"),
        pytest.param("GET X", "/", [], id="space-in-method"),
        pytest.param("", "/", [], id="empty-method"),
    ])
    async def test_refused(self, method: str, target: str, headers: list[tuple[str, str]]) -> None:
        """The request is refused and nothing reaches the upstream."""
        async with scripted(answer(OK)) as upstream, UpstreamClient(upstream.url) as client:
            with pytest.raises(LocalProtocolError):
                await client.request(method, target, headers)
            assert upstream.accepted == 0

    @pytest.mark.parametrize(("chunks", "length"), [
        pytest.param((b"abc", b"def"), 4, id="longer"),
        pytest.param((b"ab",), 4, id="shorter"),
        pytest.param((b"ab",), -1, id="negative"),
    ])
    async def test_body_length_mismatch(self, chunks: tuple[bytes, ...], length: int) -> None:
        """A streamed body that does not match body_length fails, and its connection is closed."""
        async with scripted(answer(OK)) as upstream, UpstreamClient(upstream.url) as client:
            with pytest.raises(LocalProtocolError):
                await client.request("POST", "/", body=_streamed(*chunks), body_length=length)
            assert client.open_connections == 0

    async def test_body_iterable_errors_propagate(self) -> None:
        """An exception from the body iterable reaches the caller unchanged; nothing leaks."""
        async def failing() -> AsyncIterator[bytes]:
            yield b"abc"
            raise OSError("the client went away")

        async with scripted(answer(OK)) as upstream, UpstreamClient(upstream.url) as client:
            with pytest.raises(OSError, match="went away"):
                await client.request("POST", "/", body=failing())
            assert client.open_connections == 0

    @pytest.mark.parametrize(("origin", "kwargs"), [
        pytest.param("ftp://host", {}, id="scheme"),
        pytest.param("http://", {}, id="no-host"),
        pytest.param("http://host/base", {}, id="path"),
        pytest.param("http://host?q=1", {}, id="query"),
        pytest.param("http://user:pw@host", {}, id="userinfo"),
        pytest.param("http://host:99999", {}, id="port"),
        pytest.param("http://host", {"read_timeout": 0}, id="read-timeout"),
        pytest.param("http://host", {"max_connections": 0}, id="max-connections"),
        pytest.param("http://host", {"ssl_context": ssl.create_default_context()},
                     id="ssl-for-http"),
    ])
    def test_bad_construction(self, origin: str, kwargs: dict[str, object]) -> None:
        """A bad origin or setting is refused when the client is built."""
        with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
            UpstreamClient(origin, **kwargs)  # type: ignore[arg-type]


def test_every_error_is_an_upstream_client_error() -> None:
    """One except clause catches everything the client raises on purpose."""
    for error in (ConnectError, ConnectionClosed, ConnectTimeout, LocalProtocolError,
                  PoolTimeout, ReadTimeout, RemoteProtocolError, WriteTimeout):
        assert issubclass(error, UpstreamClientError)
