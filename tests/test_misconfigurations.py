"""Each app-client misconfiguration, driven through a real browser sign-in via the gateway.

For every row: the error Cognito answers per the protocol reference, the
`token_requests_total{grant_type,outcome}` label, the `token_endpoint_error` log line with its
hint, and the page the browser sees (code, hint, request id, never a secret). Rows the IdP
refuses already at /authorize never reach the token endpoint; they assert that instead.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from yarl import URL

from gateway.devidp import DevIdp, UserPool
from tests.conftest import (
    ALICE,
    BOB,
    CLIENT_ID,
    CLIENT_SECRET,
    GatewayFactory,
    RunningGateway,
    Secrets,
    gateway_client,
    log_events,
)
from tests.support.browser import Page, ScriptedBrowser

if TYPE_CHECKING:
    import io

WRONG_SECRET = "wrong-client-secret-0123456789"
REQUEST_ID = re.compile(r"Request id: <code>([^<]+)</code>")
Hook = Callable[["Flow", str], Awaitable[str]]


@dataclass
class Flow:
    """What a row's hooks may touch: the IdP, the gateway and the browser mid-sign-in."""

    idp: DevIdp
    gateway: RunningGateway
    browser: ScriptedBrowser


@dataclass(frozen=True)
class Case:
    client: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[DevIdp], None] | None = None
    authorize_redirect_uri: str | None = None  # path replacing /oauth2/callback at /authorize
    before_callback: Hook | None = None
    outcome: str = ""                # token_requests_total outcome label ("" = no token call)
    http_status: int | None = 400
    error: str | None = None
    description: str | None = None
    phrase: str = ""
    page_status: int = 400


async def _disable_client(flow: Flow, callback: str) -> str:
    flow.idp.set_client_enabled(CLIENT_ID, False)
    return callback


async def _remove_code_grant(flow: Flow, callback: str) -> str:
    client = flow.idp.pool.client(CLIENT_ID)
    assert client is not None
    client.allowed_flows = ["implicit"]
    return callback


async def _to_gateway_callback(_flow: Flow, callback: str) -> str:
    return callback.replace("/oauth2/callback/?", "/oauth2/callback?")


async def _use_code_twice(flow: Flow, callback: str) -> str:
    """Complete the sign-in once, then restore the pending cookie so the code goes in again."""
    pending = {k: v for k, v in flow.browser.cookies_for(callback).items() if "_signin_" in k}
    first = await flow.browser.get(callback)
    assert first.status == 200, first.text[:300]
    flow.browser.jar.update_cookies(pending, URL(flow.gateway.url))
    return callback


CASES = {
    "secret mismatch": Case(
        env={"GATEWAY_COGNITO_CLIENT_SECRET": WRONG_SECRET}, outcome="invalid_client",
        error="invalid_client", phrase="the client secret is wrong"),
    "secret missing (confidential client)": Case(
        env={"GATEWAY_COGNITO_CLIENT_SECRET": ""}, outcome="invalid_client",
        error="invalid_client", phrase="no secret was sent: the app client has a secret"),
    "secret sent by a public client": Case(
        client={"client_secret": None}, outcome="invalid_client", error="invalid_client",
        phrase="a public client must not send one"),
    "client disabled after the code was issued": Case(
        before_callback=_disable_client, outcome="invalid_client", error="invalid_client",
        phrase="the client was deleted or disabled"),
    "code grant removed after the code was issued": Case(
        before_callback=_remove_code_grant, outcome="unauthorized_client",
        error="unauthorized_client", phrase="not allowed this grant"),
    "callback not equal at /token (trailing slash)": Case(
        client={"callback_urls": ["{gw}/oauth2/callback", "{gw}/oauth2/callback/"]},
        authorize_redirect_uri="/oauth2/callback/", before_callback=_to_gateway_callback,
        outcome="unauthorized_client", error="unauthorized_client",
        description="invalid_redirect", phrase="differs from the one sent to /authorize"),
    "code reused": Case(
        before_callback=_use_code_twice, outcome="invalid_grant", error="invalid_grant",
        phrase="was already used"),
    "IdP 5xx on the token endpoint": Case(
        prepare=lambda idp: idp.add_fault("token", 503, body="<h1>Service Unavailable</h1>"),
        outcome="http_503", http_status=503, error="http_503", phrase="sign in again",
        page_status=502),
    "IdP answers a non-JSON body": Case(
        prepare=lambda idp: idp.add_fault("token", 200, body="<html>proxy login</html>"),
        outcome="malformed", http_status=200, error="malformed",
        phrase="not a token response"),
}

AUTHORIZE_CASES = {
    "code grant not enabled": Case(client={"allowed_flows": ["implicit"]},
                                   error="unauthorized_client",
                                   phrase="may not use the authorization code grant"),
    "client disabled": Case(prepare=lambda idp: idp.set_client_enabled(CLIENT_ID, False),
                            error="unauthorized_client",
                            phrase="may not use the authorization code grant"),
}


@pytest.fixture
def case() -> Case:
    return Case()


@pytest.fixture
def pool(gateway_url: str, case: Case) -> UserPool:
    """The pool with the gateway's app client changed as the row says."""
    client = {k: [u.format(gw=gateway_url) for u in v] if k == "callback_urls" else v
              for k, v in case.client.items()}
    return UserPool(users=[ALICE, BOB], clients=[gateway_client(gateway_url, **client)])


async def attempt_sign_in(flow: Flow, case: Case) -> Page:
    """Start at a guarded page, fill in the hosted-UI form, run the row's hooks, follow on."""
    start = await flow.browser.request("GET", f"{flow.gateway.url}/private",
                                       follow_redirects=False)
    authorize = start.headers["Location"]
    if case.authorize_redirect_uri:
        parts = urlsplit(authorize)
        query = dict(parse_qsl(parts.query))
        query["redirect_uri"] = flow.gateway.url + case.authorize_redirect_uri
        authorize = urlunsplit(parts._replace(query=urlencode(query)))
    page = await flow.browser.get(authorize)
    form = page.login_form()
    if form is None:
        return page
    values = [(k, v) for k, v in form.values() if k not in {"username", "password"}]
    values += [("username", ALICE.username), ("password", ALICE.password),
               ("signInSubmitButton", "Sign in")]
    answer = await flow.browser.request(
        "POST", form.action, data=values, follow_redirects=False,
        headers={"Origin": str(URL(page.url).origin()), "Referer": page.url})
    callback = answer.headers["Location"]
    if case.before_callback:
        callback = await case.before_callback(flow, callback)
    return await flow.browser.get(callback)


def token_count(gateway: RunningGateway, outcome: str) -> float:
    value = gateway.metrics.registry.get_sample_value(
        "cognito_gateway_token_requests_total",
        {"grant_type": "authorization_code", "outcome": outcome})
    return value or 0.0


def assert_error_page(page: Page, code: str, phrase: str, status: int) -> str:
    """The page shows the code, the hint and a request id, and no secret; returns the id."""
    assert page.status == status, page.text[:500]
    text = html.unescape(page.text)
    assert f"Error: <code>{code}</code>" in page.text
    assert phrase in " ".join(text.split())
    found = REQUEST_ID.search(page.text)
    assert found, page.text
    for secret in (CLIENT_SECRET, WRONG_SECRET, ALICE.password):
        assert secret not in text
    assert "Traceback" not in text
    return found.group(1)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_token_endpoint_misconfiguration(
        case: Case, idp: DevIdp, make_gateway: GatewayFactory, log_buffer: io.StringIO,
        secrets: Secrets) -> None:
    """The error code, the counter label, the log hint and the browser's page, per row."""
    secrets.add(WRONG_SECRET)
    gateway = await make_gateway(**case.env)
    if case.prepare:
        case.prepare(idp)
    async with ScriptedBrowser() as browser:
        page = await attempt_sign_in(Flow(idp, gateway, browser), case)
    request_id = assert_error_page(page, case.outcome, case.phrase, case.page_status)
    assert token_count(gateway, case.outcome) == 1
    errors = [e for e in log_events(log_buffer) if e["event"] == "token_endpoint_error"]
    assert len(errors) == 1, errors
    line = errors[0]
    assert line["level"] == "warning"
    assert line["timestamp"]
    assert line["request_id"] == request_id
    assert line["grant_type"] == "authorization_code"
    assert line["http_status"] == case.http_status
    assert line["error"] == case.error
    assert line["error_description"] == case.description
    assert case.phrase in line["hint"]
    assert line["client_id"] == CLIENT_ID
    assert line["token_endpoint"] == f"{idp.base_url}/oauth2/token"
    assert isinstance(line["duration_ms"], float | int)
    if case.http_status == 400:
        assert line["idp_request_id"]


@pytest.mark.parametrize("case", list(AUTHORIZE_CASES.values()), ids=list(AUTHORIZE_CASES))
async def test_authorize_refusal_never_reaches_the_token_endpoint(
        case: Case, idp: DevIdp, gateway: RunningGateway, log_buffer: io.StringIO) -> None:
    """Cognito refuses a disabled grant or client at /authorize, back at the callback (error=)."""
    if case.prepare:
        case.prepare(idp)
    async with ScriptedBrowser() as browser:
        page = await attempt_sign_in(Flow(idp, gateway, browser), case)
    request_id = assert_error_page(page, case.error or "", case.phrase, 400)
    assert sum(idp.token_requests.values()) == 0
    assert gateway.metrics.registry.get_sample_value(
        "cognito_gateway_sign_ins_total", {"outcome": "idp_error"}) == 1
    events = log_events(log_buffer)
    assert not [e for e in events if e["event"] == "token_endpoint_error"]
    refused = [e for e in events if e["event"] == "sign_in_idp_error"]
    assert [(e["error"], e["request_id"]) for e in refused] == [(case.error, request_id)]


@pytest.mark.parametrize("case", [Case(client={"callback_urls": ["{gw}/oauth2/callback/"]})],
                         ids=["callback registered with a trailing slash"])
async def test_unregistered_callback_stops_at_the_idp_error_page(
        case: Case, idp: DevIdp, gateway: RunningGateway) -> None:
    """An unregistered redirect_uri gets Cognito's /error page (400); the app never hears of it."""
    async with ScriptedBrowser() as browser:
        page = await attempt_sign_in(Flow(idp, gateway, browser), case)
    assert page.status == 400
    assert page.url.startswith(f"{idp.base_url}/error?error=redirect_mismatch")
    assert "An error was encountered with the requested page." in page.text
    assert sum(idp.token_requests.values()) == 0
    assert gateway.metrics.registry.get_sample_value(
        "cognito_gateway_sign_ins_total", {"outcome": "idp_error"}) is None
