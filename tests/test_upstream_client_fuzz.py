"""gateway.upstream.client against generated upstream responses (hypothesis).

A raw server answers each request with the bytes of the current example: well-formed responses
in every framing, the same responses cut short, corrupted or followed by garbage, and plain
garbage. One client serves all the examples of a test, so a connection wrongly kept alive by one
example would hand its leftovers to the next and break that one's exact expectation. Whatever
the bytes, the client raises nothing but UpstreamClientError subclasses, and after every example
no connection is left lent out.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.upstream.client import UpstreamClient, UpstreamClientError
from tests.test_upstream_client_failures import RawExchange, ScriptedUpstream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

NAME = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=12).filter(
    lambda n: n.lower() not in {"content-length", "transfer-encoding", "connection"})
VALUE = st.text(string.ascii_letters + string.digits + " ,;=/:._-", max_size=30).map(str.strip)
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Scenario:
    """The bytes the upstream sends, what it does after, and what a correct client returns."""

    method: str
    wire: bytes
    then: str  # "keep" or "close"
    status: int | None = None  # None: anything but a crash or a leak is acceptable
    headers: list[tuple[str, str]] | None = None
    body: bytes = b""
    reusable: bool = False


@st.composite
def well_formed(draw: st.DrawFn) -> Scenario:
    """A valid response in one of the framings, with its exact expectation."""
    method = draw(st.sampled_from(["GET", "HEAD"]))
    status = draw(st.sampled_from([200, 201, 204, 206, 304, 404, 500, 503]))
    version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    headers = draw(st.lists(st.tuples(NAME, VALUE), max_size=8))
    bodyless = status in (204, 304)
    body = b"" if bodyless else draw(st.binary(max_size=3000))
    framing = "none" if bodyless else draw(st.sampled_from(["length", "chunked", "until-close"]))
    interim = draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2))
    close_header = draw(st.booleans()) and version == "1.1"
    keep_header = version == "1.0" and draw(st.booleans())

    fields = list(headers)
    if framing == "length":
        fields.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", "chunked"))
    if close_header:
        fields.append(("Connection", "close"))
    if keep_header:
        fields.append(("Connection", "keep-alive"))
    reason = draw(st.sampled_from(["OK", "Fine", "x"]))
    head = f"HTTP/{version} {status} {reason}\r\n".encode()
    head += b"".join(f"{name}: {value}\r\n".encode() for name, value in fields) + b"\r\n"
    wire = b"".join(b"HTTP/1.1 %d Interim\r\n\r\n" % code for code in interim) + head
    if method == "GET":
        wire += _chunked(draw, body) if framing == "chunked" else body
    keeps = (version == "1.1" or keep_header) and not close_header
    reusable = keeps and (framing != "until-close" or method == "HEAD")
    return Scenario(method, wire, "keep" if reusable else "close", status, fields,
                    b"" if method == "HEAD" else body, reusable)


def _chunked(draw: st.DrawFn, body: bytes) -> bytes:
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=5)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    out = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n"
    if draw(st.booleans()):
        out += b"X-Trailer: t\r\n"
    return out + b"\r\n"


@st.composite
def damaged(draw: st.DrawFn) -> Scenario:
    """A valid response cut short, with a byte changed, or followed by garbage; or garbage."""
    base = draw(well_formed())
    wire = base.wire
    kind = draw(st.sampled_from(["cut", "flip", "suffix", "garbage"]))
    if kind == "cut":
        wire = wire[:draw(st.integers(0, max(len(wire) - 1, 0)))]
    elif kind == "flip" and wire:
        at = draw(st.integers(0, len(wire) - 1))
        wire = wire[:at] + bytes([draw(st.integers(0, 255))]) + wire[at + 1:]
    elif kind == "suffix":
        wire += draw(st.binary(min_size=1, max_size=100))
    else:
        wire = draw(st.binary(max_size=300))
    return Scenario(base.method, wire, "close")


async def _serve_current(upstream: ScriptedUpstream, current: list[Scenario]) -> None:
    async def script(exchange: RawExchange) -> None:
        scenario = current[0]
        exchange.send(scenario.wire)
        if scenario.then == "close":
            await exchange.writer.drain()
            exchange.close()
    upstream.script = script


@pytest.fixture
async def fuzz_target() -> AsyncIterator[tuple[ScriptedUpstream, UpstreamClient, list[Scenario]]]:
    current: list[Scenario] = []
    upstream = await ScriptedUpstream(_never).start()
    await _serve_current(upstream, current)
    client = UpstreamClient(upstream.url, read_timeout=2, max_header_bytes=4096)
    yield upstream, client, current
    await client.aclose()
    await upstream.close()


async def _never(_exchange: RawExchange) -> None:
    raise AssertionError("replaced before use")


async def _run(client: UpstreamClient, scenario: Scenario) -> None:
    try:
        response = await client.request(scenario.method, "/")
    except UpstreamClientError:
        assert scenario.status is None, "a well-formed response was refused"
        return
    try:
        body = await response.read()
    except UpstreamClientError:
        assert scenario.status is None, "a well-formed body was refused"
        return
    finally:
        await response.aclose()
    if scenario.status is not None:
        assert (response.status, response.headers, body) == (
            scenario.status, scenario.headers, scenario.body)
        assert client.idle_connections == (1 if scenario.reusable else 0)


class TestGeneratedResponses:
    """Any bytes from the upstream: typed errors only, exact results when valid, no leaks."""

    @FUZZ
    @given(scenario=well_formed())
    async def test_well_formed(self, fuzz_target: tuple[ScriptedUpstream, UpstreamClient,
                                                         list[Scenario]],
                               scenario: Scenario) -> None:
        """A valid response is returned exactly, and kept alive exactly when it should be."""
        _, client, current = fuzz_target
        current[:] = [scenario]
        await _run(client, scenario)
        assert client.open_connections == client.idle_connections <= 1

    @FUZZ
    @given(scenario=st.one_of(damaged(), well_formed()))
    async def test_anything(self, fuzz_target: tuple[ScriptedUpstream, UpstreamClient,
                                                     list[Scenario]],
                            scenario: Scenario) -> None:
        """Damaged responses raise typed errors; valid ones between them stay exact."""
        _, client, current = fuzz_target
        current[:] = [scenario]
        await _run(client, scenario)
        assert client.open_connections == client.idle_connections <= 1
