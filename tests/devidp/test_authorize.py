"""GET /oauth2/authorize and the /error page."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from .flows import CALLBACK, pkce_pair, query_of

_, CHALLENGE = pkce_pair()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"response_type": None}, {"error": "invalid_request"}, id="no-response-type"),
        pytest.param(
            {"response_type": "id_token"}, {"error": "invalid_request"}, id="bad-response-type"
        ),
        pytest.param(
            {"code_challenge": CHALLENGE},
            {"error": "invalid_request"},
            id="challenge-without-method",
        ),
        pytest.param(
            {"code_challenge": CHALLENGE, "code_challenge_method": "plain"},
            {"error": "invalid_request"},
            id="plain-pkce",
        ),
        pytest.param(
            {"code_challenge_method": "S256"},
            {"error": "invalid_request"},
            id="method-without-challenge",
        ),
        pytest.param(
            {"response_type": "token"}, {"error": "unauthorized_client"}, id="implicit-not-enabled"
        ),
        pytest.param({"scope": "openid bogus"}, {"error": "invalid_scope"}, id="unknown-scope"),
        pytest.param({"scope": "api/admin"}, {"error": "invalid_scope"}, id="nothing-allowed-left"),
        pytest.param(
            {"prompt": "none"}, {"error": "login_required"}, id="prompt-none-without-session"
        ),
    ],
)
async def test_authorize_errors_redirect_to_the_app(flows, params, expected):
    """With a valid client and redirect_uri, errors are a 302 to it with error= and state=."""
    query = {"response_type": "code", "client_id": "web", "redirect_uri": CALLBACK, "state": "s-1"}
    query.update(params)
    query = {k: v for k, v in query.items() if v is not None}
    response = await flows.get(f"{flows.idp.base_url}/oauth2/authorize?{urlencode(query)}")
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    assert query_of(location) == {**expected, "state": "s-1"}


async def test_disabled_client_is_unauthorized_client(flows, idp):
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
async def test_redirect_mismatch_goes_to_the_error_page(flows, idp, params):
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


async def test_without_session_goes_to_login_with_the_same_params(flows, idp):
    """No hosted-UI session: 302 to /login with the authorize query unchanged."""
    url = flows.authorize_url(state="abc", scope="openid email", nonce="n")
    response = await flows.get(url)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(f"{idp.base_url}/login?")
    assert query_of(location) == query_of(url)


async def test_code_redirect_carries_code_and_state(flows):
    """A successful sign-in redirects to redirect_uri with a uuid-like code and the state."""
    location = await flows.sign_in(state="c3RhdGU=")
    assert location.startswith(CALLBACK + "?")
    query = query_of(location)
    assert set(query) == {"code", "state"}
    assert query["state"] == "c3RhdGU="
    assert len(query["code"]) == 36


async def test_session_issues_code_without_the_form(flows):
    """With a hosted-UI session a second authorize returns a code at once."""
    await flows.sign_in()
    response = await flows.get(flows.authorize_url(state="again"))
    assert response.status == 302
    assert set(query_of(response.headers["Location"])) == {"code", "state"}


async def test_prompt_none_with_session_issues_code(flows):
    """prompt=none succeeds silently when there is a session."""
    await flows.sign_in()
    response = await flows.get(flows.authorize_url(prompt="none"))
    assert "code" in query_of(response.headers["Location"])


async def test_prompt_login_forces_the_form(flows, idp):
    """prompt=login shows the form even with a session."""
    await flows.sign_in()
    response = await flows.get(flows.authorize_url(prompt="login"))
    assert response.headers["Location"].startswith(f"{idp.base_url}/login?")


async def test_unallowed_scopes_are_dropped(flows):
    """A known scope the client may not use is ignored, the rest granted."""
    body = await flows.tokens(client_id="spa", scope="openid phone email")
    assert (await flows.verify(body["access_token"]))["scope"] == "openid email"


async def test_identity_provider_is_ignored(flows):
    """identity_provider=COGNITO changes nothing."""
    location = await flows.sign_in(identity_provider="COGNITO")
    assert "code" in query_of(location)


async def test_implicit_flow_returns_tokens_in_the_fragment(flows):
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
