"""API clients with `Authorization: Bearer <Cognito access token>`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jwt
import pytest

from gateway.devidp import AppClient, DevIdp, UserPool
from tests.conftest import ALICE, BOB, CLIENT_SECRET, GatewayFactory, Secrets, gateway_client
from tests.support.tokens import user_tokens

if TYPE_CHECKING:
    import aiohttp

OTHER_SECRET = "other-client-secret-abcdefghijklmnop"


@pytest.fixture
def pool(gateway_url: str, upstream: str) -> UserPool:
    callbacks = [f"{gateway_url}/oauth2/callback", f"{upstream}/cb"]
    return UserPool(users=[ALICE, BOB], clients=[
        gateway_client(gateway_url, callback_urls=callbacks),
        AppClient(client_id="other-client", client_secret=OTHER_SECRET,
                  callback_urls=[f"{upstream}/cb"]),
    ])



async def _tokens(idp: DevIdp, upstream: str, secrets: Secrets, client_id: str = "gateway-client",
                  secret: str = CLIENT_SECRET) -> dict[str, str]:
    tokens = await user_tokens(idp.base_url, client_id=client_id, client_secret=secret,
                               callback=f"{upstream}/cb", username=ALICE.username,
                               password=ALICE.password)
    secrets.add(OTHER_SECRET, tokens["access_token"], tokens["id_token"], tokens["refresh_token"])
    return tokens


async def test_access_token_without_aud_is_accepted_by_client_id(
        make_gateway: GatewayFactory, idp: DevIdp, upstream: str, secrets: Secrets,
        http: aiohttp.ClientSession) -> None:
    """Cognito access tokens carry client_id and no aud; the gateway checks client_id."""
    gateway = await make_gateway()
    tokens = await _tokens(idp, upstream, secrets)
    assert "aud" not in jwt.decode(tokens["access_token"], options={"verify_signature": False})
    async with http.get(gateway.url + "/api", headers={
            "Authorization": f"Bearer {tokens['access_token']}",
            "Accept": "application/json"}) as resp:
        assert resp.status == 200
        echoed = await resp.json()
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert headers["x-auth-request-user"] == "alice"
    assert headers["x-auth-request-groups"] == "admins,staff"


@pytest.mark.parametrize(("token_kind", "reason"), [
    ("id_token", "wrong_token_use"),
    ("garbage", "malformed"),
    ("tampered", "bad_signature"),
])
async def test_tokens_that_are_not_valid_access_tokens_get_401(
        make_gateway: GatewayFactory, idp: DevIdp, upstream: str, secrets: Secrets,
        http: aiohttp.ClientSession, token_kind: str, reason: str) -> None:
    gateway = await make_gateway()
    tokens = await _tokens(idp, upstream, secrets)
    token = {"id_token": tokens["id_token"], "garbage": "not-a-jwt",
             "tampered": tokens["access_token"][:-6] + "AAAAAA"}[token_kind]
    async with http.get(gateway.url + "/api", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    failures = gateway.metrics.token_validation_failures.labels(reason=reason)
    assert failures._value.get() == 1


@pytest.mark.parametrize(("bearer_client_ids", "status"), [
    ("", 401),
    ("gateway-client,other-client", 200),
])
async def test_tokens_of_other_clients_are_accepted_only_when_listed(
        make_gateway: GatewayFactory, idp: DevIdp, upstream: str, secrets: Secrets,
        http: aiohttp.ClientSession, bearer_client_ids: str, status: int) -> None:
    """Another app client's access token passes only if auth.bearer_client_ids names it."""
    tokens = await _tokens(idp, upstream, secrets, "other-client", OTHER_SECRET)
    gateway = await make_gateway(GATEWAY_AUTH_BEARER_CLIENT_IDS=bearer_client_ids)
    async with http.get(gateway.url + "/api",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"}) as resp:
        assert resp.status == status


async def test_bearer_tokens_can_be_switched_off(
        make_gateway: GatewayFactory, idp: DevIdp, upstream: str, secrets: Secrets,
        http: aiohttp.ClientSession) -> None:
    gateway = await make_gateway(GATEWAY_AUTH_ACCEPT_BEARER_TOKENS="false")
    tokens = await _tokens(idp, upstream, secrets)
    async with http.get(gateway.url + "/api", headers={
            "Authorization": f"Bearer {tokens['access_token']}"}) as resp:
        assert resp.status == 401


async def test_allowed_groups_give_403_to_others(
        make_gateway: GatewayFactory, idp: DevIdp, upstream: str, secrets: Secrets,
        http: aiohttp.ClientSession) -> None:
    gateway = await make_gateway(GATEWAY_AUTH_ALLOWED_GROUPS="auditors")
    tokens = await _tokens(idp, upstream, secrets)
    async with http.get(gateway.url + "/api", headers={
            "Authorization": f"Bearer {tokens['access_token']}"}) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"] == "forbidden"
