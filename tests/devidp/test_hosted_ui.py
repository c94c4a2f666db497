"""The hosted UI pages: the /login form and /logout."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

import pytest
from yarl import URL

from .flows import ALICE_PASSWORD, CALLBACK, SIGNED_OUT, Flows, FormParser, parse_form, query_of

if TYPE_CHECKING:
    import aiohttp

    from gateway.devidp import DevIdp


async def _open_form(flows: Flows, **params: str) -> tuple[str, aiohttp.ClientResponse, FormParser]:
    """Authorize without a session and open the /login page: (its URL, the page, its form)."""
    login = (await flows.get(flows.authorize_url(**params))).headers["Location"]
    page = await flows.get(login)
    return login, page, parse_form(await page.text())


def _csrf(form: FormParser) -> str:
    """The _csrf value the sign-in form carries."""
    value = form.inputs["_csrf"]["value"]
    assert value is not None, "the sign-in form's _csrf input has a value"
    return value


async def _submit(
    flows: Flows, form: FormParser, fields: dict[str, str]
) -> tuple[int, dict[str, str], str]:
    """POST `fields` to the form's action: (status, headers, body)."""
    action = form.form["action"]
    assert action is not None, "the sign-in form has an action"
    async with flows.http.post(
        f"{flows.idp.base_url}{action}", data=fields, allow_redirects=False
    ) as response:
        return response.status, dict(response.headers), await response.text()


async def test_login_form_has_the_classic_fields(flows: Flows, idp: DevIdp) -> None:
    """GET /login renders cognitoSignInForm posting back to /login with the same query."""
    login, page, form = await _open_form(flows, state="st", scope="openid")
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html;charset=UTF-8"
    assert form.form["name"] == "cognitoSignInForm"
    assert form.form["method"] == "post"
    assert f"{idp.base_url}{form.form['action']}" == login
    assert {"_csrf", "username", "password", "cognitoAsfData", "signInSubmitButton"} <= set(
        form.inputs
    )
    assert form.inputs["_csrf"]["type"] == form.inputs["cognitoAsfData"]["type"] == "hidden"
    assert form.inputs["_csrf"]["value"] == page.cookies["XSRF-TOKEN"].value


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param("alice", "wrong", id="wrong-password"),
        pytest.param("nobody", ALICE_PASSWORD, id="unknown-user"),
        pytest.param("", "", id="empty"),
    ],
)
async def test_bad_credentials_re_render_the_form(
    flows: Flows, username: str, password: str
) -> None:
    """Wrong credentials: 200, the form again, "Incorrect username or password." and no session."""
    _, _, form = await _open_form(flows)
    status, headers, body = await _submit(
        flows, form, {"_csrf": _csrf(form), "username": username, "password": password}
    )
    assert status == 200
    again = parse_form(body)
    assert again.form["name"] == "cognitoSignInForm"
    assert again.error == "Incorrect username or password."
    assert "cognito" not in headers.get("Set-Cookie", "")


@pytest.mark.parametrize(
    "csrf", [pytest.param("forged", id="forged"), pytest.param(None, id="missing")]
)
async def test_bad_csrf_is_refused(flows: Flows, csrf: str | None) -> None:
    """A POST whose _csrf does not match the XSRF-TOKEN cookie is refused with 403."""
    _, _, form = await _open_form(flows)
    fields = {"username": "alice", "password": ALICE_PASSWORD}
    if csrf is not None:
        fields["_csrf"] = csrf
    status, _, body = await _submit(flows, form, fields)
    assert status == 403
    assert "An error was encountered with the requested page." in body


async def test_username_is_case_insensitive(flows: Flows) -> None:
    """ALICE signs in as alice."""
    location = await flows.sign_in(username="ALICE")
    body = await flows.exchange(query_of(location)["code"])
    assert (await flows.verify(body[2]["access_token"]))["username"] == "alice"


async def test_successful_sign_in_sets_a_one_hour_session_cookie(flows: Flows, idp: DevIdp) -> None:
    """Success sets the hosted-UI cookie (Max-Age 3600, HttpOnly) and 302s with the code."""
    _, _, form = await _open_form(flows)
    status, headers, _ = await _submit(
        flows, form, {"_csrf": _csrf(form), "username": "alice", "password": ALICE_PASSWORD}
    )
    assert status == 302
    assert headers["Location"].startswith(CALLBACK + "?code=")
    cookie = next(c for c in headers["Set-Cookie"].split(", ") if c.startswith("cognito="))
    assert "Max-Age=3600" in cookie
    assert "HttpOnly" in cookie
    assert "cognito" in flows.http.cookie_jar.filter_cookies(URL(idp.base_url))


async def test_login_with_bad_redirect_uri_goes_to_the_error_page(
    flows: Flows, idp: DevIdp
) -> None:
    """/login validates its parameters like /oauth2/authorize."""
    query = urlencode(
        {"client_id": "web", "redirect_uri": "http://evil.test/", "response_type": "code"}
    )
    response = await flows.get(f"{idp.base_url}/login?{query}")
    assert (
        response.headers["Location"]
        == f"{idp.base_url}/error?error=redirect_mismatch&client_id=web"
    )


async def test_logout_clears_the_session_and_redirects(flows: Flows, idp: DevIdp) -> None:
    """logout_uri matching a sign-out URL: 302 there, and the next authorize needs the form."""
    await flows.sign_in()
    response = await flows.get(
        f"{idp.base_url}/logout?{urlencode({'client_id': 'web', 'logout_uri': SIGNED_OUT})}"
    )
    assert response.status == 302
    assert response.headers["Location"] == SIGNED_OUT
    assert "cognito" not in flows.http.cookie_jar.filter_cookies(URL(idp.base_url))
    again = await flows.get(flows.authorize_url())
    assert again.headers["Location"].startswith(f"{idp.base_url}/login?")


async def test_logout_with_redirect_uri_goes_to_login(flows: Flows, idp: DevIdp) -> None:
    """The redirect_uri form of /logout ends the session and sends the user to /login."""
    await flows.sign_in()
    params = {"client_id": "web", "redirect_uri": CALLBACK, "response_type": "code", "state": "x"}
    response = await flows.get(f"{idp.base_url}/logout?{urlencode(params)}")
    assert response.status == 302
    assert response.headers["Location"] == f"{idp.base_url}/login?{urlencode(params)}"
    again = await flows.get(flows.authorize_url(prompt="none"))
    assert query_of(again.headers["Location"]) == {"error": "login_required"}


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        pytest.param(
            {"client_id": "web", "logout_uri": SIGNED_OUT + "/"},
            "Required String parameter 'redirect_uri' is not present.",
            id="logout-uri-mismatch",
        ),
        pytest.param(
            {"client_id": "web"},
            "Required String parameter 'redirect_uri' is not present.",
            id="neither-uri",
        ),
        pytest.param(
            {"client_id": "nobody", "logout_uri": SIGNED_OUT},
            "Required String parameter 'client_id' is not present.",
            id="unknown-client",
        ),
    ],
)
async def test_logout_errors_show_the_error_page(
    flows: Flows, idp: DevIdp, params: dict[str, str], detail: str
) -> None:
    """A /logout that cannot redirect shows Cognito's error page, HTTP 400."""
    response = await flows.get(f"{idp.base_url}/logout?{urlencode(params)}")
    assert response.status == 400
    assert response.headers["Content-Type"] == "text/html;charset=UTF-8"
    assert f"An error was encountered with the requested page. {detail}" in await response.text()
