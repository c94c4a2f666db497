"""Reading the gateway's cookies from a Cookie header: each header read for what it holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import example, given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.sessions.cookies import CookiePolicy
from gateway.upstream.forwarding import TrustedProxies, upstream_request_headers

if TYPE_CHECKING:
    from aiohttp import web

POLICY = CookiePolicy("_cognito_gateway", secure=True, samesite="lax")


def with_cookie(header: str) -> web.Request:
    return make_mocked_request("GET", "/", headers=CIMultiDict({"Cookie": header}))


@pytest.mark.parametrize(("first", "second", "expected"), [
    ("_cognito_gateway=abc", "_cognito_gateway=xyz", "xyz"),
    ("_cognito_gateway=abc", "other=1", None),
    ("a=1", "_cognito_gateway=p1; x=2; _cognito_gateway_1=p2", "p1p2"),
], ids=["new-value", "cookie-gone", "chunks-appear"])
def test_each_request_reads_its_own_header(first: str, second: str,
                                           expected: str | None) -> None:
    """A request's cookie is read from its own header, whatever header was read before."""
    POLICY.read(with_cookie(first))
    request = with_cookie(second)
    assert POLICY.read(request) == expected
    assert POLICY.read(request) == expected


def test_own_cookies_are_a_fresh_map_each_time() -> None:
    """Changing the returned map never changes what the next call returns."""
    header = "_cognito_gateway=abc; other=1"
    found = POLICY.own_cookies(header)
    found["_cognito_gateway_1"] = "injected"
    assert POLICY.own_cookies(header) == {"_cognito_gateway": "abc"}


COOKIE_TEXT = st.lists(st.sampled_from([*'ab_=; \t"', "_cognito_gateway", "\u3000"]),
                       max_size=30).map("".join)


def reference_own(header: str) -> dict[str, str]:
    """The gateway's cookies in `header` by the plain split-and-partition reading."""
    found = {}
    for pair in header.split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep and POLICY.owns(name):
            found[name] = value.strip('"')
    return found


def reference_withheld(header: str) -> str:
    """`header` without the gateway's cookies, by the plain split-and-partition reading."""
    kept = []
    for raw in header.split(";"):
        pair = raw.strip()
        name = pair.partition("=")[0].rstrip()
        if name and not POLICY.owns(name):
            kept.append(pair)
    return "; ".join(kept)


@example("_cognito_gateway =x; _cognito_gateway_1= y ; a")
@example(' _cognito_gateway="v" ;;a=1; =b;_cognito_gateway')
@given(COOKIE_TEXT)
def test_own_cookies_read_as_a_plain_split_reads_them(header: str) -> None:
    """Scanning with find gives exactly the split-and-partition reading, on any header."""
    assert POLICY.own_cookies(header) == reference_own(header)


@example("_cognito_gateway =x; _cognito_gateway_1= y ; a")
@example(' _cognito_gateway="v" ;;a=1; =b;_cognito_gateway')
@given(COOKIE_TEXT)
def test_the_upstream_gets_the_cookie_header_a_plain_split_keeps(header: str) -> None:
    """The Cookie header forwarded upstream is the split-and-partition reading's, on any
    header: other cookies kept in order, the gateway's withheld."""
    out = upstream_request_headers(
        CIMultiDictProxy(CIMultiDict({"Cookie": header})), peer="10.0.0.9", scheme="https",
        host="app.example.com", trusted=TrustedProxies([]), own_cookie=POLICY.owns,
        request_id="r-1", identity={})
    expected = reference_withheld(header)
    assert out.getall("Cookie", []) == ([expected] if expected else [])
