"""identity_provider and idp_identifier at /oauth2/authorize, the hosted UI's provider buttons,
the simulated provider's sign-in and the linked users it creates."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
import pytest

from gateway.devidp import AppClient, DevIdp, User, UserPool, load_pool
from gateway.devidp.authorize import UNSUPPORTED_PROVIDER
from gateway.devidp.providers import IdentityProvider, ProviderUser

from .flows import Flows, basic, parse_form, query_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from gateway.devidp.keys import SigningKeys

CALLBACK = "http://app.test/oauth2/callback"
CAROL = ProviderUser("carol@partner.example", "carol-password-1", email="carol@partner.example",
                     attributes={"name": "Carol Partner"})
SECRET = "fed-secret"


def federation_pool(*, prevent_user_existence_errors: bool = True) -> UserPool:
    """COGNITO user alice; PartnerSAML (identifier partner.example) and OtherSAML providers;
    clients that support both (web), the pool only (plain) or PartnerSAML only (saml-only)."""

    def client(client_id: str, providers: list[str], name: str | None = None) -> AppClient:
        return AppClient(client_id, SECRET, callback_urls=[CALLBACK], client_name=name,
                         supported_identity_providers=providers)

    return UserPool(
        users=[User("alice", "alice-password-1", email="alice@example.com",
                    email_verified=True, groups=["staff"])],
        clients=[
            client("web", ["COGNITO", "PartnerSAML"], name="Partner Portal"),
            client("plain", ["COGNITO"]),
            client("saml-only", ["PartnerSAML"]),
        ],
        identity_providers=[
            IdentityProvider("PartnerSAML", "SAML", identifiers=["partner.example"],
                             issuer="urn:partner.example:idp", users=[CAROL]),
            IdentityProvider("OtherSAML", "SAML", identifiers=["other.example"]),
        ],
        prevent_user_existence_errors=prevent_user_existence_errors,
    )


@pytest.fixture
async def idp(shared_keys: SigningKeys) -> AsyncIterator[DevIdp]:
    """A DevIdp serving the federation pool."""
    async with DevIdp(federation_pool(), keys=shared_keys) as server:
        yield server


class Browser:
    """A cookie-keeping client that follows nothing by itself."""

    def __init__(self, idp: DevIdp, http: aiohttp.ClientSession) -> None:
        self.idp = idp
        self.http = http

    def authorize_url(self, client_id: str = "web", **params: str) -> str:
        query = {"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK,
                 "state": "app-state", "scope": "openid email profile", **params}
        return f"{self.idp.base_url}/oauth2/authorize?{urlencode(query)}"

    async def get(self, url: str) -> tuple[int, str, str]:
        """(status, absolute Location or "", body)."""
        async with self.http.get(urljoin(self.idp.base_url, url), allow_redirects=False) as r:
            location = r.headers.get("Location", "")
            return r.status, urljoin(self.idp.base_url, location) if location else "", (
                await r.text())

    async def post(self, url: str, fields: dict[str, str]) -> tuple[int, str, str]:
        async with self.http.post(urljoin(self.idp.base_url, url), data=fields,
                                  allow_redirects=False) as r:
            location = r.headers.get("Location", "")
            return r.status, location, await r.text()

    async def federate(self, user_id: str, password: str, **params: str) -> tuple[int, str, str]:
        """Authorize towards a provider and sign in on its page: the page's answer."""
        status, provider_url, _ = await self.get(self.authorize_url(**params))
        assert status == 302
        _, _, page = await self.get(provider_url)
        relay = ProviderForm.of(page).fields["RelayState"]
        return await self.post(provider_url, {"RelayState": relay, "user_id": user_id,
                                              "password": password})

    async def code_via(self, provider_response: str) -> str:
        """Follow the provider's redirect to /oauth2/idpresponse: the app's code."""
        status, location, body = await self.get(provider_response)
        assert status == 302, body
        assert location.startswith(CALLBACK + "?")
        assert query_of(location)["state"] == "app-state"
        return query_of(location)["code"]

    async def tokens(self, code: str) -> dict[str, Any]:
        async with self.http.post(
            f"{self.idp.base_url}/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
            headers={"Authorization": basic("web", SECRET)},
        ) as response:
            body: dict[str, Any] = await response.json(content_type=None)
            assert response.status == 200, body
            return body


class ProviderForm(HTMLParser):
    """The simulated provider page's hidden fields, error text and the hosted UI's buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, str] = {}
        self.app_name = ""
        self._capture: str | None = None
        self._href = ""

    @classmethod
    def of(cls, page: str) -> ProviderForm:
        parser = cls()
        parser.feed(page)
        return parser

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "input" and found.get("type") == "hidden":
            self.fields[found.get("name", "")] = found.get("value", "")
        elif tag == "a" and "idpButton-customizable" in found.get("class", ""):
            self._capture, self._href = "button", found["href"]
        elif found.get("id") == "appName":
            self._capture = "app"

    def handle_data(self, data: str) -> None:
        if self._capture == "button":
            self.buttons[data] = self._href
        elif self._capture == "app":
            self.app_name = data
        self._capture = None


async def _claims(browser: Browser, token: str) -> dict[str, Any]:
    """A token's claims, verified against the IdP's JWKS and issuer."""
    return await Flows(browser.idp, browser.http).verify(token)


@pytest.fixture
async def browser(idp: DevIdp) -> AsyncIterator[Browser]:
    """A fresh browser against the federation IdP."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Browser(idp, http)


PROVIDER_PAGE = "/simulated-idp/PartnerSAML/sign-in?RelayState="
UNSUPPORTED = {"error": "invalid_request", "error_description": UNSUPPORTED_PROVIDER,
               "state": "app-state"}


@pytest.mark.parametrize(("client_id", "params", "expected"), [
    pytest.param("web", {}, "/login?", id="no-choice-hosted-ui"),
    pytest.param("web", {"identity_provider": "COGNITO"}, "/login?", id="cognito-form"),
    pytest.param("web", {"identity_provider": "PartnerSAML"}, PROVIDER_PAGE, id="by-name"),
    pytest.param("web", {"idp_identifier": "partner.example"}, PROVIDER_PAGE, id="identifier"),
    pytest.param("web", {"idp_identifier": "Partner.Example"}, PROVIDER_PAGE,
                 id="identifier-any-case"),
    pytest.param("web", {"identity_provider": "PartnerSAML", "idp_identifier": "other.example"},
                 PROVIDER_PAGE, id="name-wins-over-identifier"),
    pytest.param("web", {"identity_provider": "partnersaml"}, UNSUPPORTED,
                 id="name-is-case-sensitive"),
    pytest.param("web", {"identity_provider": "Nobody"}, UNSUPPORTED, id="unknown-name"),
    pytest.param("web", {"identity_provider": "OtherSAML"}, UNSUPPORTED,
                 id="pool-provider-client-does-not-support"),
    pytest.param("web", {"idp_identifier": "nobody.example"}, UNSUPPORTED,
                 id="unknown-identifier"),
    pytest.param("saml-only", {"identity_provider": "COGNITO"}, UNSUPPORTED,
                 id="cognito-not-supported"),
    pytest.param("plain", {"identity_provider": "PartnerSAML"}, UNSUPPORTED,
                 id="plain-client-has-no-providers"),
])
async def test_authorize_routes_by_identity_provider(
        browser: Browser, client_id: str, params: dict[str, str],
        expected: str | dict[str, str]) -> None:
    """The choice leads to the form, straight to the provider, or back with invalid_request."""
    status, location, _ = await browser.get(browser.authorize_url(client_id, **params))
    assert status == 302
    if isinstance(expected, dict):
        assert location.startswith(CALLBACK + "?")
        assert query_of(location) == expected
    else:
        assert location.startswith(browser.idp.base_url + expected)


async def test_federated_sign_in_issues_tokens_for_a_linked_user(browser: Browser) -> None:
    """A provider's user becomes PartnerSAML_<id> with identities and the automatic group."""
    status, location, _ = await browser.federate(CAROL.user_id, CAROL.password,
                                                 identity_provider="PartnerSAML")
    assert status == 302
    assert urlsplit(location).path == "/oauth2/idpresponse"
    body = await browser.tokens(await browser.code_via(location))
    id_claims = await _claims(browser, body["id_token"])
    access_claims = await _claims(browser, body["access_token"])
    username = "PartnerSAML_carol@partner.example"
    group = f"{browser.idp.pool.pool_id}_PartnerSAML"
    assert id_claims["cognito:username"] == access_claims["username"] == username
    assert id_claims["cognito:groups"] == access_claims["cognito:groups"] == [group]
    (identity,) = id_claims["identities"]
    assert {k: identity[k] for k in ("userId", "providerName", "providerType", "issuer",
                                     "primary")} == {
        "userId": CAROL.user_id, "providerName": "PartnerSAML", "providerType": "SAML",
        "issuer": "urn:partner.example:idp", "primary": "true"}
    assert re.fullmatch(r"\d{13}", identity["dateCreated"])
    assert id_claims["email"] == CAROL.email
    assert id_claims["email_verified"] is False
    assert id_claims["name"] == "Carol Partner"
    assert "identities" not in access_claims


async def test_a_second_federated_sign_in_reuses_the_linked_user(browser: Browser,
                                                                  idp: DevIdp) -> None:
    """The same provider user signs in as the same pool user (same sub), created once."""
    subs = []
    for _ in range(2):
        _, location, _ = await browser.federate(CAROL.user_id, CAROL.password,
                                                idp_identifier="partner.example")
        body = await browser.tokens(await browser.code_via(location))
        subs.append((await _claims(browser, body["id_token"]))["sub"])
    assert subs[0] == subs[1]
    assert [u.username for u in idp.pool.users].count("PartnerSAML_carol@partner.example") == 1


@pytest.mark.parametrize(("user_id", "password"), [
    pytest.param(CAROL.user_id, "wrong", id="wrong-password"),
    pytest.param("mallory@partner.example", CAROL.password, id="unknown-user"),
    pytest.param("alice", "alice-password-1", id="pool-user-is-not-a-provider-user"),
])
async def test_the_provider_page_refuses_bad_credentials(
        browser: Browser, user_id: str, password: str) -> None:
    """Bad credentials at the provider: its page again with its error, no redirect."""
    status, location, body = await browser.federate(user_id, password,
                                                    identity_provider="PartnerSAML")
    assert (status, location) == (200, "")
    assert 'id="providerError">Incorrect user ID or password.<' in body
    assert "Simulated by the dev IdP" in body


@pytest.mark.parametrize("tamper", ["replay", "other-state", "no-code"])
async def test_idpresponse_refuses_a_used_or_forged_answer(browser: Browser,
                                                           tamper: str) -> None:
    """A code is single use and bound to its RelayState; anything else is the error page."""
    _, location, _ = await browser.federate(CAROL.user_id, CAROL.password,
                                            identity_provider="PartnerSAML")
    query = query_of(location)
    if tamper == "replay":
        await browser.code_via(location)
        url = location
    elif tamper == "other-state":
        url = f"/oauth2/idpresponse?{urlencode({'code': query['code'], 'state': 'forged'})}"
    else:
        url = f"/oauth2/idpresponse?{urlencode({'state': query['state']})}"
    status, _, body = await browser.get(url)
    assert status == 400
    assert "An error was encountered with the requested page." in body


async def test_a_provider_page_needs_its_own_pending_request(browser: Browser) -> None:
    """Another provider's path, or no RelayState, does not show a sign-in form."""
    _, provider_url, _ = await browser.get(browser.authorize_url(identity_provider="PartnerSAML"))
    other = provider_url.replace("/PartnerSAML/", "/OtherSAML/")
    for url in (other, provider_url.partition("?")[0]):
        status, _, body = await browser.get(url)
        assert status == 400
        assert "providerSignInForm" not in body


@pytest.mark.parametrize(("client_id", "app_name", "buttons", "has_form"), [
    pytest.param("web", "Partner Portal", ["Sign in with PartnerSAML"], True, id="both"),
    pytest.param("plain", "plain", [], True, id="cognito-only"),
    pytest.param("saml-only", "saml-only", ["Sign in with PartnerSAML"], False, id="saml-only"),
])
async def test_the_hosted_ui_shows_the_app_and_its_sign_in_options(
        browser: Browser, client_id: str, app_name: str, buttons: list[str],
        has_form: bool) -> None:
    """The banner names the app client; a button per supported provider; the form for COGNITO."""
    _, login, _ = await browser.get(browser.authorize_url(client_id))
    status, _, page = await browser.get(login)
    parsed = ProviderForm.of(page)
    assert status == 200
    assert parsed.app_name == app_name
    assert sorted(parsed.buttons) == buttons
    assert (parse_form(page).form.get("name") == "cognitoSignInForm") is has_form
    for href in parsed.buttons.values():
        status, location, _ = await browser.get(href)
        assert (status, location.startswith(browser.idp.base_url + PROVIDER_PAGE)) == (302, True)


async def test_a_linked_user_cannot_sign_in_with_a_password(browser: Browser) -> None:
    """EXTERNAL_PROVIDER users have no password: the form says only the usual sentence."""
    _, location, _ = await browser.federate(CAROL.user_id, CAROL.password,
                                            identity_provider="PartnerSAML")
    await browser.code_via(location)
    _, login, _ = await browser.get(browser.authorize_url("plain", prompt="login"))
    _, _, page = await browser.get(login)
    form = parse_form(page)
    status, _, body = await browser.post(str(form.form["action"]), {
        "_csrf": str(form.inputs["_csrf"]["value"]),
        "username": "PartnerSAML_carol@partner.example", "password": "anything"})
    assert status == 200
    assert parse_form(body).error == "Incorrect username or password."


@pytest.mark.parametrize(("prevent", "username", "password", "message"), [
    pytest.param(True, "nobody", "x", "Incorrect username or password.", id="enabled-unknown"),
    pytest.param(True, "alice", "x", "Incorrect username or password.", id="enabled-wrong"),
    pytest.param(False, "nobody", "x", "User does not exist.", id="legacy-unknown"),
    pytest.param(False, "alice", "x", "Incorrect username or password.", id="legacy-wrong"),
])
async def test_prevent_user_existence_errors_decides_the_message(
        shared_keys: SigningKeys, prevent: bool, username: str, password: str,
        message: str) -> None:
    """ENABLED (default) hides whether a user exists; LEGACY says so."""
    pool = federation_pool(prevent_user_existence_errors=prevent)
    async with (DevIdp(pool, keys=shared_keys) as idp,
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http):
        browser = Browser(idp, http)
        _, login, _ = await browser.get(browser.authorize_url("plain"))
        _, _, page = await browser.get(login)
        form = parse_form(page)
        _, _, body = await browser.post(str(form.form["action"]), {
            "_csrf": str(form.inputs["_csrf"]["value"]), "username": username,
            "password": password})
    assert parse_form(body).error == message


async def test_userinfo_carries_identities_as_a_json_string(browser: Browser) -> None:
    """userInfo's identities is a string of JSON, like Cognito's other non-string values."""
    _, location, _ = await browser.federate(CAROL.user_id, CAROL.password,
                                            identity_provider="PartnerSAML")
    body = await browser.tokens(await browser.code_via(location))
    async with browser.http.get(f"{browser.idp.base_url}/oauth2/userInfo", headers={
            "Authorization": f"Bearer {body['access_token']}"}) as response:
        info = await response.json(content_type=None)
    assert isinstance(info["identities"], str)
    assert '"providerName":"PartnerSAML"' in info["identities"]
    assert info["username"] == "PartnerSAML_carol@partner.example"


@pytest.mark.parametrize(("build", "problem"), [
    pytest.param(lambda: IdentityProvider("Partner_SAML"), "no underscore", id="underscore"),
    pytest.param(lambda: IdentityProvider("COGNITO"), "the user pool itself", id="cognito"),
    pytest.param(lambda: IdentityProvider("Corp", "LDAP"), "unknown 'LDAP'", id="bad-type"),
    pytest.param(lambda: IdentityProvider("MyGoogle", "Google"), "must be named Google",
                 id="social-name"),
    pytest.param(lambda: IdentityProvider("Google", "Google", identifiers=["x"]),
                 "only SAML and OIDC", id="social-identifiers"),
    pytest.param(lambda: UserPool(clients=[AppClient("c", callback_urls=["http://x/"],
                                                     supported_identity_providers=["Nope"])]),
                 r"\['Nope'\] do not exist", id="client-names-unknown-provider"),
    pytest.param(lambda: UserPool(identity_providers=[
        IdentityProvider("A", identifiers=["x.example"]),
        IdentityProvider("B", identifiers=["X.example"])]), "already another provider's",
                 id="shared-identifier"),
    pytest.param(lambda: AppClient("c", callback_urls=["http://x/"], client_name=""),
                 "client_name", id="empty-client-name"),
])
def test_federation_configuration_rules(build: Any, problem: str) -> None:
    """CreateIdentityProvider and CreateUserPoolClient rules are checked at construction."""
    with pytest.raises(ValueError, match=problem):
        build()


def test_a_pool_file_declares_providers_and_their_users(tmp_path: Path) -> None:
    """[[identity_providers]] with [[identity_providers.users]] load; problems are by key."""
    good = tmp_path / "pool.toml"
    good.write_text("""
[[identity_providers]]
name = "PartnerSAML"
identifiers = ["partner.example"]
[[identity_providers.users]]
user_id = "carol"
password = "pw"
[[clients]]
client_id = "c"
client_name = "Carol's app"
callback_urls = ["http://x/cb"]
supported_identity_providers = ["COGNITO", "PartnerSAML"]
""", encoding="utf-8")
    pool = load_pool(good)
    provider = pool.provider("PartnerSAML")
    assert provider is not None
    assert provider.user("carol") is not None
    assert pool.client("c") is not None
    bad = tmp_path / "bad.toml"
    bad.write_text("""
[[identity_providers]]
name = "Partner_SAML"
colour = "blue"
[[identity_providers.users]]
user_id = "carol"
""", encoding="utf-8")
    with pytest.raises(ValueError, match=r"problem\(s\)") as info:
        load_pool(bad)
    message = str(info.value)
    assert "identity_providers[0].colour: unknown key" in message
    assert "identity_providers[0].users[0].password: required" in message
