"""GET /oauth2/authorize and the /error page."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

import pytest

from .flows import CALLBACK, Flows, pkce_pair, query_of

if TYPE_CHECKING:
    from gateway.devidp import DevIdp

_, CHALLENGE = pkce_pair()


@pytest.mark.parametrize(
    ("params", "error"),
    [
        pytest.param({"response_type": None}, "invalid_request", id="no-response-type"),
        pytest.param({"response_type": "id_token"}, "invalid_request", id="bad-response-type"),
        pytest.param(
            {"code_challenge": CHALLENGE}, "invalid_request", id="challenge-without-method"
        ),
        pytest.param(
            {"code_challenge": CHALLENGE, "code_challenge_method": "plain"},
            "invalid_request",
            id="plain-pkce",
        ),
        pytest.param(
            {"code_challenge_method": "S256"},
            "invalid_request",
            id="method-without-challenge",
        ),
        pytest.param({"response_type": "token"}, "unauthorized_client", id="implicit-not-enabled"),
        pytest.param({"scope": "openid bogus"}, "invalid_scope", id="unknown-scope"),
        pytest.param({"scope": "api/admin"}, "invalid_scope", id="nothing-allowed-left"),
        pytest.param({"prompt": "none"}, "login_required", id="prompt-none-without-session"),
    ],
)
async def test_authorize_errors_redirect_to_the_app(
    flows: Flows, params: dict[str, str | None], error: str
) -> None:
    """With a valid client and redirect_uri, errors are a 302 to it with error= and state=."""
    defaults = {
        "response_type": "code",
        "client_id": "web",
        "redirect_uri": CALLBACK,
        "state": "s-1",
    }
    query = {k: v for k, v in {**defaults, **params}.items() if v is not None}
    response = await flows.get(f"{flows.idp.base_url}/oauth2/authorize?{urlencode(query)}")
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    assert query_of(location) == {"error": error, "state": "s-1"}


async def test_disabled_client_is_unauthorized_client(flows: Flows, idp: DevIdp) -> None:
    """A disabled client's authorize request is refused with unauthorized_client."""
    idp.set_client_enabled("web", False)
    response = await flows.get(flows.authorize_url())
    assert query_of(response.headers["Location"]) == {"error": "unauthorized_client"}


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"redirect_uri": "http://evil.test/cb"}, id="unregistered"),
        pytest.param({"redirect_uri": CALLBACK + "/"}, id="trailing-slash"),
        pytest.param({"redirect_uri": CALLBACK.upper()}, id="case"),
        pytest.param({"client_id": "nobody"}, id="unknown-client"),
    ],
)
async def test_redirect_mismatch_goes_to_the_error_page(
    flows: Flows, idp: DevIdp, params: dict[str, str]
) -> None:
    """An unknown client or unregistered redirect_uri goes to /error, never to the app."""
    response = await flows.get(flows.authorize_url(**params))
    assert response.status == 302
    client_id = params.get("client_id", "web")
    assert response.headers["Location"] == (
        f"{idp.base_url}/error?error=redirect_mismatch&client_id={client_id}"
    )
    page = await flows.get(response.headers["Location"])
    assert page.status == 400
    assert page.headers["Content-Type"] == "text/html;charset=UTF-8"
    assert "An error was encountered with the requested page." in await page.text()


async def test_without_session_goes_to_login_with_the_same_params(
    flows: Flows, idp: DevIdp
) -> None:
    """No hosted-UI session: 302 to /login with the authorize query unchanged."""
    url = flows.authorize_url(state="abc", scope="openid email", nonce="n")
    response = await flows.get(url)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(f"{idp.base_url}/login?")
    assert query_of(location) == query_of(url)


async def test_code_redirect_carries_code_and_state(flows: Flows) -> None:
    """A successful sign-in redirects to redirect_uri with a uuid-like code and the state."""
    location = await flows.sign_in(state="c3RhdGU=")
    assert location.startswith(CALLBACK + "?")
    query = query_of(location)
    assert set(query) == {"code", "state"}
    assert query["state"] == "c3RhdGU="
    assert len(query["code"]) == 36


async def test_session_issues_code_without_the_form(flows: Flows) -> None:
    """With a hosted-UI session a second authorize returns a code at once."""
    await flows.sign_in()
    response = await flows.get(flows.authorize_url(state="again"))
    assert response.status == 302
    assert set(query_of(response.headers["Location"])) == {"code", "state"}


async def test_prompt_none_with_session_issues_code(flows: Flows) -> None:
    """prompt=none succeeds silently when there is a session."""
    await flows.sign_in()
    response = await flows.get(flows.authorize_url(prompt="none"))
    assert "code" in query_of(response.headers["Location"])


async def test_prompt_login_forces_the_form(flows: Flows, idp: DevIdp) -> None:
    """prompt=login shows the form even with a session."""
    await flows.sign_in()
    response = await flows.get(flows.authorize_url(prompt="login"))
    assert response.headers["Location"].startswith(f"{idp.base_url}/login?")


async def test_unallowed_scopes_are_dropped(flows: Flows) -> None:
    """A known scope the client may not use is ignored, the rest granted."""
    body = await flows.tokens(client_id="spa", scope="openid phone email")
    assert (await flows.verify(body["access_token"]))["scope"] == "openid email"


async def test_identity_provider_cognito_signs_in_on_the_pools_own_form(
    flows: Flows, idp: DevIdp
) -> None:
    """identity_provider=COGNITO goes to the pool's own /login form; signing in yields a code."""
    response = await flows.get(flows.authorize_url(identity_provider="COGNITO"))
    assert response.headers["Location"].startswith(f"{idp.base_url}/login?")
    location = await flows.sign_in(identity_provider="COGNITO")
    assert location.startswith(CALLBACK + "?")
    assert "code" in query_of(location)


async def test_implicit_flow_returns_tokens_in_the_fragment(flows: Flows) -> None:
    """response_type=token puts access and ID tokens in the redirect's fragment."""
    location = await flows.sign_in(
        client_id="implicit", response_type="token", state="s", nonce="nn"
    )
    base, _, fragment = location.partition("#")
    assert base == CALLBACK
    params = query_of("?" + fragment)
    assert set(params) == {"access_token", "id_token", "token_type", "expires_in", "state"}
    assert params["state"] == "s"
    assert (await flows.verify(params["id_token"]))["nonce"] == "nn"
