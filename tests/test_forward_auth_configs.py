"""The shipped forward-auth configurations for Traefik and Envoy, checked against the gateway.

Neither proxy runs here, so deploy/forward-auth/traefik.yml and envoy.yaml are read as data and
held to what their proxies' documentation requires and to what the gateway actually sends and
reads: the identity headers come from the gateway's own `IdentityHeaders`, the cookie chunks
from its `CookiePolicy`, the check path is parsed and routed by the gateway's own code. Only
nginx is tested end to end (tests/test_forward_auth_nginx.py); a structural check of the nginx
snippet covers what those tests cannot reach (cookie chunks beyond the second).

Envoy's check requests, as the bootstrap describes them (the client's method, the path after
`path_prefix`, the original URI and method in headers), are sent to a real gateway.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import yaml
from cryptography.fernet import Fernet
from yarl import URL

from gateway.app import create_app
from gateway.auth.alb import AlbDataSigner
from gateway.auth.headers import IdentityHeaders
from gateway.auth.whoami import ORIGINAL_URI_HEADERS
from gateway.config import HeadersSettings, SessionSettings, load_settings
from gateway.identity import Identity
from gateway.routing import ROUTER
from gateway.sessions.cookies import CookiePolicy
from gateway.target import parse_target
from gateway.upstream.forwarding import client_may_send

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.conftest import GatewayFactory

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "forward-auth"
OVERRIDE_HEADERS = frozenset({
    "x-original-url", "x-original-host", "x-host", "x-rewrite-url", "x-original-uri",
    "x-original-method", "x-forwarded-uri", "x-forwarded-method", "x-forwarded-path",
    "x-forwarded-prefix", "x-http-method-override", "x-http-method", "x-method-override",
})
"""URL, host and method override headers that must never reach the app from a client."""


def identity_headers() -> frozenset[str]:
    """Every identity header the gateway can send upstream: both sets, every option on."""
    headers = IdentityHeaders(
        HeadersSettings(sets=["x-auth-request", "alb"], pass_access_token=True,
                        pass_unverified_email=True),
        AlbDataSigner(Fernet.generate_key().decode(), issuer="http://idp.test/pool",
                      client_id="client", signer="gateway"))
    identity = Identity(sub="sub", username="user", email="user@example.com",
                        email_verified=True, groups=("group",))
    built = headers.build(identity, access_token="access", exp=time.time() + 60)
    return frozenset(name.lower() for name in built)


def cookie_chunks() -> tuple[str, ...]:
    """The names of the session cookie's chunks, for the default cookie name."""
    return CookiePolicy(SessionSettings().cookie_name, secure=True, samesite="lax").chunk_names


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / name).read_text())
    assert isinstance(data, dict), f"{name} is not a YAML mapping"
    return data


def lower(names: list[str]) -> set[str]:
    return {name.lower() for name in names}


def test_override_headers_are_the_ones_the_gateway_refuses_from_clients() -> None:
    """Every override header the configurations strip is one the gateway itself never lets a
    client send upstream, so the proxies and the gateway agree."""
    assert not [name for name in OVERRIDE_HEADERS if client_may_send(name)]


class TestTraefik:
    """deploy/forward-auth/traefik.yml (dynamic configuration, Traefik v3.4+)."""

    @pytest.fixture
    def http(self) -> dict[str, Any]:
        config: dict[str, Any] = load("traefik.yml")["http"]
        return config

    @staticmethod
    def forward_auth(http: dict[str, Any]) -> dict[str, Any]:
        found = [m["forwardAuth"] for m in http["middlewares"].values() if "forwardAuth" in m]
        assert len(found) == 1, "exactly one forwardAuth middleware"
        middleware: dict[str, Any] = found[0]
        return middleware

    def test_forward_auth_asks_the_gateways_auth_endpoint(self, http: dict[str, Any]) -> None:
        """forwardAuth calls /oauth2/auth?redirect=1 on the gateway service (Traefik hands the
        client the gateway's redirect to the sign-in), and sets the original URI and method
        itself (trustForwardHeader false) instead of passing a client's own."""
        middleware = self.forward_auth(http)
        address = URL(middleware["address"])
        assert address.path == "/oauth2/auth"
        assert dict(address.query) == {"redirect": "1"}
        assert middleware["trustForwardHeader"] is False
        gateway = URL(http["services"]["cognito-gateway"]["loadBalancer"]["servers"][0]["url"])
        assert (address.scheme, address.host, address.port) == (
            gateway.scheme, gateway.host, gateway.port)

    def test_forward_auth_copies_every_identity_header(self, http: dict[str, Any]) -> None:
        """Every identity header the gateway can send is copied to the app's request (and a
        client's own copy of it removed, which Traefik does for each listed name)."""
        assert identity_headers() <= lower(self.forward_auth(http)["authResponseHeaders"])

    def test_forward_auth_returns_every_renewed_cookie_chunk(self, http: dict[str, Any]) -> None:
        """A session renewed while deciding reaches the browser, in every chunk."""
        assert set(self.forward_auth(http)["addAuthCookiesToResponse"]) == set(cookie_chunks())

    @pytest.mark.parametrize(("router", "middlewares", "service"), [
        pytest.param("cognito-gateway", [], "cognito-gateway", id="gateway-endpoints"),
        pytest.param("app", ["cognito-gateway-strip", "cognito-gateway-auth"], "app",
                     id="the-app"),
    ])
    def test_routers(self, http: dict[str, Any], router: str, middlewares: list[str],
                     service: str) -> None:
        """The gateway's endpoints are served on the app's origin without forward-auth; every
        request to the app is stripped of overrides, then decided by the gateway."""
        config = http["routers"][router]
        assert config.get("middlewares", []) == middlewares
        assert config["service"] == service
        assert config["service"] in http["services"]
        assert all(name in http["middlewares"] for name in middlewares)
        assert set(http["routers"]) == {"cognito-gateway", "app"}

    def test_router_priorities_keep_the_gateways_endpoints_out_of_forward_auth(
            self, http: dict[str, Any]) -> None:
        """/oauth2/ outranks the app's router, so the callback is never behind forward-auth."""
        routers = http["routers"]
        assert "PathPrefix(`/oauth2/`)" in routers["cognito-gateway"]["rule"]
        assert routers["cognito-gateway"]["priority"] > routers["app"]["priority"]

    def test_strip_middleware_removes_every_override_header(self, http: dict[str, Any]) -> None:
        """Clients' URL, host and method overrides are removed (empty value) before the app."""
        custom = http["middlewares"]["cognito-gateway-strip"]["headers"]["customRequestHeaders"]
        assert lower(list(custom)) >= OVERRIDE_HEADERS
        assert set(custom.values()) == {""}


class TestEnvoy:
    """deploy/forward-auth/envoy.yaml (a whole bootstrap: listener, filters, routes, clusters)."""

    @pytest.fixture
    def bootstrap(self) -> dict[str, Any]:
        return load("envoy.yaml")

    @staticmethod
    def manager(bootstrap: dict[str, Any]) -> dict[str, Any]:
        (listener,) = bootstrap["static_resources"]["listeners"]
        (chain,) = listener["filter_chains"]
        (network,) = chain["filters"]
        assert network["name"] == "envoy.filters.network.http_connection_manager"
        config: dict[str, Any] = network["typed_config"]
        return config

    @classmethod
    def http_filter(cls, bootstrap: dict[str, Any], name: str) -> dict[str, Any]:
        found = [f["typed_config"] for f in cls.manager(bootstrap)["http_filters"]
                 if f["name"] == name]
        assert len(found) == 1, f"exactly one {name}"
        config: dict[str, Any] = found[0]
        return config

    @classmethod
    def ext_authz(cls, bootstrap: dict[str, Any]) -> dict[str, Any]:
        return cls.http_filter(bootstrap, "envoy.filters.http.ext_authz")

    @staticmethod
    def patterns(matcher: dict[str, Any]) -> set[str]:
        return {pattern["exact"] for pattern in matcher["patterns"]}

    @staticmethod
    def cluster_address(bootstrap: dict[str, Any], name: str) -> tuple[str, int]:
        (cluster,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == name]
        (endpoints,) = cluster["load_assignment"]["endpoints"]
        (endpoint,) = endpoints["lb_endpoints"]
        socket = endpoint["endpoint"]["address"]["socket_address"]
        return socket["address"], socket["port_value"]

    def test_filters_run_strip_then_ext_authz_then_router(self, bootstrap: dict[str, Any]) -> None:
        """Client copies are removed before ext_authz adds the gateway's headers, and the
        router comes last."""
        names = [f["name"] for f in self.manager(bootstrap)["http_filters"]]
        assert names == ["envoy.filters.http.header_mutation", "envoy.filters.http.ext_authz",
                         "envoy.filters.http.router"]

    def test_check_request_reaches_the_gateways_auth_endpoint(
            self, bootstrap: dict[str, Any]) -> None:
        """Envoy appends the client's path to path_prefix; with it the gateway's own parser and
        router still send the check to /oauth2/auth, whatever the client's path."""
        service = self.ext_authz(bootstrap)["http_service"]
        router = create_app(load_settings(environ={
            "GATEWAY_SERVER_PUBLIC_URL": "https://app.example.com",
            "GATEWAY_COGNITO_USER_POOL_ID": "eu-west-1_AbCdEf123",
            "GATEWAY_COGNITO_CLIENT_ID": "client",
            "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode()}))[ROUTER]
        for client_path in ("/", "/app/page?tab=2", "/oauth2/callback?code=x", "/a/../b"):
            target = parse_target(service["path_prefix"] + client_path)
            assert target.path == "/oauth2/auth"
            assert router.endpoint(target) is router.paths["/oauth2/auth"]

    def test_check_request_carries_the_original_uri_and_method(
            self, bootstrap: dict[str, Any]) -> None:
        """The request being decided on travels in X-Forwarded-Uri/-Method, the headers the
        gateway reads first, set from Envoy's own view of the request."""
        request = self.ext_authz(bootstrap)["http_service"]["authorization_request"]
        added = {h["key"].lower(): h["value"] for h in request["headers_to_add"]}
        assert added == {"x-forwarded-uri": "%REQ(:PATH)%", "x-forwarded-method": "%REQ(:METHOD)%"}
        assert ORIGINAL_URI_HEADERS[0].lower() == "x-forwarded-uri"

    def test_check_request_carries_what_the_gateway_decides_on(
            self, bootstrap: dict[str, Any]) -> None:
        """The session cookie and the navigation signals reach the gateway (Authorization is
        always sent by Envoy)."""
        allowed = self.patterns(self.ext_authz(bootstrap)["allowed_headers"])
        assert {"cookie", "accept", "sec-fetch-mode", "x-requested-with"} <= allowed

    def test_every_identity_header_reaches_the_app(self, bootstrap: dict[str, Any]) -> None:
        """Every identity header the gateway can send is set on the app's request."""
        response = self.ext_authz(bootstrap)["http_service"]["authorization_response"]
        assert identity_headers() <= self.patterns(response["allowed_upstream_headers"])

    def test_gateway_answers_and_renewed_cookies_reach_the_client(
            self, bootstrap: dict[str, Any]) -> None:
        """A renewed session cookie passes on success; on refusal the client gets the
        gateway's answer with its content type, challenge, cookies and sign-in redirect."""
        response = self.ext_authz(bootstrap)["http_service"]["authorization_response"]
        assert "set-cookie" in self.patterns(response["allowed_client_headers_on_success"])
        assert {"content-type", "www-authenticate", "set-cookie", "location"} <= self.patterns(
            response["allowed_client_headers"])

    def test_check_request_asks_for_200_and_for_the_sign_in_redirect(
            self, bootstrap: dict[str, Any]) -> None:
        """path_prefix carries the gateway's switches before envoy_path, where the client's
        path begins."""
        prefix = self.ext_authz(bootstrap)["http_service"]["path_prefix"]
        query = URL(prefix).query
        assert (query.get("status"), query.get("redirect")) == ("200", "1")
        assert prefix.endswith("&envoy_path=")

    def test_client_copies_of_identity_and_override_headers_are_removed(
            self, bootstrap: dict[str, Any]) -> None:
        """A client's identity headers and overrides never reach the app, also when the
        gateway sends none of its own (no email, public path)."""
        mutation = self.http_filter(bootstrap, "envoy.filters.http.header_mutation")
        removed = {m["remove"] for m in mutation["mutations"]["request_mutations"]}
        assert identity_headers() | OVERRIDE_HEADERS <= removed

    def test_routes_serve_the_gateway_unguarded_and_guard_the_app(
            self, bootstrap: dict[str, Any]) -> None:
        """/oauth2/ goes to the gateway with ext_authz off; everything else to the app."""
        (host,) = self.manager(bootstrap)["route_config"]["virtual_hosts"]
        routes = {r["match"]["prefix"]: r for r in host["routes"]}
        assert list(routes) == ["/oauth2/", "/"]
        gateway = routes["/oauth2/"]
        assert gateway["route"]["cluster"] == "cognito_gateway"
        per_route = gateway["typed_per_filter_config"]["envoy.filters.http.ext_authz"]
        assert per_route["disabled"] is True
        assert routes["/"]["route"]["cluster"] == "protected_app"
        assert "typed_per_filter_config" not in routes["/"]

    def test_ext_authz_server_is_the_gateway_cluster(self, bootstrap: dict[str, Any]) -> None:
        """The check goes to the same gateway the /oauth2/ route serves."""
        server = self.ext_authz(bootstrap)["http_service"]["server_uri"]
        assert server["cluster"] == "cognito_gateway"
        uri = URL(server["uri"])
        assert (uri.host, uri.port) == self.cluster_address(bootstrap, "cognito_gateway")

    def test_paths_are_normalised_once_and_ambiguous_ones_refused(
            self, bootstrap: dict[str, Any]) -> None:
        """The path the gateway decides on (%REQ(:PATH)%) is the path the app receives."""
        manager = self.manager(bootstrap)
        assert manager["normalize_path"] is True
        assert manager["merge_slashes"] is True
        assert manager["path_with_escaped_slashes_action"] == "REJECT_REQUEST"


class TestNginxSnippet:
    """What the end-to-end tests cannot reach in deploy/forward-auth/nginx.conf."""

    @pytest.fixture
    def snippet(self) -> str:
        return (DEPLOY / "nginx.conf").read_text()

    @pytest.mark.parametrize("index", range(len(cookie_chunks())))
    def test_every_cookie_chunk_is_carried_to_the_browser(self, snippet: str,
                                                          index: int) -> None:
        """Each chunk the gateway may renew is read by name, rebuilt and added to the answer."""
        name = cookie_chunks()[index]
        assert re.search(rf"auth_request_set \$gateway_cookie_{index} \$upstream_cookie_{name};",
                         snippet)
        assert re.search(rf'map \$gateway_cookie_{index} \$gateway_set_cookie_{index} .*'
                         rf'"{name}=\$gateway_cookie_{index}\$gateway_cookie_attributes"', snippet)
        assert f"add_header Set-Cookie $gateway_set_cookie_{index} always;" in snippet

    def test_every_identity_header_is_passed_and_client_copies_replaced(
            self, snippet: str) -> None:
        """Every identity header the gateway can send is read from the auth answer and set on
        the app's request (an nginx proxy_set_header also drops the client's copy)."""
        for header in identity_headers():
            variable = header.replace("-", "_")
            assert re.search(rf"auth_request_set \$\w+ +\$upstream_http_{variable};", snippet)
            assert re.search(rf"(?i)proxy_set_header {header} +\$gateway_\w+;", snippet)


@pytest.fixture
async def http_client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def envoy_check(make_gateway: GatewayFactory, http_client: aiohttp.ClientSession,
                      method: str, client_target: str = "/public/page",
                      headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    """Status and headers of the check request Envoy would send for `method` on
    `client_target` (its path and query appended to path_prefix, and in X-Forwarded-Uri)."""
    gateway = await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS='["/public/*"]',
                                 GATEWAY_SERVER_TRUSTED_PROXIES="127.0.0.1/32")
    path_prefix = TestEnvoy.ext_authz(load("envoy.yaml"))["http_service"]["path_prefix"]
    async with http_client.request(
            method, URL(gateway.url + path_prefix + client_target, encoded=True),
            allow_redirects=False,
            headers={"X-Forwarded-Uri": client_target, "X-Forwarded-Method": method,
                     "Content-Length": "0", **(headers or {})}) as response:
        return response.status, dict(response.headers)


async def test_envoys_check_request_is_decided_by_the_auth_endpoint(
        make_gateway: GatewayFactory, http_client: aiohttp.ClientSession) -> None:
    """Envoy's check request (the client's path in the query) is answered by /oauth2/auth,
    which allows a public path with a 2xx."""
    status, _ = await envoy_check(make_gateway, http_client, "GET")
    assert 200 <= status < 300


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_envoys_check_request_is_allowed_with_200_for_every_method(
        make_gateway: GatewayFactory, http_client: aiohttp.ClientSession, method: str) -> None:
    """Envoy lets a request through only on 200, and its check request keeps the client's
    method: the gateway must answer it with 200 whatever the method."""
    status, _ = await envoy_check(make_gateway, http_client, method)
    assert status == 200


PAGE_LOAD = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}


@pytest.mark.parametrize(("method", "client_target", "headers", "status"), [
    pytest.param("GET", "/private/page?tab=2", PAGE_LOAD, 302, id="navigation-redirected"),
    pytest.param("GET", "/private/page", {"Accept": "application/json"}, 401, id="api-401"),
    pytest.param("POST", "/private/form", PAGE_LOAD, 401, id="form-post-401"),
    pytest.param("GET", "/public/page?status=202&redirect=0", PAGE_LOAD, 200,
                 id="clients-own-switches-ignored"),
    pytest.param("GET", "/private/page?redirect=0&status=200", PAGE_LOAD, 302,
                 id="clients-own-switches-ignored-when-refused"),
])
async def test_envoys_check_request_answers_what_envoy_relays(
        make_gateway: GatewayFactory, http_client: aiohttp.ClientSession, gateway_url: str,
        method: str, client_target: str, headers: dict[str, str], status: int) -> None:
    """Envoy relays a refusal to the client: a browser that must sign in gets a 302 to the
    gateway's sign-in on the public origin, coming back to the original target; switches in
    the client's own query (after envoy_path) change nothing."""
    answered, answer_headers = await envoy_check(make_gateway, http_client, method,
                                                 client_target, headers)
    assert answered == status
    if status == 302:
        location = URL(answer_headers["Location"])
        assert (location.origin(), location.path) == (URL(gateway_url).origin(),
                                                      "/oauth2/sign_in")
        assert location.query["rd"] == client_target
