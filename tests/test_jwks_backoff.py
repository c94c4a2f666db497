"""JWKS failures back off: tokens with unknown kids cannot turn into load on a struggling IdP."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets as random
from typing import TYPE_CHECKING

import aiohttp
import pytest

from gateway.devidp import DevIdp, UserPool
from tests.conftest import ALICE, CLIENT_SECRET, GatewayFactory, Secrets, gateway_client
from tests.support.tokens import user_tokens

if TYPE_CHECKING:
    from gateway.observability.metrics import Metrics


@pytest.fixture
def pool(gateway_url: str, upstream: str) -> UserPool:
    callbacks = [f"{gateway_url}/oauth2/callback", f"{upstream}/cb"]
    return UserPool(users=[ALICE], clients=[gateway_client(gateway_url,
                                                          callback_urls=callbacks)])


def token_with_random_kid() -> str:
    """A well-formed RS256 JWT header with a kid nobody issued, and a junk signature."""
    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    header = part({"alg": "RS256", "kid": random.token_hex(8), "typ": "JWT"})
    return f"{header}.{part({'sub': 'x'})}.{random.token_urlsafe(32)}"


def fetches(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("cognito_gateway_jwks_fetches_total",
                                              {"outcome": outcome})
    return float(value or 0.0)


async def test_fifty_random_kids_with_jwks_failing_cause_one_fetch(
        make_gateway: GatewayFactory, idp: DevIdp, upstream: str, secrets: Secrets) -> None:
    """With the JWKS endpoint failing, 50 concurrent random-kid tokens make one fetch; they
    get 503 (keys unavailable, never a 500), and a token with a cached kid still passes."""
    gateway = await make_gateway()
    tokens = await user_tokens(idp.base_url, client_id="gateway-client",
                               client_secret=CLIENT_SECRET, callback=f"{upstream}/cb",
                               username=ALICE.username, password=ALICE.password)
    secrets.add(tokens["access_token"], tokens["id_token"], tokens["refresh_token"])
    metrics = gateway.metrics
    assert fetches(metrics, "ok") == 1
    idp.add_fault("jwks", 500)
    async with aiohttp.ClientSession() as http:
        async def call(token: str) -> int:
            async with http.get(f"{gateway.url}/api", headers={
                    "Authorization": f"Bearer {token}"}) as resp:
                return resp.status

        statuses = await asyncio.gather(*(call(token_with_random_kid()) for _ in range(50)))
        assert set(statuses) == {503}
        assert fetches(metrics, "http_500") == 1
        assert await call(tokens["access_token"]) == 200
        statuses = await asyncio.gather(*(call(token_with_random_kid()) for _ in range(20)))
    assert set(statuses) == {503}
    assert fetches(metrics, "http_500") == 1


async def test_random_kids_after_a_good_fetch_are_401_and_refetch_once_per_window(
        make_gateway: GatewayFactory) -> None:
    """With JWKS healthy, unknown kids are 401 invalid_token and cause one refetch per window."""
    gateway = await make_gateway()
    async with aiohttp.ClientSession() as http:
        for _ in range(30):
            async with http.get(f"{gateway.url}/api", headers={
                    "Authorization": f"Bearer {token_with_random_kid()}"}) as resp:
                assert resp.status == 401
                assert "invalid_token" in resp.headers["WWW-Authenticate"]
    assert fetches(gateway.metrics, "ok") == 2
