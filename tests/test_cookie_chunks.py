"""Session cookie chunking: no cookie over the browser limit, and what is written reads back."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from gateway.sessions.cookies import MAX_CHUNKS, MAX_COOKIE_BYTES, CookiePolicy

POLICY = CookiePolicy("_cognito_gateway", secure=True, samesite="lax")
CHUNK = MAX_COOKIE_BYTES - len(POLICY.name) - 3  # value bytes per chunk
BROWSER_LIMIT = 4096  # name + value, after which browsers drop a cookie silently
B64URL = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=",
                 min_size=1, max_size=CHUNK * MAX_CHUNKS)


def cookie_header(set_cookies: list[str], before: dict[str, str] | None = None) -> str:
    """The Cookie header a browser sends after applying `set_cookies` to `before`."""
    jar = dict(before or {})
    for line in set_cookies:
        parsed = SimpleCookie()
        parsed.load(line)
        for name, morsel in parsed.items():
            if morsel["max-age"] == "0":
                jar.pop(name, None)
            else:
                jar[name] = morsel.value
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def read(header: str) -> str | None:
    """What the gateway reads from a request carrying this Cookie header."""
    return POLICY.read(make_mocked_request("GET", "/", headers={"Cookie": header}))


@pytest.mark.parametrize(("size", "chunks"), [
    (1, 1), (CHUNK - 1, 1), (CHUNK, 1), (CHUNK + 1, 2), (3 * CHUNK, 3),
    (CHUNK * MAX_CHUNKS, MAX_CHUNKS),
], ids=["tiny", "one under a chunk", "exactly a chunk", "one over", "three full",
        "the most there can be"])
def test_a_value_takes_as_few_chunks_as_it_needs_each_under_the_browser_limit(
        size: int, chunks: int) -> None:
    """Chunk count is ceil(size / chunk); every name=value stays under 4096 bytes."""
    lines = POLICY.chunks("a" * size, present={}, max_age=60)
    assert len(lines) == chunks
    for line in lines:
        name_value = line.split(";", 1)[0]
        assert len(name_value.encode()) <= MAX_COOKIE_BYTES < BROWSER_LIMIT


def test_a_value_beyond_every_chunk_is_refused_not_truncated() -> None:
    """A session that cannot fit in MAX_CHUNKS cookies raises instead of losing its tail."""
    with pytest.raises(ValueError, match="exceeds"):
        POLICY.chunks("a" * (CHUNK * MAX_CHUNKS + 1), present={}, max_age=60)


@pytest.mark.parametrize(("before", "after", "deleted"), [
    (3, 1, {"_cognito_gateway_1", "_cognito_gateway_2"}),
    (2, 2, set()),
    (1, 3, set()),
    (MAX_CHUNKS, 1, {f"_cognito_gateway_{i}" for i in range(1, MAX_CHUNKS)}),
], ids=["shrinks from three to one", "same size", "grows", "shrinks from the most to one"])
def test_leftover_chunks_of_a_longer_value_are_deleted(
        before: int, after: int, deleted: set[str]) -> None:
    """Chunks the new value does not use are expired, so no stale tail is ever read back."""
    present = {name: "x" for name in POLICY.chunk_names[:before]}
    lines = POLICY.chunks("b" * (CHUNK * (after - 1) + 1), present=present, max_age=60)
    expired = {line.split("=", 1)[0] for line in lines if "Max-Age=0" in line}
    assert expired == deleted
    assert read(cookie_header(lines, present)) == "b" * (CHUNK * (after - 1) + 1)


@pytest.mark.parametrize(("header", "expected"), [
    ("_cognito_gateway=abc", "abc"),
    ("_cognito_gateway=abc; _cognito_gateway_1=def", "abcdef"),
    ("_cognito_gateway_1=def; _cognito_gateway=abc", "abcdef"),
    ("_cognito_gateway=abc; _cognito_gateway_2=ghi", "abc"),
    ("_cognito_gateway_1=def", None),
    ('_cognito_gateway="abc"', "abc"),
    ("other=1; _cognito_gatewayX=zzz; _cognito_gateway=abc", "abc"),
    ("", None),
    ("_cognito_gateway", None),
], ids=["one chunk", "two chunks", "order of the header does not matter", "a gap ends the value",
        "no first chunk is no value", "quoted value", "look-alike names are not ours",
        "no cookie", "a name without a value"])
def test_reading_concatenates_consecutive_chunks_only(header: str, expected: str | None) -> None:
    """Chunks are read in index order from the first; anything else is ignored."""
    assert read(header) == expected


@pytest.mark.parametrize(("name", "owned"), [
    ("_cognito_gateway", True), ("_cognito_gateway_1", True), ("_cognito_gateway_signin", True),
    ("_cognito_gatewayX", False), ("cognito_gateway", False), ("session", False),
], ids=["session", "a chunk", "sign-in state", "look-alike", "no underscore", "the app's"])
def test_the_gateway_owns_exactly_its_own_cookie_names(name: str, owned: bool) -> None:
    """Own cookies are the configured name and names under it (`<name>_...`)."""
    assert POLICY.owns(name) is owned


@pytest.mark.parametrize(("policy", "present", "absent"), [
    (CookiePolicy("s", secure=True, samesite="lax"), ["HttpOnly", "Secure", "SameSite=Lax"], []),
    (CookiePolicy("s", secure=False, samesite="strict"), ["HttpOnly", "SameSite=Strict"],
     ["Secure"]),
], ids=["secure lax", "plain strict"])
def test_every_chunk_carries_the_configured_attributes(
        policy: CookiePolicy, present: list[str], absent: list[str]) -> None:
    """HttpOnly always; Secure and SameSite as configured; Path=/ so every path sends it."""
    for line in policy.chunks("v" * 9000, present={}, max_age=60):
        attributes = {part.strip().split("=")[0] for part in line.split(";")[1:]}
        for attribute in present:
            assert attribute in line
        for attribute in absent:
            assert attribute not in attributes
        assert "Path=/" in line


@given(first=B64URL, second=B64URL)
def test_any_value_written_over_any_earlier_one_reads_back_exactly(
        first: str, second: str) -> None:
    """Write one value, then another over it: the browser's jar reads back the second."""
    jar_header = cookie_header(POLICY.chunks(first, present={}, max_age=60))
    present = POLICY.own_cookies(jar_header)
    lines = POLICY.chunks(second, present=present, max_age=60)
    assert read(cookie_header(lines, present)) == second
