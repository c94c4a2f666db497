"""GET /oauth2/userInfo and POST /oauth2/revoke."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .flows import SECRETS, Flows, basic

if TYPE_CHECKING:
    from gateway.devidp import DevIdp
    from tests.support.clock import ManualClock

BAD_TOKEN = (
    'error="invalid_token", error_description="Access token is expired, disabled, or deleted, '
    'or the user has globally signed out."'
)
BAD_REQUEST = 'error="invalid_request", error_description="Bad OAuth2 request at UserInfo Endpoint"'


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        pytest.param(
            "openid",
            {
                "sub",
                "username",
                "email",
                "email_verified",
                "name",
                "custom:tenant",
                "phone_number",
            },
            id="openid-alone-returns-everything",
        ),
        pytest.param("openid email", {"sub", "username", "email", "email_verified"}, id="email"),
        pytest.param("openid profile", {"sub", "username", "name", "custom:tenant"}, id="profile"),
        pytest.param("openid phone", {"sub", "username", "phone_number"}, id="phone"),
    ],
)
async def test_userinfo_returns_attributes_by_scope(
    flows: Flows, idp: DevIdp, scope: str, expected: set[str]
) -> None:
    """userInfo returns sub, username and the attributes the scopes allow."""
    body = await flows.tokens(scope=scope)
    response = await flows.userinfo(body["access_token"])
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    info = await response.json()
    assert set(info) == expected
    alice = idp.pool.user("alice")
    assert alice is not None, "the test pool has the user alice"
    assert info["sub"] == alice.subject
    assert info["username"] == "alice"
    if "email_verified" in info:
        assert info["email_verified"] == "true"


async def test_userinfo_path_is_case_sensitive(flows: Flows, idp: DevIdp) -> None:
    """/oauth2/userinfo (lower case) is 404."""
    body = await flows.tokens()
    response = await flows.get(
        f"{idp.base_url}/oauth2/userinfo",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert response.status == 404


async def _token_of_kind(flows: Flows, clock: ManualClock, kind: str) -> str:
    """A token of `kind` (the test's parameter) that userInfo must refuse."""
    token: str
    if kind == "id":
        token = (await flows.tokens())["id_token"]
    elif kind == "no-openid":
        token = (await flows.tokens(scope="email"))["access_token"]
    elif kind == "client-credentials":
        _, _, body = await flows.token(
            {"grant_type": "client_credentials"}, auth=basic("machine", SECRETS["machine"])
        )
        token = body["access_token"]
    elif kind == "expired":
        token = (await flows.tokens(client_id="short"))["access_token"]
        await clock.advance(1.1)
    elif kind == "tampered":
        token = (await flows.tokens())["access_token"]
        token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    else:
        assert kind == "garbage", f"no token of kind {kind!r}"
        token = "not-a-jwt"
    return token


@pytest.mark.parametrize(
    "kind", ["id", "no-openid", "client-credentials", "expired", "tampered", "garbage"]
)
async def test_userinfo_refuses_tokens_that_are_not_live_openid_access_tokens(
    flows: Flows, clock: ManualClock, kind: str
) -> None:
    """Anything but a live access token with openid: 401 with invalid_token in WWW-Authenticate."""
    token = await _token_of_kind(flows, clock, kind)
    response = await flows.userinfo(token)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == BAD_TOKEN


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="no-authorization"),
        pytest.param("Basic abc", id="basic"),
        pytest.param("Bearer ", id="empty-bearer"),
    ],
)
async def test_userinfo_without_bearer_token_is_invalid_request(
    flows: Flows, idp: DevIdp, header: str | None
) -> None:
    """No Bearer token: 400 with invalid_request in WWW-Authenticate."""
    headers = {"Authorization": header} if header is not None else {}
    response = await flows.get(f"{idp.base_url}/oauth2/userInfo", headers=headers)
    assert response.status == 400
    assert response.headers["WWW-Authenticate"] == BAD_REQUEST


async def _revoke(
    flows: Flows, data: dict[str, str], auth: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST /oauth2/revoke: (status, headers, raw body)."""
    headers = {"Authorization": auth} if auth is not None else {}
    async with flows.http.post(
        f"{flows.idp.base_url}/oauth2/revoke", data=data, headers=headers
    ) as response:
        return response.status, dict(response.headers), await response.read()


async def test_revoke_kills_refresh_token_and_its_access_tokens(flows: Flows) -> None:
    """Revocation: 200 empty; the refresh token and every access token of its origin die."""
    first = await flows.tokens()
    _, _, refreshed = await flows.refresh(first["refresh_token"])
    other = await flows.tokens()
    status, _, body = await _revoke(
        flows, {"token": first["refresh_token"]}, auth=basic("web", SECRETS["web"])
    )
    assert (status, body) == (200, b"")
    assert (await flows.refresh(first["refresh_token"]))[2] == {"error": "invalid_grant"}
    for token in (first["access_token"], refreshed["access_token"]):
        assert (await flows.userinfo(token)).status == 401
    assert (await flows.userinfo(other["access_token"])).status == 200
    assert (await flows.refresh(other["refresh_token"]))[0] == 200


async def test_public_client_revokes_with_client_id_in_body(flows: Flows) -> None:
    """A public client names itself with client_id in the body."""
    first = await flows.tokens(client_id="spa")
    status, _, _ = await _revoke(flows, {"token": first["refresh_token"], "client_id": "spa"})
    assert status == 200
    assert (await flows.refresh(first["refresh_token"], client_id="spa"))[0] == 400


@pytest.mark.parametrize(
    ("token", "auth", "status", "error"),
    [
        pytest.param("a.b.c.d.e", basic("web", "web-secret"), 200, None, id="unknown-token"),
        pytest.param("revoked", basic("web", "web-secret"), 200, None, id="already-revoked"),
        pytest.param("refresh", basic("spa", "x"), 401, "invalid_client", id="public-with-secret"),
        pytest.param("refresh", basic("web", "wrong"), 401, "invalid_client", id="wrong-secret"),
        pytest.param("refresh", basic("nobody", "x"), 401, "invalid_client", id="unknown-client"),
        pytest.param("refresh", None, 400, "invalid_request", id="no-client"),
        pytest.param(None, basic("web", "web-secret"), 400, "invalid_request", id="no-token"),
        pytest.param(
            "access",
            basic("web", "web-secret"),
            400,
            "unsupported_token_type",
            id="access-token",
        ),
        pytest.param(
            "refresh",
            basic("norevoke", "norevoke-secret"),
            400,
            "invalid_request",
            id="revocation-disabled",
        ),
    ],
)
async def test_revoke_responses(
    flows: Flows, token: str | None, auth: str | None, status: int, error: str | None
) -> None:
    """Each revocation request gets Cognito's status and error body."""
    tokens = await flows.tokens()
    if token == "revoked":
        await _revoke(flows, {"token": tokens["refresh_token"]}, auth=basic("web", "web-secret"))
    values = {
        "refresh": tokens["refresh_token"],
        "revoked": tokens["refresh_token"],
        "access": tokens["access_token"],
    }
    data: dict[str, str] = {}
    if token is not None:
        data["token"] = values.get(token, token)
    got_status, headers, body = await _revoke(flows, data, auth=auth)
    assert got_status == status
    if error is None:
        assert body == b""
    else:
        assert headers["Content-Type"] == "application/json;charset=UTF-8"
        assert body == f'{{"error": "{error}"}}'.encode()
