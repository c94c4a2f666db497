"""Keys of tokens the IdP itself issued: a rotated key loads at once whatever forged kids did,
and when it cannot be had, an authenticated channel to the token endpoint stands in for it.

Against the dev IdP's real JWKS endpoint; the cache and the verifier run on a ManualClock."""

from __future__ import annotations

import asyncio
import secrets as random
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from gateway.cognito.jwks import ISSUED_KID_RELOAD, JWKSCache
from gateway.cognito.verify import TokenVerifier, authenticated_channel
from gateway.devidp import DevIdp, UserPool
from gateway.errors import JWKSError, TokenValidationError
from gateway.observability.metrics import Metrics
from tests.conftest import (
    ALICE,
    CLIENT_ID,
    CLIENT_SECRET,
    Secrets,
    gateway_client,
    log_events,
)
from tests.support.clock import ManualClock
from tests.support.tokens import user_tokens

if TYPE_CHECKING:
    import io
    from collections.abc import AsyncIterator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def pool(gateway_url: str, upstream: str) -> UserPool:
    """Alice's tokens come straight from the IdP, through a callback on the test upstream."""
    callbacks = [f"{gateway_url}/oauth2/callback", f"{upstream}/cb"]
    return UserPool(users=[ALICE], clients=[gateway_client(gateway_url,
                                                          callback_urls=callbacks)])


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def cache(idp: DevIdp, http: aiohttp.ClientSession, metrics: Metrics,
                clock: ManualClock) -> JWKSCache:
    """The JWKS cache with the IdP's keys loaded (one fetch)."""
    jwks = JWKSCache(http, f"{idp.issuer}/.well-known/jwks.json", metrics, clock=clock)
    await jwks.refresh()
    return jwks


def fetches(metrics: Metrics, outcome: str = "ok") -> int:
    value = metrics.registry.get_sample_value("cognito_gateway_jwks_fetches_total",
                                              {"outcome": outcome})
    return int(value or 0)


def forged_kid() -> str:
    return random.token_hex(8)


async def id_token(idp: DevIdp, upstream: str, secrets: Secrets) -> str:
    """A fresh ID token of Alice's, straight from the token endpoint."""
    tokens = await user_tokens(idp.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                               callback=f"{upstream}/cb", username=ALICE.username,
                               password=ALICE.password)
    secrets.add(tokens["access_token"], tokens["id_token"], tokens["refresh_token"])
    token: str = tokens["id_token"]
    return token


class TestIssuedKids:
    async def test_a_rotated_key_loads_through_the_unknown_kid_block(
            self, cache: JWKSCache, idp: DevIdp, metrics: Metrics) -> None:
        """Forged kids block refetches; the IdP's new kid still loads at once, with one fetch,
        and forged kids stay blocked after it."""
        for _ in range(2):
            with pytest.raises(TokenValidationError):
                await cache.get(forged_kid())
        assert fetches(metrics) == 2
        idp.rotate_keys()
        key = await cache.get(idp.keys.id.kid, issued=True)
        assert key.key_id == idp.keys.id.kid
        assert fetches(metrics) == 3
        with pytest.raises(TokenValidationError):
            await cache.get(forged_kid())
        assert fetches(metrics) == 3

    @pytest.mark.parametrize(("later", "fetched"), [
        pytest.param(0.0, 1, id="at-once"),
        pytest.param(ISSUED_KID_RELOAD - 0.1, 1, id="within-the-interval"),
        pytest.param(ISSUED_KID_RELOAD, 2, id="after-the-interval"),
    ])
    async def test_an_unpublished_issued_kid_reloads_once_per_interval(
            self, cache: JWKSCache, metrics: Metrics, clock: ManualClock, later: float,
            fetched: int) -> None:
        """A kid the IdP does not publish (yet) reloads the key set at most once per
        ISSUED_KID_RELOAD seconds; each miss is JWKSError (retry later), not a verdict."""
        kid = forged_kid()
        for wait in (0.0, later):
            await clock.advance(wait)
            with pytest.raises(JWKSError) as raised:
                await cache.get(kid, issued=True)
            assert raised.value.reason == "unknown_kid"
        assert fetches(metrics) == 1 + fetched

    async def test_concurrent_issued_kids_share_one_fetch(
            self, cache: JWKSCache, idp: DevIdp, metrics: Metrics) -> None:
        """Twenty sign-ins and refreshes right after a rotation make one JWKS fetch."""
        idp.rotate_keys()
        keys = await asyncio.gather(*(cache.get(idp.keys.id.kid, issued=True)
                                      for _ in range(20)))
        assert {key.key_id for key in keys} == {idp.keys.id.kid}
        assert fetches(metrics) == 2

    async def test_a_failing_jwks_is_tried_once_per_issued_kid_and_interval(
            self, cache: JWKSCache, idp: DevIdp, metrics: Metrics) -> None:
        """With the JWKS endpoint failing, an issued kid costs one fetch per interval."""
        idp.rotate_keys()
        idp.add_fault("jwks", 500)
        for _ in range(3):
            with pytest.raises(JWKSError):
                await cache.get(idp.keys.id.kid, issued=True)
        assert fetches(metrics, "http_500") == 1


def verifier(cache: JWKSCache, idp: DevIdp, metrics: Metrics, clock: ManualClock, *,
             channel: bool, **overrides: Any) -> TokenVerifier:
    settings: dict[str, Any] = {"issuer": idp.issuer, "client_id": CLIENT_ID}
    settings |= overrides
    return TokenVerifier(cache, bearer_client_ids=frozenset({CLIENT_ID}), cognito=True,
                         metrics=metrics, clock=clock, token_channel_authenticated=channel,
                         **settings)


class TestChannel:
    @pytest.mark.parametrize(("url", "authenticated"), [
        pytest.param("https://auth.example.com/oauth2/token", True, id="https"),
        pytest.param("http://127.0.0.1:9000/oauth2/token", True, id="loopback-v4"),
        pytest.param("http://127.8.9.10/oauth2/token", True, id="loopback-net"),
        pytest.param("http://[::1]:9000/oauth2/token", True, id="loopback-v6"),
        pytest.param("http://localhost:9000/oauth2/token", True, id="localhost"),
        pytest.param("http://10.0.0.5/oauth2/token", False, id="private-address"),
        pytest.param("http://dev-idp:9000/oauth2/token", False, id="host-name"),
    ])
    def test_which_channels_authenticate_the_server(self, url: str,
                                                    authenticated: bool) -> None:
        """https (a verified certificate) and loopback authenticate the token endpoint."""
        assert authenticated_channel(url) is authenticated

    @pytest.mark.parametrize("channel", [True, False], ids=["authenticated", "in-clear"])
    async def test_an_id_token_whose_key_cannot_be_had_is_accepted_only_on_its_channel(
            self, cache: JWKSCache, idp: DevIdp, upstream: str, secrets: Secrets,
            metrics: Metrics, clock: ManualClock, log_buffer: io.StringIO,
            channel: bool) -> None:
        """Keys rotated while the JWKS endpoint fails: over an authenticated channel the ID
        token's claims are accepted (and the acceptance logged); in clear, JWKSError."""
        idp.rotate_keys()
        token = await id_token(idp, upstream, secrets)
        idp.add_fault("jwks", 500)
        check = verifier(cache, idp, metrics, clock, channel=channel)
        if channel:
            claims = await check.verify_id_token(token, nonce=None)
            assert claims["cognito:username"] == ALICE.username
            lines = [e for e in log_events(log_buffer)
                     if e["event"] == "id_token_key_unavailable"]
            assert [(e["reason"], e["accepted_by"]) for e in lines] == [
                ("http_500", "token_endpoint_channel")]
        else:
            with pytest.raises(JWKSError):
                await check.verify_id_token(token, nonce=None)

    @pytest.mark.parametrize(("overrides", "reason"), [
        pytest.param({"client_id": "another-client"}, "wrong_audience", id="audience"),
        pytest.param({"issuer": "https://elsewhere.example.com/pool"}, "wrong_issuer",
                     id="issuer"),
    ])
    async def test_claims_are_checked_when_the_channel_stands_in(
            self, cache: JWKSCache, idp: DevIdp, upstream: str, secrets: Secrets,
            metrics: Metrics, clock: ManualClock, overrides: dict[str, str],
            reason: str) -> None:
        """Without the key, the audience and issuer are still checked."""
        idp.rotate_keys()
        token = await id_token(idp, upstream, secrets)
        idp.add_fault("jwks", 500)
        check = verifier(cache, idp, metrics, clock, channel=True, **overrides)
        with pytest.raises(TokenValidationError) as raised:
            await check.verify_id_token(token, nonce=None)
        assert raised.value.reason == reason

    async def test_a_signature_a_known_key_rejects_is_never_accepted(
            self, cache: JWKSCache, idp: DevIdp, upstream: str, secrets: Secrets,
            metrics: Metrics, clock: ManualClock) -> None:
        """The IdP signs with other key material under a published kid: bad_signature, even
        over an authenticated channel."""
        idp.rotate_keys(idp.keys.rekeyed())
        token = await id_token(idp, upstream, secrets)
        check = verifier(cache, idp, metrics, clock, channel=True)
        with pytest.raises(TokenValidationError) as raised:
            await check.verify_id_token(token, nonce=None)
        assert raised.value.reason == "bad_signature"
