"""Return paths: however a return target was remembered, it stays on the gateway's origin."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from gateway.auth.redirects import safe_return_path
from gateway.sessions.cipher import Cipher
from tests.conftest import ALICE, GatewayFactory
from tests.support.browser import ScriptedBrowser
from tests.support.rawhttp import raw_request

if TYPE_CHECKING:
    from pathlib import Path

PUBLIC_URL = "https://app.example.com"

CASES = [
    # (target, expected)
    ("/a/b?c=1", "/a/b?c=1"),
    ("/", "/"),
    ("/a/../b", "/b"),
    ("/a/%2e%2e/b", "/"),
    ("https://app.example.com/x?y", "/x?y"),
    ("HTTPS://APP.example.com/x", "/x"),
    ("https://app.example.com", "/"),
    ("http://app.example.com/x", "/"),
    ("https://app.example.com:444/x", "/"),
    ("https://evil.example/x", "/"),
    ("//evil.example/x", "/"),
    ("///evil.example/x", "/"),
    ("/\\evil.example/x", "/"),
    ("\\\\evil.example/x", "/"),
    ("/.//evil.example/x", "/evil.example/x"),
    ("/%2F%2Fevil.example", "/"),
    ("/\t/evil.example", "/"),
    ("/\n/evil.example", "/"),
    (" /x", "/"),
    ("/x y", "/"),
    ("javascript:alert(1)", "/"),
    ("data:text/html,x", "/"),
    ("x/y", "/"),
    ("?x=1", "/"),
    ("#frag", "/"),
    ("", "/"),
    (None, "/"),
    ("https://app.example.com@evil.example/", "/"),
    ("https://evil.example\\@app.example.com/", "/"),
    ("/x?next=//evil.example", "/x?next=//evil.example"),
    ("/caf%C3%A9", "/caf%C3%A9"),
    ("/%EF%BC%8F%EF%BC%8Fevil.example", "/"),
    ("http://[::1/x", "/"),
]


@pytest.mark.parametrize(("target", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_return_targets_are_reduced_to_same_origin_paths(target: str | None,
                                                         expected: str) -> None:
    """Same-origin paths survive (normalised); every other target becomes /."""
    assert safe_return_path(target, PUBLIC_URL) == expected


def browser_reading(location: str) -> str:
    """What a browser navigates to for `Location: <location>` on PUBLIC_URL (WHATWG: tabs and
    newlines removed, backslashes read as slashes in http(s) URLs)."""
    cleaned = "".join(ch for ch in location if ch not in "\t\n\r").replace("\\", "/")
    return urljoin(PUBLIC_URL + "/", cleaned)


@given(st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(["/", "\\", "//", ".", "..", "%2f", "%5c", "evil.example", "@",
                              ":", "https:", "app.example.com", "?", "#", "\t", " ", "%2e"]),
             max_size=10).map("".join)))
@settings(max_examples=600)
def test_no_target_leaves_the_origin(target: str) -> None:
    """Whatever the input, the browser stays on the gateway's origin and path starts with /."""
    result = safe_return_path(target, PUBLIC_URL)
    assert result.startswith("/")
    assert not result.startswith("//")
    landed = urlsplit(browser_reading(result))
    assert (landed.scheme, landed.netloc) == ("https", "app.example.com")


async def test_a_navigation_to_a_protocol_relative_path_signs_in_back_on_this_origin(
        make_gateway: GatewayFactory) -> None:
    """`GET //evil.example/x` without a session: after sign-in the browser lands on this
    gateway's /evil.example/x, never on evil.example."""
    gateway = await make_gateway()
    port = URL(gateway.url).port
    assert port is not None
    first = await raw_request(port, b"GET //evil.example/x HTTP/1.1", {"Accept": "text/html"})
    assert first.status == 302
    pending = first.headers["set-cookie"].split(";")[0]
    name, _, value = pending.partition("=")
    async with ScriptedBrowser() as browser:
        browser.jar.update_cookies({name: value}, URL(gateway.url + "/oauth2/callback"))
        page = await browser.sign_in(first.headers["location"], ALICE.username, ALICE.password)
    assert str(page.url) == gateway.url + "/evil.example/x"


@pytest.mark.parametrize("rd", ["//evil.example/x", "/\\evil.example/x", "https://evil.example/"])
async def test_sign_in_rd_off_origin_returns_to_the_root(make_gateway: GatewayFactory,
                                                         rd: str) -> None:
    """/oauth2/sign_in?rd=<elsewhere> ends on / of the gateway."""
    gateway = await make_gateway()
    async with ScriptedBrowser() as browser:
        page = await browser.sign_in(URL(gateway.url + "/oauth2/sign_in").with_query(rd=rd),
                                     ALICE.username, ALICE.password)
    assert str(page.url) == gateway.url + "/"


async def test_the_retry_link_of_an_error_page_stays_on_this_origin(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    """A 503 page for `//evil.example/x` (session store down) links to /evil.example/x."""
    key = Fernet.generate_key().decode()
    gateway = await make_gateway(GATEWAY_SESSION_STORE="redis", GATEWAY_SESSION_SECRET=key,
                                 GATEWAY_SESSION_REDIS_URL=f"unix://{tmp_path}/no-redis.sock")
    cookie = "_cognito_gateway=" + Cipher([key]).seal({"sid": "some-session"})
    port = URL(gateway.url).port
    assert port is not None
    page = await raw_request(port, b"GET //evil.example/x HTTP/1.1",
                             {"Accept": "text/html", "Cookie": cookie})
    assert page.status == 503
    assert b'href="/evil.example/x"' in page.body
    assert b"evil.example/x\"" in page.body
    async with aiohttp.ClientSession() as http, http.get(
            gateway.url + "/x", headers={"Cookie": cookie, "Accept": "application/json"}) as resp:
        body = await resp.json()
    assert body["error"] == "session_store_unavailable"
