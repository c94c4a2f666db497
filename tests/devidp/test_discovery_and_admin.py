"""Discovery, JWKS, key rotation and the /_admin/ test hooks (faults, stats, sign-out)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from .flows import Flows, basic

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.devidp import DevIdp


async def _json(
    flows: Flows, method: str, url: str, body: object = None
) -> tuple[int, dict[str, Any]]:
    """Send `body` (if any) as JSON; return the status and the JSON object answered."""
    async with flows.http.request(method, url, json=body) as response:
        answer: dict[str, Any] = await response.json(content_type=None)
        return response.status, answer


async def test_discovery_has_exactly_cognitos_fields(flows: Flows, idp: DevIdp) -> None:
    """Discovery has Cognito's field set: endpoints on the domain, jwks_uri on the issuer."""
    status, doc = await _json(flows, "GET", f"{idp.issuer}/.well-known/openid-configuration")
    assert status == 200
    base = idp.base_url
    assert idp.issuer == f"{base}/local-1_DevPool01"
    assert doc == {
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "end_session_endpoint": f"{base}/logout",
        "id_token_signing_alg_values_supported": ["RS256"],
        "issuer": idp.issuer,
        "jwks_uri": f"{idp.issuer}/.well-known/jwks.json",
        "response_types_supported": ["code", "token"],
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "scopes_supported": ["openid", "email", "phone", "profile"],
        "subject_types_supported": ["public"],
        "token_endpoint": f"{base}/oauth2/token",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "userinfo_endpoint": f"{base}/oauth2/userInfo",
    }


async def test_jwks_has_two_rsa_keys_one_per_token_use(flows: Flows, idp: DevIdp) -> None:
    """Two RS256 signing keys; ID tokens use the first kid, access tokens the second."""
    status, doc = await _json(flows, "GET", f"{idp.issuer}/.well-known/jwks.json")
    assert status == 200
    assert [set(k) for k in doc["keys"]] == [{"kid", "alg", "kty", "e", "n", "use"}] * 2
    assert all(k["alg"] == "RS256" and k["kty"] == "RSA" and k["e"] == "AQAB" for k in doc["keys"])
    assert all(k["use"] == "sig" for k in doc["keys"])
    body = await flows.tokens()
    kids = [k["kid"] for k in doc["keys"]]
    assert jwt.get_unverified_header(body["id_token"])["kid"] == kids[0]
    assert jwt.get_unverified_header(body["access_token"])["kid"] == kids[1]


@pytest.mark.parametrize("via", ["http", "method"])
async def test_rotate_keys_replaces_both_kids(flows: Flows, idp: DevIdp, via: str) -> None:
    """Rotation gives new kids, drops the old ones, and old access tokens fail userInfo."""
    before = await flows.tokens()
    _, old = await _json(flows, "GET", f"{idp.issuer}/.well-known/jwks.json")
    if via == "http":
        status, _ = await _json(flows, "POST", f"{idp.base_url}/_admin/rotate-keys")
        assert status == 200
    else:
        idp.rotate_keys()
    _, new = await _json(flows, "GET", f"{idp.issuer}/.well-known/jwks.json")
    old_kids = {k["kid"] for k in old["keys"]}
    new_kids = {k["kid"] for k in new["keys"]}
    assert len(new_kids) == 2
    assert not old_kids & new_kids
    assert (await flows.userinfo(before["access_token"])).status == 401
    after = await flows.tokens()
    assert jwt.get_unverified_header(after["id_token"])["kid"] == new["keys"][0]["kid"]


@pytest.mark.parametrize("via", ["http", "method"])
async def test_global_sign_out_revokes_refresh_and_access_tokens(
    flows: Flows, idp: DevIdp, via: str
) -> None:
    """Global sign-out kills every refresh token of the user and their access tokens."""
    first, second = await flows.tokens(), await flows.tokens(client_id="spa")
    if via == "http":
        status, _ = await _json(flows, "POST", f"{idp.base_url}/_admin/users/alice/global-sign-out")
        assert status == 200
    else:
        idp.global_sign_out("alice")
    assert (await flows.refresh(first["refresh_token"]))[2] == {"error": "invalid_grant"}
    assert (await flows.refresh(second["refresh_token"], client_id="spa"))[0] == 400
    assert (await flows.userinfo(first["access_token"])).status == 401


async def test_admin_unknown_user_or_client_is_404(flows: Flows, idp: DevIdp) -> None:
    """Admin hooks answer 404 for an unknown user or client."""
    url = idp.base_url
    assert (await _json(flows, "POST", f"{url}/_admin/users/nobody/global-sign-out"))[0] == 404
    assert (await _json(flows, "POST", f"{url}/_admin/clients/nobody/disable"))[0] == 404


async def test_disable_and_enable_client_over_http(flows: Flows, idp: DevIdp) -> None:
    """/_admin/clients/{id}/disable makes the client fail; /enable restores it."""
    auth = basic("machine", "machine-secret")
    grant = {"grant_type": "client_credentials"}
    await _json(flows, "POST", f"{idp.base_url}/_admin/clients/machine/disable")
    assert (await flows.token(grant, auth=auth))[2] == {"error": "invalid_client"}
    await _json(flows, "POST", f"{idp.base_url}/_admin/clients/machine/enable")
    assert (await flows.token(grant, auth=auth))[0] == 200


async def test_fault_with_count_answers_that_many_calls(flows: Flows, idp: DevIdp) -> None:
    """A fault with count=2 answers the next two calls with its status, body and type."""
    status, _ = await _json(
        flows,
        "POST",
        f"{idp.base_url}/_admin/faults",
        {"endpoint": "token", "status": 503, "body": "<h1>down</h1>", "count": 2},
    )
    assert status == 200
    grant = {"grant_type": "client_credentials"}
    auth = basic("machine", "machine-secret")
    for _ in range(2):
        async with flows.http.post(
            f"{idp.base_url}/oauth2/token", data=grant, headers={"Authorization": auth}
        ) as response:
            assert response.status == 503
            assert response.headers["Content-Type"] == "text/html"
            assert await response.text() == "<h1>down</h1>"
    assert (await flows.token(grant, auth=auth))[0] == 200
    assert idp.token_requests["client_credentials"] == 3


@pytest.mark.parametrize(
    ("endpoint", "url_of"),
    [
        ("discovery", lambda idp: f"{idp.issuer}/.well-known/openid-configuration"),
        ("jwks", lambda idp: f"{idp.issuer}/.well-known/jwks.json"),
        ("userInfo", lambda idp: f"{idp.base_url}/oauth2/userInfo"),
    ],
)
async def test_fault_without_count_lasts_until_cleared(
    flows: Flows, idp: DevIdp, endpoint: str, url_of: Callable[[DevIdp], str]
) -> None:
    """A fault without count answers every call until DELETE /_admin/faults."""
    idp.add_fault(endpoint, 500, body='{"x": 1}', content_type="application/json")
    for _ in range(3):
        assert (await flows.get(url_of(idp))).status == 500
    async with flows.http.delete(f"{idp.base_url}/_admin/faults") as response:
        assert response.status == 200
    assert (await flows.get(url_of(idp))).status != 500


async def test_delay_only_fault_delays_then_answers_normally(flows: Flows, idp: DevIdp) -> None:
    """A fault without a status sleeps delay_seconds, then the endpoint answers as usual."""
    idp.add_fault("revoke", delay_seconds=0.3, count=1)
    started = time.monotonic()
    async with flows.http.post(
        f"{idp.base_url}/oauth2/revoke",
        data={"token": "x"},
        headers={"Authorization": basic("web", "web-secret")},
    ) as response:
        assert response.status == 200
    assert time.monotonic() - started >= 0.3


async def test_delay_fault_can_outlast_a_client_timeout(flows: Flows, idp: DevIdp) -> None:
    """A long delay lets a client's own timeout fire first."""
    idp.add_fault("jwks", delay_seconds=0.5, count=1)
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.1):
            await flows.get(f"{idp.issuer}/.well-known/jwks.json")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"endpoint": "nope", "status": 500}, id="unknown-endpoint"),
        pytest.param({"status": 500}, id="no-endpoint"),
        pytest.param({"endpoint": "token", "status": 42}, id="status-not-http"),
        pytest.param({"endpoint": "token", "count": 0}, id="zero-count"),
        pytest.param({"endpoint": "token", "status": "500"}, id="status-as-string"),
        pytest.param({"endpoint": "token", "unknown": 1}, id="unknown-key"),
        pytest.param([], id="not-an-object"),
    ],
)
async def test_malformed_fault_is_400(
    flows: Flows, idp: DevIdp, body: dict[str, object] | list[object]
) -> None:
    """A fault the IdP cannot arm is refused with 400 and an error message."""
    status, answer = await _json(flows, "POST", f"{idp.base_url}/_admin/faults", body)
    assert status == 400
    assert answer["error"]


async def test_stats_count_token_requests_and_reset(flows: Flows, idp: DevIdp) -> None:
    """GET /_admin/stats reports token requests by grant type; reset zeroes them."""
    body = await flows.tokens()
    await flows.refresh(body["refresh_token"])
    status, stats = await _json(flows, "GET", f"{idp.base_url}/_admin/stats")
    assert (status, stats) == (
        200,
        {"token_requests": {"authorization_code": 1, "refresh_token": 1}},
    )
    await _json(flows, "POST", f"{idp.base_url}/_admin/stats/reset")
    assert (await _json(flows, "GET", f"{idp.base_url}/_admin/stats"))[1] == {"token_requests": {}}
    assert not idp.token_requests
