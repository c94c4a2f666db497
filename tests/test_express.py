"""The express lane (gateway/express.py) against the full path: the same bytes, the same
decisions, the same counts, in the same order.

Two gateways with the same configuration and session keys serve the same upstream: `lane`
as a served gateway runs, `full` with its lane taken away (`server.lane = None`: every request
goes aiohttp's way). What one answers, the other must answer byte for byte (Date aside), for
generated upstream responses in every framing, damaged ones included, and for each client
HTTP version; the upstream must receive the same request from both. Requests the lane must
leave to the full path are listed with why, and `ExpressLane.served` shows which way each
went: a case that silently stopped taking the lane would otherwise pass unnoticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.devidp import UserPool
from gateway.express import EXPRESS_LANE, ExpressLane
from gateway.listener import GatewayServer
from tests.conftest import (
    ALICE,
    CLIENT_ID,
    CLIENT_SECRET,
    Secrets,
    gateway_client,
    gateway_env,
    log_events,
    sign_in_cookies,
    start_gateway,
)
from tests.support.ports import listening_socket, refusing_port
from tests.support.tokens import user_tokens
from tests.test_upstream_client_failures import RawExchange, ScriptedUpstream
from tests.test_upstream_client_fuzz import FUZZ, Scenario, damaged, well_formed

if TYPE_CHECKING:
    import io
    import socket
    from collections.abc import AsyncIterator

    from gateway.devidp import DevIdp
    from tests.conftest import RunningGateway

READ_TIMEOUT = 5.0
_DATE = re.compile(rb"\r\nDate: [^\r]*")
PARITY = settings(FUZZ, max_examples=60)


@dataclass
class Pair:
    """The same gateway twice: with its express lane, and with every request the full way."""

    lane: RunningGateway
    full: RunningGateway

    @property
    def served(self) -> int:
        """Requests the lane gateway served by its lane so far."""
        return lane_of(self.lane).served

    @property
    def both(self) -> tuple[RunningGateway, RunningGateway]:
        return self.lane, self.full


def lane_of(gateway: RunningGateway) -> ExpressLane:
    return gateway.app[EXPRESS_LANE]


def server_of(gateway: RunningGateway) -> GatewayServer:
    server = gateway.runner.server
    assert isinstance(server, GatewayServer)
    return server


@pytest.fixture
def pool(gateway_url: str, upstream: str) -> UserPool:
    """The test pool, whose app client may also send its codes to the upstream (for a bearer
    token of ALICE's, obtained directly)."""
    callbacks = [f"{gateway_url}/oauth2/callback", f"{upstream}/cb"]
    return UserPool(users=[ALICE], clients=[gateway_client(gateway_url,
                                                           callback_urls=callbacks)])


@dataclass
class Sites:
    """Where the pair runs: the IdP, and the lane gateway's socket (the one the IdP's app
    client knows as its callback's host)."""

    idp: DevIdp
    socket: socket.socket
    secrets: Secrets


@pytest.fixture
def sites(idp: DevIdp, gateway_socket: socket.socket, secrets: Secrets) -> Sites:
    return Sites(idp, gateway_socket, secrets)


@contextlib.asynccontextmanager
async def running_pair(sites: Sites, upstream_url: str, **env: str) -> AsyncIterator[Pair]:
    idp, lane_socket, secrets = sites.idp, sites.socket, sites.secrets
    with listening_socket() as full_socket:
        url = f"http://127.0.0.1:{lane_socket.getsockname()[1]}"
        full_env = gateway_env(idp, upstream_url, url, **env)
        secrets.add(full_env["GATEWAY_SESSION_SECRET"], full_env["GATEWAY_COGNITO_CLIENT_SECRET"])
        lane_runner, lane = await start_gateway(full_env, lane_socket)
        full_runner, full = await start_gateway(full_env, full_socket)
        server_of(full).lane = None
        try:
            yield Pair(lane, full)
        finally:
            await lane_runner.cleanup()
            await full_runner.cleanup()


@pytest.fixture
async def pair(sites: Sites, upstream: str) -> AsyncIterator[Pair]:
    async with running_pair(sites, upstream) as made:
        yield made


@pytest.fixture
async def public_pair(sites: Sites, upstream: str) -> AsyncIterator[Pair]:
    async with running_pair(sites, upstream, GATEWAY_AUTH_PUBLIC_PATHS="/*") as made:
        yield made


# -- a raw client: the bytes as sent, the bytes as answered -----------------------------------

async def exchange(gateway: RunningGateway, *requests: bytes, pause: float = 0.0) -> bytes:
    """Send `requests` on one connection (`pause` seconds apart; none: in one write) and
    return every byte answered until the gateway closes it; Date values blanked."""
    port = int(gateway.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if pause:
            for request in requests:
                writer.write(request)
                await asyncio.sleep(pause)
        else:
            writer.write(b"".join(requests))
        async with asyncio.timeout(READ_TIMEOUT):
            data = await reader.read(-1)
    finally:
        writer.close()
    return _DATE.sub(b"\r\nDate: -", data)


def request(method: str, path: str, *, version: str = "1.1", close: bool = True,
            headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: app.example", "X-Request-Id: parity-1"]
    if close:
        lines.append("Connection: close")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# -- which way each request goes --------------------------------------------------------------

async def test_a_settled_session_and_a_public_path_take_the_lane(
        pair: Pair, log_buffer: io.StringIO) -> None:
    cookie = await sign_in_cookies(pair.lane.url)
    first = pair.served
    answers = [await exchange(gateway, request("GET", "/app/page", headers={"Cookie": cookie}))
               for gateway in pair.both]
    assert pair.served == first + 1
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.1 200 OK\r\n")
    lines = [e for e in log_events(log_buffer) if e["event"] == "request"
             and e.get("path") == "/app/page"]
    assert len(lines) == 2
    for line in lines:
        line.pop("duration_ms")
        line.pop("timestamp")
    assert lines[0] == lines[1]


@dataclass(frozen=True)
class FullWay:
    """A request the lane must leave to the full path, and why."""

    request: bytes
    why: str


FULL_WAY = {
    "POST": FullWay(request("POST", "/app", body=b"abc"), "a body, and not GET/HEAD"),
    "DELETE": FullWay(request("DELETE", "/app"), "only GET and HEAD take the lane"),
    "GET with a body": FullWay(request("GET", "/app", body=b"abc"), "a body is the full path's"),
    "Expect": FullWay(request("GET", "/app", headers={"Expect": "100-continue"}),
                      "Expect is answered by the full path"),
    "Upgrade": FullWay(request("GET", "/app", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}), "WebSockets are the full path's"),
    "own endpoint": FullWay(request("GET", "/oauth2/userinfo"), "the gateway's own endpoints"),
    "unknown own path": FullWay(request("GET", "/oauth2/nope"), "refused by the router"),
    "ambiguous target": FullWay(request("GET", "/app;x=1/../admin"), "two readings"),
    "refused target": FullWay(request("GET", "/a%2Fb"), "refused by the target parse"),
    "no session": FullWay(request("GET", "/app", headers={"Accept": "text/html"}),
                          "sent to sign in"),
    "new bearer token": FullWay(request("GET", "/app", headers={"Authorization": "Bearer x.y.z"}),
                                "a token is verified the full way"),
    "unreadable cookie": FullWay(request("GET", "/app", headers={
        "Cookie": "_cognito_gateway=garbage"}), "its deletion is written back"),
}


@pytest.mark.parametrize("case", list(FULL_WAY.values()), ids=list(FULL_WAY))
async def test_requests_the_lane_leaves_to_the_full_path(case: FullWay, pair: Pair) -> None:
    before = pair.served
    answers = [await exchange(gateway, case.request) for gateway in pair.both]
    assert pair.served == before, case.why
    assert _status_line(answers[0]) == _status_line(answers[1])


async def test_a_verified_bearer_token_takes_the_lane(pair: Pair, idp: DevIdp, upstream: str,
                                                      secrets: Secrets) -> None:
    tokens = await user_tokens(idp.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                               callback=f"{upstream}/cb", username=ALICE.username,
                               password=ALICE.password)
    secrets.add(tokens["access_token"], tokens["id_token"], tokens["refresh_token"])
    sent = request("GET", "/api/items", headers={
        "Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"})
    first = [await exchange(gateway, sent) for gateway in pair.both]  # verified here
    before = pair.served
    again = [await exchange(gateway, sent) for gateway in pair.both]
    assert pair.served == before + 1
    assert first[0] == first[1] == again[0] == again[1]
    assert again[0].startswith(b"HTTP/1.1 200")


async def test_a_session_due_for_refresh_takes_the_full_path(
        sites: Sites, upstream: str) -> None:
    async with running_pair(sites, upstream,
                            GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS="86400") as made:
        cookie = await sign_in_cookies(made.lane.url)
        before = made.served
        answer = await exchange(made.lane, request("GET", "/app", headers={"Cookie": cookie}))
        assert made.served == before, "a refresh is due: its answer may carry a new cookie"
        assert answer.startswith(b"HTTP/1.1 200")


async def test_a_signed_out_session_takes_the_full_path(pair: Pair) -> None:
    cookie = await sign_in_cookies(pair.lane.url)
    await exchange(pair.lane, request("GET", "/app", headers={"Cookie": cookie}))
    served = pair.served
    await exchange(pair.lane, request("POST", "/oauth2/sign_out", headers={
        "Cookie": cookie, "Origin": pair.lane.url, "Sec-Fetch-Site": "same-origin"}))
    answer = await exchange(pair.lane, request("GET", "/app", headers={
        "Cookie": cookie, "Accept": "application/json"}))
    assert pair.served == served
    assert answer.startswith(b"HTTP/1.1 401")


def _status_line(data: bytes) -> bytes:
    return data.partition(b"\r\n")[0]


def _without_ids(data: bytes) -> bytes:
    """An answer with its generated request ids (header, page, JSON) blanked."""
    return re.sub(rb"[0-9a-f]{32}", b"<id>", data)


# -- the same bytes, whatever the upstream answers -------------------------------------------

@pytest.fixture
async def scripted_pair(sites: Sites) -> AsyncIterator[tuple[Pair, list[Scenario],
                                                                             ScriptedUpstream]]:
    current: list[Scenario] = []

    async def script(exchange: RawExchange) -> None:
        scenario = current[0]
        exchange.send(scenario.wire)
        if scenario.then == "close":
            await exchange.writer.drain()
            exchange.close()

    upstream = await ScriptedUpstream(script).start()
    try:
        async with running_pair(sites, upstream.url, GATEWAY_AUTH_PUBLIC_PATHS="/*",
                                GATEWAY_UPSTREAM_TIMEOUT_SECONDS="1") as made:
            yield made, current, upstream
    finally:
        await upstream.close()


@PARITY
@given(scenario=st.one_of(well_formed(), well_formed(), damaged()),
       version=st.sampled_from(["1.1", "1.0"]), close=st.booleans())
async def test_the_lane_answers_as_the_full_path_whatever_the_upstream_sends(
        scripted_pair: tuple[Pair, list[Scenario], ScriptedUpstream], scenario: Scenario,
        version: str, close: bool) -> None:
    made, current, upstream = scripted_pair
    current[:] = [scenario]
    sent = request(scenario.method, "/generated?q=1", version=version, close=close)
    answers, received = [], []
    before = made.served
    for gateway in made.both:
        upstream.requests.clear()
        # Without `close` the gateway keeps the connection: a second request that closes it
        # follows once the first is answered (alone, so the first may take the lane).
        follow = request(scenario.method, "/generated?q=2", version=version)
        answers.append(await exchange(gateway, sent, *(() if close else (follow,)),
                                      pause=0.02))
        received.append(list(upstream.requests))
    assert made.served > before  # the first request at least: it arrives alone
    assert answers[0] == answers[1]
    assert received[0] == received[1]


async def test_the_upstream_receives_the_same_request_from_both(pair: Pair) -> None:
    cookie = await sign_in_cookies(pair.lane.url)
    await exchange(pair.lane, request("GET", "/warm", headers={"Cookie": cookie}))
    before = pair.served
    sent = request("GET", "/echo/path?x=1&y=%20", headers={
        "Cookie": f"{cookie}; app=1", "X-Forwarded-For": "203.0.113.9",
        "X-Amzn-Oidc-Identity": "forged", "User-Agent": "parity"})
    answers = [await exchange(gateway, sent) for gateway in pair.both]
    assert pair.served == before + 1
    assert answers[0] == answers[1]
    assert b"forged" not in answers[0]
    assert b'"x-auth-request-user", "alice"' in answers[0].lower()


# -- order, failures, shutdown ----------------------------------------------------------------

async def test_requests_on_one_connection_are_answered_in_order(public_pair: Pair) -> None:
    """A request arriving while the lane serves the one before waits for it."""
    slow = request("GET", "/slow?seconds=0.3", close=False)
    quick = request("GET", "/echo/second", close=False)
    last = request("POST", "/echo/third", body=b"x")
    before = public_pair.served
    answers = [await exchange(gateway, slow, quick, last, pause=0.05)
               for gateway in public_pair.both]
    assert answers[0] == answers[1]
    assert public_pair.served == before + 1  # the slow one; the others came while it ran
    assert answers[0].index(b"slow done") < answers[0].index(b"/echo/second") \
        < answers[0].index(b"/echo/third")


async def test_pipelined_requests_are_answered_in_order(public_pair: Pair) -> None:
    requests = [request("GET", f"/echo/{n}", close=n == 3) for n in range(4)]
    answers = [await exchange(gateway, *requests) for gateway in public_pair.both]
    assert answers[0] == answers[1]
    positions = [answers[0].index(f"/echo/{n}".encode()) for n in range(4)]
    assert positions == sorted(positions)


async def test_an_unreachable_upstream_is_answered_as_by_the_full_path(
        sites: Sites, log_buffer: io.StringIO) -> None:
    with refusing_port() as port:
        async with running_pair(sites, f"http://127.0.0.1:{port}",
                                GATEWAY_AUTH_PUBLIC_PATHS="/*") as made:
            answers = [await exchange(gateway, request("GET", "/app", headers={
                "Accept": "text/html"})) for gateway in made.both]
            assert made.served == 1
            assert answers[0] == answers[1]
            assert answers[0].startswith(b"HTTP/1.1 502")
            samples = [_samples(gateway, "cognito_gateway_upstream_errors_total")
                       for gateway in made.both]
            assert samples[0] == samples[1] != {}
    lines = [e for e in log_events(log_buffer) if e["event"] in {"request", "request_failed"}]
    assert [e["event"] for e in lines].count("request") == 2


async def test_an_upstream_failing_mid_body_cuts_the_connection_as_the_full_path(
        public_pair: Pair) -> None:
    answers = [await exchange(gateway, request("GET", "/abort")) for gateway in public_pair.both]
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.1 200")
    assert answers[0].endswith(b"0123456789")
    samples = [_samples(gateway, "cognito_gateway_http_requests_total")
               for gateway in public_pair.both]
    assert samples[0] == samples[1]


async def test_metrics_count_the_same_both_ways(pair: Pair) -> None:
    cookie = await sign_in_cookies(pair.lane.url)
    for gateway in pair.both:
        await exchange(gateway, request("GET", "/warm", headers={"Cookie": cookie}))
    names = ("cognito_gateway_http_requests_total", "cognito_gateway_auth_decisions_total")
    before = {name: [_samples(g, name) for g in pair.both] for name in names}
    served = pair.served
    for gateway in pair.both:
        for path in ("/a", "/b", "/c"):
            await exchange(gateway, request("HEAD", path, headers={"Cookie": cookie}))
    assert pair.served == served + 3
    for name in names:
        after = [_samples(g, name) for g in pair.both]
        grown = [_minus(a, b) for a, b in zip(after, before[name], strict=True)]
        assert grown[0] == grown[1] != {}, name


async def test_shutdown_waits_for_the_lanes_exchange(public_pair: Pair) -> None:
    port = int(public_pair.lane.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request("GET", "/slow?seconds=0.5"))
    await asyncio.sleep(0.2)
    assert public_pair.served == 1
    await public_pair.lane.runner.cleanup()
    async with asyncio.timeout(READ_TIMEOUT):
        answer = await reader.read(-1)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"slow done")


def _samples(gateway: RunningGateway, name: str) -> dict[tuple[Any, ...], float]:
    out = {}
    for family in gateway.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _minus(after: dict[tuple[Any, ...], float],
           before: dict[tuple[Any, ...], float]) -> dict[tuple[Any, ...], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
