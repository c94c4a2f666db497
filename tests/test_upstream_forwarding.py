"""Which headers cross the proxy, in each direction: the pure rules of upstream/forwarding.py."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.upstream.forwarding import (
    MAX_VERDICTS,
    TrustedProxies,
    client_response_headers,
    upstream_request_headers,
)

IDENTITY = {"X-Auth-Request-User": "alice", "X-Auth-Request-Sub": "sub-1"}


def own_cookie(name: str) -> bool:
    return name == "_gw" or name.startswith("_gw_")


def forwarded(*pairs: tuple[str, str], trusted: str = "") -> list[tuple[str, str]]:
    incoming = CIMultiDictProxy(CIMultiDict(pairs))
    out = upstream_request_headers(
        incoming, peer="10.0.0.9", scheme="https", host="app.example.com",
        trusted=TrustedProxies([trusted] if trusted else []), own_cookie=own_cookie,
        request_id="r-1", identity=IDENTITY)
    return list(out.items())


GATEWAY_SET = [("X-Forwarded-For", "10.0.0.9"), ("X-Forwarded-Proto", "https"),
               ("X-Forwarded-Host", "app.example.com"), ("X-Request-Id", "r-1"),
               *IDENTITY.items()]

REQUESTS = {
    "ordinary headers pass in order": (
        [("Accept", "*/*"), ("X-App", "1"), ("accept-language", "fr")],
        [("Accept", "*/*"), ("X-App", "1"), ("accept-language", "fr")]),
    "hop-by-hop, Host and the body's framing stay": (
        [("Host", "evil"), ("Content-Length", "5"), ("Transfer-Encoding", "chunked"),
         ("TE", "trailers"), ("Keep-Alive", "1"), ("Upgrade", "h2c"), ("Expect", "100-continue"),
         ("Proxy-Authorization", "Basic eA=="), ("X-Ok", "1")],
        [("X-Ok", "1")]),
    "headers named in Connection stay, in any case": (
        [("Connection", "keep-alive, X-Secret"), ("x-secret", "s"), ("X-Ok", "1")],
        [("X-Ok", "1")]),
    "identity and forwarding headers are the gateway's alone": (
        [("X-Auth-Request-User", "mallory"), ("X_Auth_Request_Email", "m@x"),
         ("x-amzn-oidc-data", "forged"), ("X-Forwarded-For", "1.2.3.4"),
         ("X-Request-Id", "client"), ("Forwarded", "for=1.2.3.4"), ("X-Original-URL", "/admin")],
        []),
    "the gateway's cookies are withheld, the app's kept": (
        [("Cookie", "_gw=session; app=1; _gw_1=chunk;theme=dark")],
        [("Cookie", "app=1; theme=dark")]),
    "a cookie header of the gateway's cookies only goes away": (
        [("Cookie", "_gw=session; _gw_signin_x=state")], []),
}


@pytest.mark.parametrize(("incoming", "kept"), list(REQUESTS.values()), ids=list(REQUESTS))
def test_the_upstream_gets_the_clients_allowed_headers_then_the_gateways(
        incoming: list[tuple[str, str]], kept: list[tuple[str, str]]) -> None:
    """Allowed client headers in their order, then X-Forwarded-*, the request id, identity."""
    assert forwarded(*incoming) == kept + GATEWAY_SET


def test_a_trusted_proxy_extends_the_forwarded_chain() -> None:
    """From a trusted peer the incoming X-Forwarded-* are believed and extended."""
    out = dict(forwarded(("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "http"),
                         ("X-Forwarded-Host", "a.example"), trusted="10.0.0.0/8"))
    assert (out["X-Forwarded-For"], out["X-Forwarded-Proto"], out["X-Forwarded-Host"]) == (
        "203.0.113.7, 10.0.0.9", "http", "a.example")


def test_rules_hold_for_names_past_the_remembered_ones() -> None:
    """After more distinct header names than are remembered, every name is still judged."""
    for n in range(MAX_VERDICTS + 10):
        forwarded((f"X-Filler-{n}", "1"))
    assert forwarded(("X-Auth-Request-Groups-Late", "admins"), ("X-Late", "1")) == [
        ("X-Late", "1"), *GATEWAY_SET]


RESPONSES = {
    "hop-by-hop and Connection-named headers are dropped": (
        [("Connection", "close, X-Hop"), ("x-hop", "1"), ("Keep-Alive", "5"),
         ("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")],
        [("Content-Type", "text/plain")]),
    "the upstream cannot set or delete the gateway's cookies": (
        [("Set-Cookie", "_gw=evil; Path=/"), ("Set-Cookie", "_gw_2=; Max-Age=0"),
         ("Set-Cookie", "app=1; Path=/"), ("Set-Cookie", "_gwx=ok")],
        [("Set-Cookie", "app=1; Path=/"), ("Set-Cookie", "_gwx=ok")]),
    "repeated headers keep their order": (
        [("Link", "<a>"), ("Vary", "Accept"), ("Link", "<b>")],
        [("Link", "<a>"), ("Vary", "Accept"), ("Link", "<b>")]),
}


@pytest.mark.parametrize(("upstream", "kept"), list(RESPONSES.values()), ids=list(RESPONSES))
def test_the_client_gets_the_upstreams_end_to_end_headers(
        upstream: list[tuple[str, str]], kept: list[tuple[str, str]]) -> None:
    """The answer's headers minus hop-by-hop ones and Set-Cookie for the gateway's cookies."""
    assert client_response_headers(upstream, own_cookie) == kept
