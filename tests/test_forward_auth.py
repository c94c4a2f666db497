"""Forward-auth (/oauth2/auth) decides on the original method and URI, normalised, and only if
trusted, with the same rules as the proxy; its query switches and its way to the sign-in."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

if TYPE_CHECKING:
    from tests.conftest import GatewayFactory, RunningGateway

PUBLIC = '["/public/*"]'


@pytest.mark.parametrize(("trusted", "headers", "status"), [
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/public/page"}, 202),
    ("127.0.0.1/32", {"X-Original-URI": "/public/page?x=1"}, 202),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/public/../secret"}, 401),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/secret"}, 401),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/public/%2e%2e/secret"}, 400),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/public%2F..%2Fsecret"}, 400),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "/public;x/..;/secret"}, 400),
    ("127.0.0.1/32", {"X-Forwarded-Uri": "http://evil/public/page"}, 202),
    ("10.0.0.0/8", {"X-Forwarded-Uri": "/public/page"}, 401),
    ("", {"X-Original-URI": "/public/page"}, 401),
    ("127.0.0.1/32", {}, 401),
])
async def test_original_uri_from_trusted_proxies_is_normalised_then_decided(
        make_gateway: GatewayFactory, trusted: str, headers: dict[str, str],
        status: int) -> None:
    """A public original URI passes (202) only when a trusted proxy sent it; dot segments are
    resolved before deciding; ambiguous URIs are refused; without it nothing is public."""
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS=PUBLIC,
                                 GATEWAY_SERVER_TRUSTED_PROXIES=trusted)
    async with aiohttp.ClientSession() as http, http.get(
            f"{gateway.url}/oauth2/auth", headers=headers) as resp:
        assert resp.status == status
        assert not any(k.lower().startswith("x-auth-request-") for k in resp.headers)


TRUSTED = "127.0.0.1/32"
RULES = json.dumps([
    {"paths": ["/public/*"], "action": "public"},
    {"paths": ["/partner/*"], "identity_provider": "PartnerSAML"},
    {"paths": ["/reports/*"], "methods": ["DELETE"], "action": "deny"},
    {"paths": ["/api/*"], "unauthenticated": "deny"},
])
PAGE = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}


async def forward_auth(gateway: RunningGateway, method: str = "GET", query: str = "",
                       headers: dict[str, str] | None = None) -> tuple[int, dict[str, str],
                                                                      dict[str, Any]]:
    """Status, headers and JSON body (empty when none) of a forward-auth check."""
    async with aiohttp.ClientSession() as http, http.request(
            method, f"{gateway.url}/oauth2/auth{query}", headers=headers or {},
            allow_redirects=False) as resp:
        body = await resp.json() if resp.content_type == "application/json" else {}
        return resp.status, dict(resp.headers), body


@pytest.mark.parametrize(("method", "query", "headers", "status"), [
    pytest.param("GET", "", {"X-Forwarded-Uri": "/public/a"}, 202, id="public-202"),
    pytest.param("GET", "?status=200", {"X-Forwarded-Uri": "/public/a"}, 200,
                 id="status-switch"),
    pytest.param("GET", "?status=204", {"X-Forwarded-Uri": "/public/a"}, 202,
                 id="other-status-values-keep-202"),
    pytest.param("POST", "?status=200", {"X-Forwarded-Uri": "/public/a"}, 200,
                 id="any-method-of-the-check"),
    pytest.param("PROPFIND", "", {"X-Forwarded-Uri": "/public/a"}, 202, id="unusual-method"),
    pytest.param("GET", "", {"X-Forwarded-Uri": "/reports/1", "X-Forwarded-Method": "DELETE"},
                 403, id="forwarded-method-decides"),
    pytest.param("GET", "", {"X-Original-URI": "/reports/1", "X-Original-Method": "delete"},
                 403, id="original-method-any-case"),
    pytest.param("DELETE", "", {"X-Forwarded-Uri": "/reports/1"}, 403,
                 id="own-method-without-header"),
    pytest.param("GET", "", {"X-Forwarded-Uri": "/reports/1", "X-Forwarded-Method": "GET"},
                 401, id="other-methods-not-denied"),
    pytest.param("GET", "", {"X-Forwarded-Uri": "/public/a", "X-Original-URI": "/public/a"},
                 202, id="both-uris-agree"),
    pytest.param("GET", "", {"X-Forwarded-Uri": "/public/a", "X-Original-URI": "/secret"},
                 400, id="uris-disagree"),
    pytest.param("GET", "", {"X-Forwarded-Uri": "/public/./a", "X-Original-URI": "/public/a"},
                 202, id="uris-agree-once-normalised"),
    pytest.param("GET", "", {"X-Forwarded-Uri": "/public/a", "X-Forwarded-Method": "GET",
                             "X-Original-Method": "POST"}, 400, id="methods-disagree"),
])
async def test_forward_auth_decides_on_the_original_method_and_uri(
        make_gateway: GatewayFactory, method: str, query: str, headers: dict[str, str],
        status: int) -> None:
    """Rules apply to the original method and URI from a trusted proxy; any method of the
    check is answered; status=200 replaces 202; disagreeing original headers are refused."""
    gateway = await make_gateway(GATEWAY_AUTH_RULES=RULES,
                                 GATEWAY_SERVER_TRUSTED_PROXIES=TRUSTED)
    answered, _, _ = await forward_auth(gateway, method, query, headers)
    assert answered == status


async def test_method_headers_of_an_untrusted_peer_are_ignored(
        make_gateway: GatewayFactory) -> None:
    """Without trust, X-Forwarded-Method names nothing: the check's own method is decided on
    (and without a trusted URI no path is a rule's)."""
    gateway = await make_gateway(GATEWAY_AUTH_RULES=RULES)
    answered, _, _ = await forward_auth(gateway, "GET", "", {
        "X-Forwarded-Uri": "/public/a", "X-Forwarded-Method": "DELETE",
        "X-Original-URI": "/secret"})
    assert answered == 401


@pytest.mark.parametrize(("query", "headers", "status", "sign_in"), [
    pytest.param("", PAGE, 401, "/oauth2/sign_in?rd=/partner/q%3Fx%3D1"
                 "&identity_provider=PartnerSAML", id="navigation-401-names-the-sign-in"),
    pytest.param("?redirect=1", PAGE, 302, "/oauth2/sign_in?rd=/partner/q%3Fx%3D1"
                 "&identity_provider=PartnerSAML", id="navigation-redirected"),
    pytest.param("?redirect=1", {"Accept": "application/json"}, 401,
                 "/oauth2/sign_in?rd=/partner/q%3Fx%3D1&identity_provider=PartnerSAML",
                 id="api-call-not-redirected"),
    pytest.param("?redirect=1&envoy_path=/x", {**PAGE, "X-Forwarded-Method": "POST"}, 401,
                 "/oauth2/sign_in?rd=/partner/q%3Fx%3D1&identity_provider=PartnerSAML",
                 id="form-post-not-redirected"),
    pytest.param("?redirect=1", {**PAGE, "X-Forwarded-Method": "HEAD"}, 302,
                 "/oauth2/sign_in?rd=/partner/q%3Fx%3D1&identity_provider=PartnerSAML",
                 id="forwarded-head-navigation"),
    pytest.param("?envoy_path=/x&redirect=1", PAGE, 401,
                 "/oauth2/sign_in?rd=/partner/q%3Fx%3D1&identity_provider=PartnerSAML",
                 id="switch-after-envoy-path-ignored"),
])
@pytest.mark.parametrize("check_method", ["GET", "POST"])
async def test_an_anonymous_check_leads_to_the_sign_in_for_the_original_target(
        make_gateway: GatewayFactory, gateway_url: str, query: str, headers: dict[str, str],
        status: int, sign_in: str, check_method: str) -> None:
    """The 401 names the sign-in for the original URI at the rule's identity provider; with
    redirect=1 a navigation (judged on the forwarded method, whatever the check's own) gets
    that sign-in as a 302 on server.public_url."""
    gateway = await make_gateway(GATEWAY_AUTH_RULES=RULES,
                                 GATEWAY_SERVER_TRUSTED_PROXIES=TRUSTED)
    forwarded = {"X-Forwarded-Method": "GET", **headers}
    answered, answer_headers, body = await forward_auth(
        gateway, check_method, query, {"X-Forwarded-Uri": "/partner/q?x=1", **forwarded})
    assert answered == status
    if status == 302:
        assert answer_headers["Location"] == gateway_url + sign_in
    else:
        assert body["sign_in_url"] == sign_in
        assert answer_headers["WWW-Authenticate"].startswith("Bearer")


async def test_unauthenticated_deny_never_redirects(make_gateway: GatewayFactory) -> None:
    """A rule with unauthenticated = "deny" answers 401 even to a navigation with
    redirect=1."""
    gateway = await make_gateway(GATEWAY_AUTH_RULES=RULES,
                                 GATEWAY_SERVER_TRUSTED_PROXIES=TRUSTED)
    answered, _, body = await forward_auth(gateway, "GET", "?redirect=1",
                                           {"X-Forwarded-Uri": "/api/x", **PAGE})
    assert answered == 401
    assert body["error"] == "unauthorized"
