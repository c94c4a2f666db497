"""The proxy's header pairs are the forwarding rules' headers, in the same order."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.upstream.forwarding import (
    TrustedProxies,
    upstream_request_header_pairs,
    upstream_request_headers,
)

IDENTITY = {"X-Forwarded-User": "alice", "X-Amzn-Oidc-Identity": "sub-1"}


def owns(name: str) -> bool:
    return name.startswith("_gw")


@pytest.mark.parametrize(("incoming", "trusted"), [
    ([("Accept", "*/*"), ("Cookie", "_gw=s; a=1"), ("X-Forwarded-User", "mallory")], ""),
    ([("Connection", "x-drop"), ("X-Drop", "1"), ("X-Keep", "2"), ("Accept", "a"),
      ("accept", "b")], ""),
    ([("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "http")], "10.0.0.0/8"),
], ids=["cookies-and-identity", "connection-named-and-duplicates", "trusted-proxy"])
def test_pairs_are_the_forwarded_headers_in_order(incoming: list[tuple[str, str]],
                                                  trusted: str) -> None:
    """Pairs and the multidict hold the same headers, duplicates and order kept."""
    proxy = CIMultiDictProxy(CIMultiDict(incoming))
    networks = TrustedProxies([trusted] if trusted else [])
    pairs = upstream_request_header_pairs(
        proxy, peer="10.0.0.9", scheme="https", host="app.example.com", trusted=networks,
        own_cookie=owns, request_id="r-1", identity=IDENTITY)
    headers = upstream_request_headers(
        proxy, peer="10.0.0.9", scheme="https", host="app.example.com", trusted=networks,
        own_cookie=owns, request_id="r-1", identity=IDENTITY)
    assert pairs == list(headers.items())
    assert ("X-Forwarded-User", "mallory") not in pairs
