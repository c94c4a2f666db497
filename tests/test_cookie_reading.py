"""Reading the gateway's cookies from a Cookie header: each header read for what it holds."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.sessions.cookies import CookiePolicy

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
