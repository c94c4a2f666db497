"""Session refresh through the running gateway: in the background while the tokens are valid,
waited for only once they expired, and never losing what the token endpoint answered.

The dev IdP's tokens live 4 s and rotate with a grace period of 0 (a refresh token spent twice
ends the session); the gateway refreshes 2 s before expiry. The gateway and the IdP share a
ManualClock ("two seconds later" is `clock.advance(2)`); only the IdP's injected slowness and
the token calls themselves take real time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets as random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from gateway.devidp import DevIdp, UserPool
from gateway.sessions.cipher import Cipher
from tests.conftest import (
    ALICE,
    GatewayFactory,
    RunningGateway,
    Secrets,
    gateway_client,
    log_events,
    sign_in_cookies,
)
from tests.support.clock import ManualClock
from tests.support.redis_servers import RedisServer

if TYPE_CHECKING:
    import io
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

TOKEN_SECONDS = 4
REFRESH_BEFORE = 2
SHORT = {"GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS": str(REFRESH_BEFORE)}
IN_THE_WINDOW = TOKEN_SECONDS - REFRESH_BEFORE + 0.2
SLOW = 1.0  # real seconds the IdP takes to answer a refresh when told to be slow
WITHIN = 10.0  # real seconds any awaited outcome may take before the test fails
COOKIE = "_cognito_gateway"


@dataclass
class IdpClock:
    """The IdP's clock: the test's clock plus `skew` seconds."""

    clock: ManualClock
    skew: float = 0.0

    def time(self) -> float:
        return self.clock.time() + self.skew


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def idp_clock(clock: ManualClock) -> IdpClock:
    return IdpClock(clock)


@pytest.fixture
def pool(gateway_url: str) -> UserPool:
    """Alice, with 4 s tokens whose refresh token rotates and dies at first use."""
    return UserPool(users=[ALICE], clients=[gateway_client(
        gateway_url, access_token_validity_seconds=TOKEN_SECONDS,
        id_token_validity_seconds=TOKEN_SECONDS, refresh_token_rotation=True,
        rotation_grace_seconds=0)])


@pytest.fixture
async def idp(pool: UserPool, idp_clock: IdpClock) -> AsyncIterator[DevIdp]:
    async with DevIdp(pool, now=idp_clock.time) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


def is_session_cookie(name: str) -> bool:
    """A chunk of the session cookie (not the pending sign-in's cookie)."""
    return name == COOKIE or (name.startswith(f"{COOKIE}_") and name[len(COOKIE) + 1:].isdigit())


@dataclass(frozen=True)
class Answer:
    status: int
    renewed: bool  # the response sets a new session cookie
    cleared: bool  # the response deletes the session cookie
    error: str | None


@dataclass
class Browser:
    """One browser's gateway cookies, sent and updated from Set-Cookie as a browser does."""

    cookies: dict[str, str] = field(default_factory=dict)

    @classmethod
    def signed_in(cls, header: str) -> Browser:
        pairs = (pair.split("=", 1) for pair in header.split("; "))
        return cls({name: value for name, value in pairs if is_session_cookie(name)})

    def copy(self) -> Browser:
        return Browser(dict(self.cookies))

    async def get(self, http: aiohttp.ClientSession, url: str, *,
                  accept: str = "application/json") -> Answer:
        header = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        async with http.get(f"{url}/app", allow_redirects=False,
                            headers={"Cookie": header, "Accept": accept}) as resp:
            body = await resp.read()
            set_values = {name: morsel.value for name, morsel in resp.cookies.items()
                          if is_session_cookie(name)}
            status = resp.status
        for name, value in set_values.items():
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        error = json.loads(body).get("error") if status >= 400 and accept.endswith("json") \
            else None
        return Answer(status, any(set_values.values()),
                      bool(set_values) and not any(set_values.values()), error)

    def session(self, gateway: RunningGateway) -> dict[str, Any]:
        """The session inside the cookie (the test holds the session key)."""
        sealed = "".join(self.cookies[name] for name in gateway.store.cookies.chunk_names
                         if name in self.cookies)
        data = Cipher(gateway.settings.session.secret).open(sealed, ttl=86400)
        assert data is not None, "the cookie does not hold a session"
        return data


def sample(gateway: RunningGateway, name: str, **labels: str) -> int:
    return int(gateway.metrics.registry.get_sample_value(name, labels) or 0)


def refreshes(gateway: RunningGateway, outcome: str) -> int:
    return sample(gateway, "cognito_gateway_session_refreshes_total", outcome=outcome)


def reached(count: Callable[[], int], target: int) -> Callable[[], bool]:
    """A check that `count()` has reached `target`."""
    return lambda: count() == target


async def until(check: Callable[[], bool], what: str, within: float = WITHIN) -> None:
    """Poll `check` every 10 ms (the background refresh has no event to await); fail loudly
    naming `what` after `within` real seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within} s")
        await asyncio.sleep(0.01)


async def signed_in(gateway: RunningGateway, secrets: Secrets) -> Browser:
    browser = Browser.signed_in(await sign_in_cookies(gateway.url))
    secrets.add(browser.session(gateway)["refresh_token"])
    return browser


class TestInTheBackground:
    @pytest.mark.parametrize("requests", [1, 20], ids=["one", "twenty-at-once"])
    async def test_a_due_refresh_never_delays_a_request(
            self, make_gateway: GatewayFactory, idp: DevIdp, clock: ManualClock,
            http: aiohttp.ClientSession, secrets: Secrets, requests: int) -> None:
        """Tokens due for refresh but valid, the token endpoint slow: every request is served
        at once with the current session, and all of them make one token call."""
        gateway = await make_gateway(**SHORT)
        browser = await signed_in(gateway, secrets)
        idp.add_fault("token", delay_seconds=SLOW)
        await clock.advance(IN_THE_WINDOW)
        started = time.monotonic()
        answers = await asyncio.gather(*(browser.copy().get(http, gateway.url)
                                         for _ in range(requests)))
        took = time.monotonic() - started
        assert answers == [Answer(200, False, False, None)] * requests
        assert took < SLOW / 2, f"{requests} requests took {took:.2f} s: they waited"
        await until(lambda: refreshes(gateway, "ok") == 1, "the background refresh")
        assert idp.token_requests["refresh_token"] == 1

    async def test_the_refreshed_session_reaches_the_browser_on_its_next_response(
            self, make_gateway: GatewayFactory, idp: DevIdp, clock: ManualClock,
            http: aiohttp.ClientSession, secrets: Secrets) -> None:
        """After a background refresh, the next response carries the new cookie (the rotated
        refresh token); a request still carrying the old cookie gets it too, with no call."""
        gateway = await make_gateway(**SHORT)
        browser = await signed_in(gateway, secrets)
        old = browser.session(gateway)
        straggler = browser.copy()
        await clock.advance(IN_THE_WINDOW)
        assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
        await until(lambda: refreshes(gateway, "ok") == 1, "the background refresh")
        assert await browser.get(http, gateway.url) == Answer(200, True, False, None)
        new = browser.session(gateway)
        secrets.add(new["refresh_token"])
        assert (new["sid"], new["generation"]) == (old["sid"], 1)
        assert new["refresh_token"] != old["refresh_token"]
        assert new["tokens_expire_at"] > old["tokens_expire_at"]
        assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
        assert await straggler.get(http, gateway.url) == Answer(200, True, False, None)
        assert straggler.session(gateway)["refresh_token"] == new["refresh_token"]
        assert idp.token_requests["refresh_token"] == 1

    async def test_expired_tokens_wait_for_the_refresh(
            self, make_gateway: GatewayFactory, idp: DevIdp, clock: ManualClock,
            http: aiohttp.ClientSession, secrets: Secrets) -> None:
        """A request whose tokens have expired waits for the refresh and carries its cookie."""
        gateway = await make_gateway(**SHORT)
        browser = await signed_in(gateway, secrets)
        await clock.advance(TOKEN_SECONDS + 0.2)
        assert await browser.get(http, gateway.url) == Answer(200, True, False, None)
        secrets.add(browser.session(gateway)["refresh_token"])
        assert browser.session(gateway)["generation"] == 1
        assert idp.token_requests["refresh_token"] == 1

    async def test_a_failing_token_endpoint_is_never_felt_while_the_tokens_are_valid(
            self, make_gateway: GatewayFactory, idp: DevIdp, clock: ManualClock,
            http: aiohttp.ClientSession, secrets: Secrets) -> None:
        """IdP 503 in the refresh window: requests are served at once while the refresh is
        tried three times and backs off; after the backoff the next refresh succeeds."""
        gateway = await make_gateway(GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS="3")
        browser = await signed_in(gateway, secrets)
        idp.add_fault("token", 503)
        await clock.advance(1.2)
        for attempts, pause in ((1, 0.25), (2, 0.5), (3, 0.0)):
            assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
            await until(reached(lambda: idp.token_requests["refresh_token"], attempts),
                        f"refresh attempt {attempts}")
            await clock.advance(pause)
        await until(lambda: refreshes(gateway, "failed") == 1, "the failed refresh")
        assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
        assert idp.token_requests["refresh_token"] == 3, "no attempt during the backoff"
        idp.clear_faults()
        await clock.advance(1.0)
        assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
        await until(lambda: refreshes(gateway, "ok") == 1, "the refresh after the backoff")
        assert await browser.get(http, gateway.url) == Answer(200, True, False, None)
        secrets.add(browser.session(gateway)["refresh_token"])

    async def test_a_revoked_session_ends_when_its_tokens_expire_without_another_call(
            self, make_gateway: GatewayFactory, idp: DevIdp, clock: ManualClock,
            http: aiohttp.ClientSession, secrets: Secrets) -> None:
        """Global sign-out at the IdP: the background refresh gets invalid_grant; the valid
        tokens keep serving (another replica may hold the session's new cookie), then the
        session ends at expiry without spending the refresh token again."""
        gateway = await make_gateway(**SHORT)
        browser = await signed_in(gateway, secrets)
        idp.global_sign_out(ALICE.username)
        await clock.advance(IN_THE_WINDOW)
        assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
        await until(lambda: refreshes(gateway, "rejected") == 1, "the rejected refresh")
        assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
        await clock.advance(TOKEN_SECONDS)
        assert await browser.copy().get(http, gateway.url, accept="text/html") == Answer(
            302, False, True, None)
        assert await browser.get(http, gateway.url) == Answer(401, False, True,
                                                              "unauthorized")
        assert idp.token_requests["refresh_token"] == 1
        reauthentications = {reason: sample(gateway, "cognito_gateway_reauthentications_total",
                                            reason=reason)
                             for reason in ("refresh_rejected", "signed_out")}
        assert reauthentications == {"refresh_rejected": 1, "signed_out": 1}


def forged_bearer_token() -> str:
    """A well-formed RS256 header with a kid nobody issued, and a junk signature."""
    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    header = part({"alg": "RS256", "kid": random.token_hex(8), "typ": "JWT"})
    return f"{header}.{part({'sub': 'x'})}.{random.token_urlsafe(32)}"


async def forged_kid_storm(http: aiohttp.ClientSession, url: str, count: int) -> set[int]:
    async def one() -> int:
        async with http.get(f"{url}/api", headers={
                "Authorization": f"Bearer {forged_bearer_token()}"}) as resp:
            return resp.status

    return set(await asyncio.gather(*(one() for _ in range(count))))


def jwks_fetches(gateway: RunningGateway, outcome: str = "ok") -> int:
    return sample(gateway, "cognito_gateway_jwks_fetches_total", outcome=outcome)


class TestNothingLost:
    @pytest.mark.parametrize("first", ["refresh", "sign_in"])
    async def test_forged_kids_then_a_key_rotation_lose_no_session(
            self, make_gateway: GatewayFactory, idp: DevIdp, clock: ManualClock,
            http: aiohttp.ClientSession, secrets: Secrets, first: str) -> None:
        """The run of issue #14: a storm of forged kids arms the JWKS block, then the IdP
        rotates its keys. The first refresh or sign-in after it loads the new key with one
        fetch; the session lives on through a second refresh (grace 0); forged kids stay
        blocked."""
        gateway = await make_gateway(**SHORT)
        browser = await signed_in(gateway, secrets)
        assert await forged_kid_storm(http, gateway.url, 50) == {401}
        assert jwks_fetches(gateway) == 2
        idp.rotate_keys()
        await clock.advance(IN_THE_WINDOW)
        if first == "sign_in":
            await signed_in(gateway, secrets)
        assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
        await until(lambda: refreshes(gateway, "ok") == 1, "the refresh after the rotation")
        assert await browser.get(http, gateway.url) == Answer(200, True, False, None)
        if first == "refresh":
            await signed_in(gateway, secrets)
        assert jwks_fetches(gateway) == 3
        secrets.add(browser.session(gateway)["refresh_token"])
        await clock.advance(TOKEN_SECONDS - REFRESH_BEFORE)
        assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
        await until(lambda: refreshes(gateway, "ok") == 2, "the second refresh")
        assert await browser.get(http, gateway.url) == Answer(200, True, False, None)
        secrets.add(browser.session(gateway)["refresh_token"])
        assert await forged_kid_storm(http, gateway.url, 20) == {401}
        assert jwks_fetches(gateway) == 3
        assert sample(gateway, "cognito_gateway_token_requests_total",
                      grant_type="refresh_token", outcome="invalid_grant") == 0

    async def test_a_jwks_outage_at_a_key_rotation_keeps_the_refreshed_tokens(
            self, make_gateway: GatewayFactory, idp: DevIdp, clock: ManualClock,
            http: aiohttp.ClientSession, secrets: Secrets, log_buffer: io.StringIO) -> None:
        """Keys rotated while the JWKS endpoint fails: the refreshed ID token cannot be
        checked against its key, so the (loopback) channel to the token endpoint stands in;
        the rotated refresh token is kept and the next refresh succeeds."""
        gateway = await make_gateway(**SHORT)
        browser = await signed_in(gateway, secrets)
        idp.add_fault("jwks", 500)
        idp.rotate_keys()
        for cycle in (1, 2):
            await clock.advance(IN_THE_WINDOW if cycle == 1 else TOKEN_SECONDS - REFRESH_BEFORE)
            assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
            await until(reached(lambda: refreshes(gateway, "ok"), cycle), f"refresh {cycle}")
            assert await browser.get(http, gateway.url) == Answer(200, True, False, None)
            secrets.add(browser.session(gateway)["refresh_token"])
        assert browser.session(gateway)["identity"]["username"] == ALICE.username
        assert idp.token_requests["refresh_token"] == 2
        unchecked = [e for e in log_events(log_buffer) if e["event"] == "id_token_key_unavailable"]
        assert len(unchecked) == 2

    @pytest.mark.parametrize("moment", ["in_the_window", "after_expiry"])
    @pytest.mark.parametrize(("fault", "reason"), [
        pytest.param("rekeyed", "bad_signature", id="signed-by-other-key-material"),
        pytest.param("clock_ahead", "not_yet_valid", id="idp-clock-an-hour-ahead"),
    ])
    async def test_a_definitively_invalid_id_token_ends_the_session(
            self, make_gateway: GatewayFactory, idp: DevIdp, idp_clock: IdpClock,
            clock: ManualClock, http: aiohttp.ClientSession, secrets: Secrets,
            log_buffer: io.StringIO, fault: str, reason: str, moment: str) -> None:
        """A refreshed ID token that fails verification for good ends the session at its next
        request, with one `refresh_failed` line naming the reason and a hint."""
        gateway = await make_gateway(**SHORT)
        browser = await signed_in(gateway, secrets)
        if fault == "rekeyed":
            idp.rotate_keys(idp.keys.rekeyed())
        else:
            idp_clock.skew = 3600
        if moment == "in_the_window":
            await clock.advance(IN_THE_WINDOW)
            assert await browser.copy().get(http, gateway.url) == Answer(200, False, False,
                                                                         None)
            await until(lambda: refreshes(gateway, "rejected") == 1, "the rejected refresh")
        else:
            await clock.advance(TOKEN_SECONDS + 0.2)
        assert await browser.get(http, gateway.url) == Answer(401, False, True, "unauthorized")
        assert idp.token_requests["refresh_token"] == 1
        assert sample(gateway, "cognito_gateway_reauthentications_total",
                      reason="refresh_rejected") == 1
        lines = [e for e in log_events(log_buffer) if e["event"] == "refresh_failed"]
        assert [(e["reason"], e["level"]) for e in lines] == [(reason, "warning")]
        assert lines[0]["hint"]


@pytest.mark.redis
@pytest.mark.usefixtures("secrets")
async def test_with_redis_a_background_refresh_is_kept_server_side(
        make_gateway: GatewayFactory, idp: DevIdp, clock: ManualClock,
        http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """Redis store: a due refresh runs in the background (the request does not wait for the
    slow IdP) and is saved in Redis; the browser's cookie (only the session id) never changes,
    and the next refresh spends the rotated token."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        gateway = await make_gateway(GATEWAY_SESSION_STORE="redis",
                                     GATEWAY_SESSION_REDIS_URL=server.url(), **SHORT)
        browser = Browser.signed_in(await sign_in_cookies(gateway.url))
        for cycle in (1, 2):
            await clock.advance(IN_THE_WINDOW if cycle == 1 else TOKEN_SECONDS - REFRESH_BEFORE)
            idp.add_fault("token", delay_seconds=SLOW, count=1)
            started = time.monotonic()
            assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
            assert time.monotonic() - started < SLOW / 2, "the request waited for the refresh"
            await until(reached(lambda: refreshes(gateway, "ok"), cycle), f"refresh {cycle}")
            assert await browser.get(http, gateway.url) == Answer(200, False, False, None)
        assert idp.token_requests["refresh_token"] == 2
        assert sample(gateway, "cognito_gateway_token_requests_total",
                      grant_type="refresh_token", outcome="invalid_grant") == 0
    finally:
        server.close()
