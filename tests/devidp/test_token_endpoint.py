"""POST /oauth2/token: grants, token shapes, and every error response."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jwt
import pytest

from .flows import CALLBACK, SECRETS, Flows, basic, pkce_pair

if TYPE_CHECKING:
    from gateway.devidp import DevIdp
    from tests.support.clock import ManualClock

WEB = basic("web", SECRETS["web"])
MACHINE = basic("machine", SECRETS["machine"])


async def test_code_flow_with_pkce_returns_cognito_shaped_tokens(flows: Flows, idp: DevIdp) -> None:
    """A public client's code + PKCE exchange returns Cognito-shaped ID, access, refresh tokens."""
    verifier, challenge = pkce_pair()
    code = await flows.code(
        client_id="spa",
        code_challenge=challenge,
        code_challenge_method="S256",
        nonce="n-123",
        state="c3RhdGU",
    )
    status, headers, body = await flows.exchange(code, client_id="spa", code_verifier=verifier)

    assert status == 200
    assert headers["Content-Type"] == "application/json;charset=UTF-8"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["x-amz-cognito-request-id"]
    assert set(body) == {"id_token", "access_token", "refresh_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600

    id_header = jwt.get_unverified_header(body["id_token"])
    access_header = jwt.get_unverified_header(body["access_token"])
    assert set(id_header) == {"kid", "alg"} == set(access_header)
    assert id_header["kid"] != access_header["kid"]

    idt = await flows.verify(body["id_token"])
    at = await flows.verify(body["access_token"])
    alice = idp.pool.user("alice")
    assert alice is not None, "the test pool has the user alice"
    assert idt["aud"] == "spa"
    assert idt["token_use"] == "id"
    assert idt["sub"] == alice.subject
    assert idt["cognito:username"] == "alice"
    assert idt["cognito:groups"] == ["admins", "staff"]
    assert idt["email"] == "alice@example.com"
    assert idt["email_verified"] is True
    assert idt["nonce"] == "n-123"
    assert idt["custom:tenant"] == "acme"
    assert idt["origin_jti"] == at["origin_jti"]
    assert idt["event_id"] == at["event_id"]
    assert idt["auth_time"] <= idt["iat"] < idt["exp"]
    assert {"jti", "at_hash"} <= set(idt)

    assert "aud" not in at
    assert at["client_id"] == "spa"
    assert at["token_use"] == "access"
    assert at["username"] == "alice"
    assert at["version"] == 2
    assert at["scope"] == "openid email profile"
    assert at["exp"] - at["iat"] == 3600

    refresh = body["refresh_token"]
    assert refresh.count(".") == 4
    assert 1600 <= len(refresh) <= 2000


async def test_user_without_groups_or_email_gets_no_such_claims(flows: Flows) -> None:
    """cognito:groups, email and email_verified are left out when the user has none."""
    body = await flows.tokens(username="bob", password="bob-password-1")
    idt = await flows.verify(body["id_token"])
    at = await flows.verify(body["access_token"])
    assert idt["sub"] == at["sub"] == "bob-sub-not-a-uuid"
    assert not {"cognito:groups", "email", "email_verified"} & set(idt)
    assert "cognito:groups" not in at


async def test_scope_without_openid_gets_no_id_token(flows: Flows) -> None:
    """Without the openid scope the code grant returns no id_token."""
    body = await flows.tokens(scope="email profile")
    assert "id_token" not in body
    assert set(body) == {"access_token", "refresh_token", "expires_in", "token_type"}


async def test_client_secret_post_is_accepted(flows: Flows) -> None:
    """client_id and client_secret in the body authenticate a confidential client."""
    code = await flows.code()
    status, _, body = await flows.token(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": "web",
            "client_secret": SECRETS["web"],
        }
    )
    assert status == 200, body


async def test_get_is_method_not_allowed(flows: Flows, idp: DevIdp) -> None:
    """GET /oauth2/token answers 405."""
    response = await flows.get(f"{idp.base_url}/oauth2/token")
    assert response.status == 405


async def test_reused_code_is_invalid_grant(flows: Flows) -> None:
    """A code redeemed once is invalid_grant the second time."""
    code = await flows.code()
    assert (await flows.exchange(code))[0] == 200
    status, headers, body = await flows.exchange(code)
    assert (status, body) == (400, {"error": "invalid_grant"})
    assert headers["Content-Type"] == "application/json;charset=UTF-8"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["x-amz-cognito-request-id"]


async def test_expired_code_is_invalid_grant(flows: Flows, clock: ManualClock) -> None:
    """A code older than auth_code_validity_seconds is invalid_grant."""
    code = await flows.code(client_id="short")
    await clock.advance(1.1)
    status, _, body = await flows.exchange(code, client_id="short")
    assert (status, body) == (400, {"error": "invalid_grant"})


@pytest.mark.parametrize(
    "verifier",
    [pytest.param("wrong-verifier-" + "x" * 40, id="wrong"), pytest.param(None, id="missing")],
)
async def test_bad_pkce_verifier_is_invalid_grant(flows: Flows, verifier: str | None) -> None:
    """A wrong or missing code_verifier is invalid_grant (UNCONFIRMED choice)."""
    _, challenge = pkce_pair()
    code = await flows.code(client_id="spa", code_challenge=challenge, code_challenge_method="S256")
    extra = {"code_verifier": verifier} if verifier is not None else {}
    status, _, body = await flows.exchange(code, client_id="spa", **extra)
    assert (status, body) == (400, {"error": "invalid_grant"})


async def test_redirect_uri_mismatch_is_unauthorized_client_invalid_redirect(
    flows: Flows,
) -> None:
    """A redirect_uri differing from the authorize one (trailing slash) is invalid_redirect."""
    code = await flows.code()
    status, _, body = await flows.exchange(code, redirect_uri=CALLBACK + "/")
    assert status == 400
    assert body == {"error": "unauthorized_client", "error_description": "invalid_redirect"}


async def test_code_of_another_client_is_invalid_grant(flows: Flows) -> None:
    """A code is bound to the client it was issued to."""
    code = await flows.code(client_id="spa")
    status, _, body = await flows.exchange(code, client_id="web")
    assert (status, body) == (400, {"error": "invalid_grant"})


async def test_disabled_client_is_invalid_client(flows: Flows, idp: DevIdp) -> None:
    """A disabled client fails client authentication."""
    code = await flows.code()
    idp.set_client_enabled("web", False)
    status, _, body = await flows.exchange(code)
    assert (status, body) == (400, {"error": "invalid_client"})


def _code_grant(**overrides: str | None) -> dict[str, str]:
    """An authorization_code grant's form; an override of None leaves that field out."""
    defaults = {"grant_type": "authorization_code", "code": "CODE", "redirect_uri": CALLBACK}
    return {k: v for k, v in {**defaults, **overrides}.items() if v is not None}


@pytest.mark.parametrize(
    ("data", "auth", "error"),
    [
        pytest.param({"code": "CODE"}, WEB, "invalid_request", id="no-grant-type"),
        pytest.param(
            {"grant_type": "password"},
            WEB,
            "unsupported_grant_type",
            id="unknown-grant-type",
        ),
        pytest.param(_code_grant(), None, "invalid_request", id="no-client-id"),
        pytest.param(_code_grant(), basic("web", "wrong"), "invalid_client", id="wrong-secret"),
        pytest.param(_code_grant(client_id="web"), None, "invalid_client", id="missing-secret"),
        pytest.param(_code_grant(), basic("nobody", "x"), "invalid_client", id="unknown-client"),
        pytest.param(
            _code_grant(),
            basic("spa", "a-secret"),
            "invalid_client",
            id="public-client-sends-secret",
        ),
        pytest.param(
            _code_grant(client_id="spa", client_secret="a-secret"),
            None,
            "invalid_client",
            id="public-client-posts-secret",
        ),
        pytest.param(
            _code_grant(client_id="other"),
            WEB,
            "invalid_client",
            id="body-client-id-differs-from-basic",
        ),
        pytest.param(_code_grant(), "Basic %%%", "invalid_client", id="malformed-basic"),
        pytest.param(_code_grant(code=None), WEB, "invalid_request", id="no-code"),
        pytest.param(_code_grant(redirect_uri=None), WEB, "invalid_request", id="no-redirect-uri"),
        pytest.param(_code_grant(), WEB, "invalid_grant", id="unknown-code"),
        pytest.param(_code_grant(), MACHINE, "unauthorized_client", id="code-grant-not-enabled"),
        pytest.param(
            {"grant_type": "refresh_token"},
            WEB,
            "invalid_request",
            id="no-refresh-token",
        ),
        pytest.param(
            {"grant_type": "refresh_token", "refresh_token": "a.b.c.d.e"},
            WEB,
            "invalid_grant",
            id="unknown-refresh-token",
        ),
        pytest.param(
            {"grant_type": "refresh_token", "refresh_token": "a.b.c.d.e"},
            MACHINE,
            "unauthorized_client",
            id="refresh-grant-not-enabled",
        ),
        pytest.param(
            {"grant_type": "client_credentials"},
            WEB,
            "unauthorized_client",
            id="client-credentials-not-enabled",
        ),
        pytest.param(
            {"grant_type": "client_credentials", "scope": "openid"},
            MACHINE,
            "invalid_scope",
            id="client-credentials-openid",
        ),
        pytest.param(
            {"grant_type": "client_credentials", "scope": "api/admin"},
            MACHINE,
            "invalid_scope",
            id="client-credentials-unallowed-scope",
        ),
        pytest.param(
            {"grant_type": "client_credentials", "scope": "nope/read"},
            MACHINE,
            "invalid_scope",
            id="client-credentials-unknown-scope",
        ),
    ],
)
async def test_token_errors(
    flows: Flows, data: dict[str, str], auth: str | None, error: str
) -> None:
    """Each malformed or refused token request gets Cognito's 400 JSON error."""
    status, headers, body = await flows.token(data, auth=auth)
    assert status == 400
    assert body == {"error": error}
    assert headers["Content-Type"] == "application/json;charset=UTF-8"
    assert headers["Access-Control-Allow-Origin"] == "*"


async def test_client_credentials_token_has_client_as_subject(flows: Flows) -> None:
    """client_credentials returns only an access token, sub = client_id, no username."""
    status, _, body = await flows.token(
        {"grant_type": "client_credentials", "scope": "api/read"},
        auth=MACHINE,
    )
    assert status == 200
    assert set(body) == {"access_token", "expires_in", "token_type"}
    at = await flows.verify(body["access_token"])
    assert at["sub"] == at["client_id"] == "machine"
    assert at["token_use"] == "access"
    assert at["scope"] == "api/read"
    assert not {"username", "aud"} & set(at)


async def test_client_credentials_without_scope_grants_all_allowed_custom_scopes(
    flows: Flows,
) -> None:
    """No scope parameter grants every custom scope the client is allowed."""
    _, _, body = await flows.token({"grant_type": "client_credentials"}, auth=MACHINE)
    assert (await flows.verify(body["access_token"]))["scope"] == "api/read api/write"


async def test_refresh_without_rotation_returns_no_refresh_token(flows: Flows) -> None:
    """Refresh with rotation off: new ID and access tokens, same origin, no refresh_token."""
    first = await flows.tokens(nonce="n-1")
    status, headers, body = await flows.refresh(first["refresh_token"])
    assert status == 200
    assert set(body) == {"id_token", "access_token", "expires_in", "token_type"}
    assert headers["Access-Control-Allow-Origin"] == "*"
    old_id, new_id = await flows.verify(first["id_token"]), await flows.verify(body["id_token"])
    assert new_id["origin_jti"] == old_id["origin_jti"]
    assert new_id["auth_time"] == old_id["auth_time"]
    assert new_id["jti"] != old_id["jti"]
    assert "nonce" not in new_id
    assert (await flows.refresh(first["refresh_token"]))[0] == 200


async def test_refresh_without_openid_returns_no_id_token(flows: Flows) -> None:
    """A refresh of a grant without openid returns no id_token."""
    first = await flows.tokens(scope="email")
    _, _, body = await flows.refresh(first["refresh_token"])
    assert set(body) == {"access_token", "expires_in", "token_type"}


async def test_rotation_with_zero_grace_kills_the_old_refresh_token(flows: Flows) -> None:
    """With rotation on, refresh returns a new refresh token and the old one dies at once."""
    first = await flows.tokens(client_id="rotating")
    status, _, body = await flows.refresh(first["refresh_token"], client_id="rotating")
    assert status == 200
    assert body["refresh_token"] != first["refresh_token"]
    assert (await flows.refresh(first["refresh_token"], client_id="rotating"))[2] == {
        "error": "invalid_grant"
    }
    assert (await flows.refresh(body["refresh_token"], client_id="rotating"))[0] == 200


async def test_rotation_grace_keeps_the_old_token_briefly(flows: Flows, clock: ManualClock) -> None:
    """With a grace period the old refresh token works until the grace period ends."""
    first = await flows.tokens(client_id="graceful")
    assert (await flows.refresh(first["refresh_token"], client_id="graceful"))[0] == 200
    assert (await flows.refresh(first["refresh_token"], client_id="graceful"))[0] == 200
    await clock.advance(1.1)
    status, _, body = await flows.refresh(first["refresh_token"], client_id="graceful")
    assert (status, body) == (400, {"error": "invalid_grant"})


async def test_expired_refresh_token_is_invalid_grant(flows: Flows, clock: ManualClock) -> None:
    """A refresh token past refresh_token_validity_seconds is invalid_grant."""
    first = await flows.tokens(client_id="short")
    await clock.advance(1.1)
    status, _, body = await flows.refresh(first["refresh_token"], client_id="short")
    assert (status, body) == (400, {"error": "invalid_grant"})


async def test_refresh_token_of_another_client_is_invalid_grant(flows: Flows) -> None:
    """A refresh token is bound to the client it was issued to."""
    first = await flows.tokens(client_id="spa")
    status, _, body = await flows.refresh(first["refresh_token"], client_id="web")
    assert (status, body) == (400, {"error": "invalid_grant"})


async def test_token_requests_are_counted_by_grant_type(flows: Flows, idp: DevIdp) -> None:
    """idp.token_requests counts every call by grant_type, failures included."""
    first = await flows.tokens()
    await flows.refresh(first["refresh_token"])
    await flows.token({"grant_type": "refresh_token"}, auth=WEB)
    assert idp.token_requests == {"authorization_code": 1, "refresh_token": 2}
