"""A token-endpoint 200 is never lost: the token client answers a rotated-out refresh token
again from memory instead of spending it twice (cognito/client.py), against the dev IdP with
refresh-token rotation and a grace period of 0."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest

from gateway.cognito.client import SPENT_TOKEN_MEMORY_SECONDS, TokenClient
from gateway.devidp import DevIdp, UserPool
from gateway.errors import TokenEndpointError
from gateway.observability.metrics import Metrics
from tests.conftest import ALICE, CLIENT_ID, CLIENT_SECRET, Secrets, gateway_client
from tests.support.clock import ManualClock
from tests.support.tokens import user_tokens

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def rotation() -> bool:
    """Whether the app client rotates refresh tokens (parametrised by tests)."""
    return True


TOKEN_SECONDS = 120  # shorter than SPENT_TOKEN_MEMORY_SECONDS, so an answer can outlive them


@pytest.fixture
def pool(gateway_url: str, upstream: str, rotation: bool) -> UserPool:
    return UserPool(users=[ALICE], clients=[gateway_client(
        gateway_url, callback_urls=[f"{upstream}/cb"], refresh_token_rotation=rotation,
        rotation_grace_seconds=0, access_token_validity_seconds=TOKEN_SECONDS,
        id_token_validity_seconds=TOKEN_SECONDS)])


@pytest.fixture
async def client(idp: DevIdp, clock: ManualClock) -> AsyncIterator[TokenClient]:
    async with aiohttp.ClientSession() as http:
        yield TokenClient(http, token_endpoint=f"{idp.base_url}/oauth2/token",
                          revocation_endpoint=None, client_id=CLIENT_ID,
                          client_secret=CLIENT_SECRET, metrics=Metrics(), clock=clock)


@pytest.fixture
async def refresh_token(idp: DevIdp, upstream: str, secrets: Secrets) -> str:
    """Alice's refresh token from a sign-in."""
    tokens = await user_tokens(idp.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                               callback=f"{upstream}/cb", username=ALICE.username,
                               password=ALICE.password)
    secrets.add(tokens["access_token"], tokens["id_token"], tokens["refresh_token"])
    token: str = tokens["refresh_token"]
    return token


async def test_a_spent_refresh_token_gets_its_200_again(
        client: TokenClient, refresh_token: str, idp: DevIdp, clock: ManualClock,
        secrets: Secrets) -> None:
    """The same rotated-out token, presented again 10 s later: the same tokens with 10 s less
    to live, and no second call (which would be invalid_grant)."""
    first = await client.refresh(refresh_token)
    assert first.refresh_token is not None
    secrets.add(first.access_token, first.id_token, first.refresh_token)
    await clock.advance(10)
    again = await client.refresh(refresh_token)
    assert (again.access_token, again.id_token, again.refresh_token) == (
        first.access_token, first.id_token, first.refresh_token)
    assert again.expires_in == first.expires_in - 10
    assert idp.token_requests["refresh_token"] == 1
    following = await client.refresh(first.refresh_token)
    assert following.refresh_token not in {None, first.refresh_token}
    secrets.add(following.access_token, following.id_token, following.refresh_token)
    assert idp.token_requests["refresh_token"] == 2


async def test_the_answer_is_dropped_once_its_refresh_token_is_used(
        client: TokenClient, refresh_token: str, idp: DevIdp, secrets: Secrets) -> None:
    """Presenting the new refresh token shows the 200 was kept: the spent token is no longer
    answered from memory (at most one answer per session is held)."""
    first = await client.refresh(refresh_token)
    assert first.refresh_token is not None
    second = await client.refresh(first.refresh_token)
    secrets.add(first.access_token, first.id_token, first.refresh_token, second.access_token,
                second.id_token, second.refresh_token)
    with pytest.raises(TokenEndpointError) as raised:
        await client.refresh(refresh_token)
    assert raised.value.error == "invalid_grant"
    assert idp.token_requests["refresh_token"] == 3


async def test_an_answer_outliving_its_tokens_still_carries_the_new_refresh_token(
        client: TokenClient, refresh_token: str, clock: ManualClock, secrets: Secrets) -> None:
    """Presented again after the new tokens expired: expires_in 0, the refresh token kept."""
    first = await client.refresh(refresh_token)
    secrets.add(first.access_token, first.id_token, first.refresh_token)
    await clock.advance(first.expires_in + 5)
    again = await client.refresh(refresh_token)
    assert (again.expires_in, again.refresh_token) == (0, first.refresh_token)


async def test_the_answer_is_forgotten_after_its_window(
        client: TokenClient, refresh_token: str, idp: DevIdp, clock: ManualClock,
        secrets: Secrets) -> None:
    """After SPENT_TOKEN_MEMORY_SECONDS the spent token goes to the IdP, which refuses it."""
    first = await client.refresh(refresh_token)
    secrets.add(first.access_token, first.id_token, first.refresh_token)
    await clock.advance(SPENT_TOKEN_MEMORY_SECONDS)
    with pytest.raises(TokenEndpointError) as raised:
        await client.refresh(refresh_token)
    assert raised.value.error == "invalid_grant"
    assert idp.token_requests["refresh_token"] == 2


@pytest.mark.parametrize("rotation", [False], ids=["rotation-off"])
async def test_without_rotation_every_refresh_is_a_call(
        client: TokenClient, refresh_token: str, idp: DevIdp, secrets: Secrets) -> None:
    """A refresh token that was not rotated is still valid: each refresh asks the IdP."""
    answers = [await client.refresh(refresh_token) for _ in range(2)]
    for answer in answers:
        assert answer.refresh_token is None
        secrets.add(answer.access_token, answer.id_token)
    assert idp.token_requests["refresh_token"] == 2
