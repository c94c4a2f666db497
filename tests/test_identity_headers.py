"""Identity headers assert only what the IdP verified: an unverified email is not identity."""

from __future__ import annotations

import pytest

from gateway.devidp import User, UserPool
from tests.conftest import ALICE, BOB, GatewayFactory, gateway_client
from tests.support.browser import ScriptedBrowser

CAROL = User(username="carol", password="carol-Password-1", email="ceo@victim.example",
             email_verified=False, groups=["staff"])


@pytest.fixture
def pool(gateway_url: str) -> UserPool:
    return UserPool(users=[ALICE, BOB, CAROL], clients=[gateway_client(gateway_url)])


@pytest.mark.parametrize(("user", "pass_unverified", "email"), [
    (ALICE, "false", "alice@example.com"),
    (CAROL, "false", None),
    (CAROL, "true", "ceo@victim.example"),
    (BOB, "true", None),
], ids=["verified", "unverified-withheld", "unverified-passed-by-choice", "no-email"])
async def test_email_header_only_when_verified_or_explicitly_allowed(
        make_gateway: GatewayFactory, user: User, pass_unverified: str,
        email: str | None) -> None:
    """X-Auth-Request-Email is sent for a verified email; an unverified one only with
    headers.pass_unverified_email; /oauth2/userinfo says which it is."""
    gateway = await make_gateway(GATEWAY_HEADERS_PASS_UNVERIFIED_EMAIL=pass_unverified)
    async with ScriptedBrowser() as browser:
        page = await browser.sign_in(f"{gateway.url}/page", user.username, user.password)
        echoed = page.json()
        info = (await browser.get(f"{gateway.url}/oauth2/userinfo")).json()
    assert isinstance(echoed, dict)
    assert isinstance(info, dict)
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert headers.get("x-auth-request-email") == email
    assert headers["x-auth-request-user"] == user.username
    assert info["email_verified"] is user.email_verified
