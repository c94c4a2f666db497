"""The access line, rendered field by field: the same JSON shape and the same redaction as
every other log line, through a gateway served as `cognito-gateway run` serves it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from gateway.observability.logging import REDACTED, redact
from tests.conftest import Secrets, gateway_env, log_events, log_text, start_gateway
from tests.support.rawhttp import raw_request

if TYPE_CHECKING:
    import io
    import socket
    from collections.abc import AsyncIterator

    from gateway.devidp import DevIdp

JWT = ("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMH0"
       ".c2lnbmF0dXJlLWJ5dGVzLWhlcmU")
FIELDS = {"event", "request_id", "method", "path", "status", "duration_ms", "bytes_sent",
          "remote", "user_agent", "level", "logger", "timestamp", "rule"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
async def gateway_port(idp: DevIdp, upstream: str, gateway_url: str,
                       gateway_socket: socket.socket, secrets: Secrets) -> AsyncIterator[int]:
    """A gateway with the JSON access log on, every path public; its port."""
    env = gateway_env(idp, upstream, gateway_url, GATEWAY_AUTH_PUBLIC_PATHS="/*")
    secrets.add(env["GATEWAY_SESSION_SECRET"])
    runner, _ = await start_gateway(env, gateway_socket)
    port: int = gateway_socket.getsockname()[1]
    yield port
    await runner.cleanup()


def access_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [e for e in log_events(buffer) if e["event"] == "request"]


async def test_the_line_has_every_field_of_its_shape(gateway_port: int,
                                                     log_buffer: io.StringIO) -> None:
    """One JSON object with the contract's fields, a UTC timestamp with microseconds, and the
    values as they were."""
    before = datetime.now(UTC) - timedelta(seconds=1)
    answer = await raw_request(gateway_port, b"GET /page?x=1 HTTP/1.1",
                               {"User-Agent": 'agent "quoted" \\ \u00e9', "X-Request-Id": "r-7"})
    assert answer.status == 200
    [line] = access_lines(log_buffer)
    assert line.keys() == FIELDS
    assert TIMESTAMP.fullmatch(line["timestamp"])
    stamped = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert before <= stamped <= datetime.now(UTC)
    assert (line["method"], line["path"], line["status"], line["request_id"], line["remote"],
            line["logger"], line["level"], line["rule"]) == (
        "GET", "/page", 200, "r-7", "127.0.0.1", "gateway.access", "info", "default")
    assert line["user_agent"] == 'agent "quoted" \\ \u00e9'
    assert line["bytes_sent"] > len(answer.body)  # aiohttp's count: the head and the body
    assert isinstance(line["duration_ms"], float)


SECRETS_IN_CLIENT_FIELDS = {
    "token in the user agent": (b"GET /page HTTP/1.1", {"User-Agent": f"curl {JWT}"}),
    "token as the request id": (b"GET /page HTTP/1.1", {"X-Request-Id": JWT}),
    "code in a path parameter": (b"GET /cb;code=secret-code-1/x HTTP/1.1", {}),
    "token in the path": (f"GET /t/{JWT} HTTP/1.1".encode(), {}),
    "code in the query": (b"GET /cb?code=secret-code-2&state=secret-state HTTP/1.1", {}),
}


@pytest.mark.parametrize(("request_line", "headers"), list(SECRETS_IN_CLIENT_FIELDS.values()),
                         ids=list(SECRETS_IN_CLIENT_FIELDS))
async def test_what_the_client_chose_is_redacted_like_any_log_value(
        gateway_port: int, log_buffer: io.StringIO, request_line: bytes,
        headers: dict[str, str]) -> None:
    """A token or a secret parameter in the user agent, the request id or the path is masked
    exactly as `redact` masks it in every other line; the query is never logged."""
    await raw_request(gateway_port, request_line, headers)
    [line] = access_lines(log_buffer)
    text = log_text(log_buffer)
    for secret in (JWT, "secret-code-1", "secret-code-2", "secret-state"):
        assert secret not in text
    for field in ("user_agent", "request_id", "path"):
        assert line[field] == redact(None, "info", {field: line[field]})[field]
    assert REDACTED in json.dumps(line) or "?" in request_line.decode()
