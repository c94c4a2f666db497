"""Structured JSON logs: line shape, request ids, redaction, and the access log."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from gateway.cognito.diagnosis import diagnose, hint_table
from gateway.observability.logging import REDACTED, get_logger, redact
from tests.conftest import (
    ALICE,
    CLIENT_SECRET,
    RunningGateway,
    Secrets,
    gateway_env,
    log_events,
    log_text,
    start_gateway,
)
from tests.support.browser import ScriptedBrowser

if TYPE_CHECKING:
    import io
    import socket
    from collections.abc import AsyncIterator

    from gateway.devidp import DevIdp

JWT = ("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMH0"
       ".c2lnbmF0dXJlLWJ5dGVzLWhlcmU")
REFRESH = "eyJjdHkiOiJKV1QifQ.AAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBB.CCCCCCCCCCCCCCCC.DDDDDDDDDDDD"
REPO = Path(__file__).resolve().parent.parent
HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
async def logged_gateway(idp: DevIdp, upstream: str, gateway_url: str,
                         gateway_socket: socket.socket, secrets: Secrets) -> AsyncIterator[str]:
    """The gateway served as `cognito-gateway run` serves it: with the JSON access log."""
    env = gateway_env(idp, upstream, gateway_url)
    secrets.add(env["GATEWAY_SESSION_SECRET"])
    runner, _ = await start_gateway(env, gateway_socket)
    yield gateway_url
    await runner.cleanup()


class TestLineShape:
    async def test_every_line_is_json_with_timestamp_level_event(
            self, logged_gateway: str, log_buffer: io.StringIO) -> None:
        """A whole sign-in logs only JSON objects, each with an ISO UTC timestamp, level, event."""
        async with ScriptedBrowser() as browser:
            page = await browser.sign_in(f"{logged_gateway}/", ALICE.username, ALICE.password)
        assert page.status == 200
        lines = [line for line in log_text(log_buffer).splitlines() if line.strip()]
        events = log_events(log_buffer)
        assert len(events) == len(lines) > 0
        for event in events:
            assert {"timestamp", "level", "event"} <= event.keys(), event
            assert event["timestamp"].endswith("Z")
            assert event["level"] in {"debug", "info", "warning", "error", "critical"}

    async def test_lines_of_a_request_carry_its_request_id(
            self, logged_gateway: str, log_buffer: io.StringIO) -> None:
        """The callback's `signed_in` line and its access line share the response's request id."""
        async with ScriptedBrowser() as browser:
            await browser.sign_in(f"{logged_gateway}/", ALICE.username, ALICE.password)
        events = log_events(log_buffer)
        signed_in = [e for e in events if e["event"] == "signed_in"]
        assert len(signed_in) == 1
        callback = [e for e in events
                    if e["event"] == "request" and e["path"] == "/oauth2/callback"]
        assert len(callback) == 1
        assert HEX_ID.fullmatch(signed_in[0]["request_id"])
        assert signed_in[0]["request_id"] == callback[0]["request_id"]
        requests = [e for e in events if e["event"] == "request"]
        assert all(e["request_id"] for e in requests)


class TestRequestId:
    @pytest.mark.parametrize(("sent", "kept"), [
        ("abc-123", True),
        ("trace:01HZX.9_a-b", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("quote\"inside", False),
        ("", False),
    ])
    async def test_sane_client_ids_are_kept_and_passed_upstream(
            self, gateway: RunningGateway, alice_cookie: str, sent: str, kept: bool) -> None:
        """A sane X-Request-Id reaches the upstream and the response; anything else is replaced."""
        async with aiohttp.ClientSession() as http, http.get(
                f"{gateway.url}/echo", headers={"Cookie": alice_cookie, "X-Request-Id": sent},
                allow_redirects=False) as resp:
            assert resp.status == 200
            body = await resp.json()
        upstream_ids = [v for k, v in body["headers"] if k.lower() == "x-request-id"]
        assert len(upstream_ids) == 1
        if kept:
            assert upstream_ids == [sent]
        else:
            assert HEX_ID.fullmatch(upstream_ids[0])

    async def test_proxied_response_returns_the_request_id(
            self, gateway: RunningGateway, alice_cookie: str) -> None:
        """The upstream's response reaches the client with the request's X-Request-Id."""
        async with aiohttp.ClientSession() as http, http.get(
                f"{gateway.url}/echo", headers={"Cookie": alice_cookie, "X-Request-Id": "r-1"},
                allow_redirects=False) as resp:
            assert resp.status == 200
        assert resp.headers.get("X-Request-Id") == "r-1"

    async def test_gateway_error_response_names_the_request_id(
            self, gateway: RunningGateway) -> None:
        """A 401 JSON answer carries the request id in its body and X-Request-Id header."""
        async with aiohttp.ClientSession() as http, http.get(
                f"{gateway.url}/api", headers={"Accept": "application/json",
                                               "X-Request-Id": "req-42"}) as resp:
            body = await resp.json()
        assert resp.status == 401
        assert body["request_id"] == "req-42"
        assert resp.headers["X-Request-Id"] == "req-42"


class TestRedaction:
    @pytest.mark.parametrize(("key", "value", "leak"), [
        ("detail", f"token was {JWT}", JWT),
        ("tokens", [JWT, "fine"], JWT),
        ("detail", f"refresh {REFRESH}", REFRESH),
        ("url", "/oauth2/callback?code=3f1d2c4b-aaaa-bbbb&state=s3cr3tstate", "3f1d2c4b-aaaa"),
        ("url", "/oauth2/callback?code=3f1d2c4b-aaaa-bbbb&state=s3cr3tstate", "s3cr3tstate"),
        ("body", "grant_type=refresh_token&refresh_token=opaque-refresh-value", "opaque-refresh"),
        ("body", "client_id=web&client_secret=hunter2-secret", "hunter2-secret"),
        ("client_secret", "hunter2-secret", "hunter2-secret"),
        ("refresh_token", "opaque-refresh-value", "opaque-refresh"),
        ("cookie", "_cognito_gateway=gAAAAAB-session", "gAAAAAB"),
        ("Cookie", "_cognito_gateway=gAAAAAB-session", "gAAAAAB"),
        ("authorization", "Basic Z2F0ZXdheTpzZWNyZXQ=", "Z2F0ZXdheTpzZWNyZXQ"),
        ("headers", {"Authorization": "Bearer opaque-value", "Accept": "text/html"},
         "opaque-value"),
        ("headers", {"Set-Cookie": "_cognito_gateway=gAAAAAB-x; Path=/"}, "gAAAAAB"),
    ])
    def test_secrets_are_masked(self, key: str, value: Any, leak: str) -> None:
        """Values of sensitive keys, JWT-shaped strings and secret parameters are masked."""
        out = redact(None, "info", {"event": "x", key: value})
        assert leak not in repr(out)
        assert REDACTED in repr(out)

    @pytest.mark.parametrize(("key", "value"), [
        ("path", "/oauth2/callback"),
        ("client_id", "gateway-client"),
        ("error", "invalid_grant"),
        ("headers", {"Accept": "text/html"}),
    ])
    def test_ordinary_values_are_kept(self, key: str, value: Any) -> None:
        """Redaction leaves everything else alone."""
        assert redact(None, "info", {"event": "x", key: value})[key] == value

    def test_structlog_and_stdlib_lines_are_both_redacted(
            self, log_buffer: io.StringIO, secrets: Secrets) -> None:
        """A token in a structlog field or a stdlib message never reaches the output."""
        secrets.add("opaque-refresh-value")
        get_logger("tests").warning("oops", detail=f"Bearer {JWT}",
                                    refresh_token="opaque-refresh-value")
        logging.getLogger("aiohttp.client").warning("GET /cb?code=abcdef123456&x=1 %s", JWT)
        output = log_text(log_buffer)
        assert JWT not in output
        assert "abcdef123456" not in output
        assert "opaque-refresh-value" not in output
        events = log_events(log_buffer)
        assert [e["event"] for e in events][-2:] == [
            "oops", f"GET /cb?code={REDACTED}&x=1 {REDACTED}"]


class TestHintTable:
    def test_docs_embed_the_hint_table_of_the_code(self) -> None:
        """docs/observability.md carries diagnosis.py's table verbatim, in match order."""
        doc = (REPO / "docs" / "observability.md").read_text(encoding="utf-8")
        start = doc.index("<!-- hint-table:start -->\n") + len("<!-- hint-table:start -->\n")
        assert doc[start:doc.index("<!-- hint-table:end -->")] == hint_table()

    @pytest.mark.parametrize(("outcome", "grant_type", "public", "phrase"), [
        ("invalid_client", "authorization_code", False, "the client secret is wrong"),
        ("invalid_client", "refresh_token", True, "no secret was sent"),
        ("invalid_grant", "authorization_code", False, "already used"),
        ("invalid_grant", "refresh_token", False, "refresh token is revoked or expired"),
        ("unauthorized_client", "refresh_token", False, "may not use refresh tokens"),
        ("http_502", "authorization_code", False, "sign in again"),
        ("http_503", "refresh_token", False, "keeps serving"),
        ("http_404", "refresh_token", False, "token endpoint URL is probably wrong"),
        ("timeout", "refresh_token", False, "did not answer in time"),
        ("slow_down", "authorization_code", False, "'slow_down'"),
    ])
    def test_first_matching_row_gives_the_hint(self, outcome: str, grant_type: str,
                                               public: bool, phrase: str) -> None:
        """Rows match on outcome, grant type and client kind; unknown codes get a generic hint."""
        assert phrase in diagnose(outcome, description=None, grant_type=grant_type,
                                  public_client=public)

    def test_invalid_redirect_description_wins(self) -> None:
        """unauthorized_client with error_description invalid_redirect names the callback URL."""
        hint = diagnose("unauthorized_client", description="invalid_redirect",
                        grant_type="authorization_code", public_client=False)
        assert "server.public_url + /oauth2/callback" in hint


class TestAccessLog:
    async def test_one_access_line_per_request_without_the_query(
            self, logged_gateway: str, log_buffer: io.StringIO) -> None:
        """Each request logs one `request` line: method, path (no query), status, duration, id."""
        async with aiohttp.ClientSession() as http:
            for n, path in enumerate(("/ping", "/page?code=abc123secretcode&x=1")):
                async with http.get(f"{logged_gateway}{path}",
                                    headers={"X-Request-Id": f"acc-{n}",
                                             "User-Agent": "log-test"}) as resp:
                    await resp.read()
        lines = [e for e in log_events(log_buffer) if e["event"] == "request"]
        assert [(e["method"], e["path"], e["status"], e["request_id"]) for e in lines] == [
            ("GET", "/ping", 200, "acc-0"), ("GET", "/page", 401, "acc-1")]
        for line in lines:
            assert line["logger"] == "gateway.access"
            assert line["level"] == "info"
            assert line["user_agent"] == "log-test"
            assert line["remote"] == "127.0.0.1"
            assert isinstance(line["duration_ms"], float | int)
        assert "abc123secretcode" not in log_text(log_buffer)

    async def test_sign_in_leaves_no_secret_in_the_access_log(
            self, logged_gateway: str, log_buffer: io.StringIO) -> None:
        """The callback line has its path only: the code and state stay out of the log."""
        async with ScriptedBrowser() as browser:
            await browser.sign_in(f"{logged_gateway}/", ALICE.username, ALICE.password)
            codes = [h.url for h in browser.history if "/oauth2/callback?" in h.url]
        assert codes
        code = dict(p.split("=", 1) for p in codes[0].split("?", 1)[1].split("&"))["code"]
        output = log_text(log_buffer)
        assert code not in output
        assert CLIENT_SECRET not in output
