"""The same sign-in against a real, certified third-party OpenID provider (npm oidc-provider),
configured as a generic issuer: confidential and public (PKCE-only) clients, and RP-initiated
logout through its end_session_endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from cryptography.fernet import Fernet
from yarl import URL

from tests.conftest import RunningGateway, Secrets, start_gateway
from tests.support.browser import ScriptedBrowser
from tests.support.oidc_provider import (
    NODE_SKIP_REASON,
    OidcClient,
    OidcUser,
    RunningProvider,
    node_available,
    start_oidc_provider,
)

if TYPE_CHECKING:
    import socket
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.node
SECRET = "oidc-provider-client-secret-0123456789"
CAROL = OidcUser(username="carol", password="carol-Password-1", sub="carol-sub-1",
                 email="carol@example.org", groups=["engineering"])
DAVE = OidcUser(username="dave", password="dave-Password-1", sub="dave-sub-2", email=None)


@pytest.fixture(params=["confidential", "public"])
async def provider(request: pytest.FixtureRequest, gateway_url: str,
                   secrets: Secrets) -> AsyncIterator[tuple[RunningProvider, str | None]]:
    assert node_available(), NODE_SKIP_REASON
    secret = SECRET if request.param == "confidential" else None
    secrets.add(SECRET, CAROL.password, DAVE.password)
    client = OidcClient(client_id="gateway", client_secret=secret,
                        redirect_uris=[f"{gateway_url}/oauth2/callback"],
                        post_logout_redirect_uris=[f"{gateway_url}/oauth2/signed_out"])
    async with start_oidc_provider(clients=[client], users=[CAROL, DAVE]) as running:
        yield running, secret


@pytest.fixture
async def gateway(provider: tuple[RunningProvider, str | None], upstream: str, gateway_url: str,
                  gateway_socket: socket.socket) -> AsyncIterator[RunningGateway]:
    running, secret = provider
    runner, gateway = await start_gateway({
        "GATEWAY_SERVER_PUBLIC_URL": gateway_url,
        "GATEWAY_UPSTREAM_URL": upstream,
        "GATEWAY_COGNITO_ISSUER": running.issuer,
        "GATEWAY_COGNITO_CLIENT_ID": "gateway",
        "GATEWAY_COGNITO_CLIENT_SECRET": secret or "",
        "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
        "GATEWAY_SESSION_COOKIE_SECURE": "false",
    }, gateway_socket)
    assert gateway.provider.ready
    yield gateway
    await runner.cleanup()


def _headers(page_json: object) -> dict[str, str]:
    assert isinstance(page_json, dict)
    return {k.lower(): v for k, v in page_json["headers"]}


async def test_sign_in_through_oidc_provider_reaches_the_upstream_with_identity(
        gateway: RunningGateway) -> None:
    async with ScriptedBrowser() as browser:
        page = await browser.sign_in(f"{gateway.url}/reports?q=1", CAROL.username,
                                     CAROL.password)
    assert page.status == 200
    echoed = page.json()
    assert isinstance(echoed, dict)
    assert echoed["raw_path"] == "/reports?q=1"
    headers = _headers(echoed)
    assert headers["x-auth-request-user"] == "carol"
    assert headers["x-auth-request-sub"] == "carol-sub-1"
    assert headers["x-auth-request-email"] == "carol@example.org"
    assert headers["x-auth-request-groups"] == "engineering"


async def test_user_without_email_signs_in_at_oidc_provider(gateway: RunningGateway) -> None:
    async with ScriptedBrowser() as browser:
        page = await browser.sign_in(f"{gateway.url}/", DAVE.username, DAVE.password)
    headers = _headers(page.json())
    assert headers["x-auth-request-user"] == "dave"
    assert "x-auth-request-email" not in headers


async def test_sign_out_uses_the_end_session_endpoint_with_id_token_hint(
        gateway: RunningGateway, provider: tuple[RunningProvider, str | None]) -> None:
    running, _ = provider
    async with ScriptedBrowser() as browser:
        await browser.sign_in(f"{gateway.url}/", CAROL.username, CAROL.password)
        response = await browser.request("POST", f"{gateway.url}/oauth2/sign_out",
                                         follow_redirects=False)
        assert response.status == 303
        location = URL(response.headers["Location"])
        assert str(location.with_query(None)) == running.end_session_endpoint
        assert location.query["post_logout_redirect_uri"] == f"{gateway.url}/oauth2/signed_out"
        assert location.query["id_token_hint"].count(".") == 2
        after = await browser.request("GET", f"{gateway.url}/", follow_redirects=False)
        assert after.status == 302


