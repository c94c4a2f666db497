"""The dev IdP's Cognito user pools API (POST /), driven by the real AWS SDK.

`sessions revoke` with the cookie store calls ListUsers and AdminUserGlobalSignOut; the
stand-in serves both in the AWS JSON protocol so that an SDK pointed at it
(`endpoint_url` / `AWS_ENDPOINT_URL`) behaves as against Cognito, and a global sign-out there
really stops the user's refresh tokens at its token endpoint. The SDK client here is the
tests' own (tests/support/moto_server.py's MotoAdmin), not gateway.aws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from gateway.devidp import DevIdp, UserPool
from tests.conftest import ALICE, BOB, CLIENT_ID, CLIENT_SECRET, Secrets, gateway_client
from tests.support.moto_server import MotoAdmin
from tests.support.tokens import user_tokens

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

AWS_SECRET = "dev-idp-has-no-iam-so-any-secret-key-works"
TARGET = "AWSCognitoIdentityProviderService."


@pytest.fixture
def pool(gateway_url: str) -> UserPool:
    return UserPool(users=[ALICE, BOB], clients=[gateway_client(gateway_url)])


@pytest.fixture
async def api(idp: DevIdp) -> AsyncIterator[Any]:
    """An SDK cognito-idp client whose endpoint is the stand-in, in the pool's region."""
    async with MotoAdmin.connect(idp.base_url, idp.pool.region, AWS_SECRET) as admin:
        yield admin.cognito


def usernames(answer: dict[str, Any]) -> list[str]:
    return [user["Username"] for user in answer["Users"]]


@pytest.mark.parametrize(("expression", "expected"), [
    pytest.param(f'sub = "{ALICE.subject}"', [ALICE.username], id="sub"),
    pytest.param('username = "alice"', [ALICE.username], id="username"),
    pytest.param('email ^= "alice@"', [ALICE.username], id="email-prefix"),
    pytest.param('name = "Bob Federated"', [BOB.username], id="name"),
    pytest.param('cognito:user_status = "confirmed"', [ALICE.username, BOB.username],
                 id="status-any-case"),
    pytest.param('sub = "no-such-sub"', [], id="no-match"),
    pytest.param("", [ALICE.username, BOB.username], id="no-filter"),
])
async def test_list_users_filters_as_cognito_does(api: Any, idp: DevIdp, expression: str,
                                                  expected: list[str]) -> None:
    """ListUsers: `attr = "v"` and `attr ^= "v"` on Cognito's searchable attributes."""
    answer = await api.list_users(UserPoolId=idp.pool.pool_id, Filter=expression)
    assert usernames(answer) == expected


async def test_a_listed_user_carries_sub_and_attributes_as_strings(api: Any, idp: DevIdp
                                                                   ) -> None:
    """Users come with Cognito's shape: Attributes as Name/Value strings, dates, status."""
    answer = await api.list_users(UserPoolId=idp.pool.pool_id, Filter='username = "alice"',
                                  AttributesToGet=["sub", "email_verified"])
    (user,) = answer["Users"]
    assert user["Attributes"] == [{"Name": "sub", "Value": ALICE.subject},
                                  {"Name": "email_verified", "Value": "true"}]
    assert (user["Enabled"], user["UserStatus"]) == (True, "CONFIRMED")
    assert user["UserCreateDate"].year >= 2024


@pytest.mark.parametrize(("action", "params", "code"), [
    pytest.param("list_users", {"Filter": 'custom:tenant = "acme"'},
                 "InvalidParameterException", id="unsearchable-attribute"),
    pytest.param("list_users", {"Filter": "sub = alice"}, "InvalidParameterException",
                 id="unquoted-value"),
    pytest.param("list_users", {"UserPoolId": "local-1_NoSuchPool"},
                 "ResourceNotFoundException", id="unknown-pool"),
    pytest.param("admin_user_global_sign_out", {"Username": "nobody"},
                 "UserNotFoundException", id="unknown-user"),
])
async def test_bad_requests_get_cognitos_error_codes(api: Any, idp: DevIdp, action: str,
                                                     params: dict[str, str], code: str) -> None:
    """Each refusal arrives through the SDK as the ClientError code Cognito uses."""
    with pytest.raises(api.exceptions.ClientError) as raised:
        await getattr(api, action)(**{"UserPoolId": idp.pool.pool_id} | params)
    assert raised.value.response["Error"]["Code"] == code


@pytest.mark.parametrize(("headers", "code"), [
    pytest.param({"X-Amz-Target": TARGET + "ListUsers"},
                 "MissingAuthenticationTokenException", id="unsigned"),
    pytest.param({"X-Amz-Target": TARGET + "ListUsers",
                  "Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20260101/eu-west-1/"
                                   "cognito-idp/aws4_request, Signature=0"},
                 "InvalidSignatureException", id="signed-for-another-region"),
    pytest.param({"X-Amz-Target": TARGET + "DeleteUserPool"}, "UnknownOperationException",
                 id="action-not-served"),
])
async def test_requests_must_be_signed_for_the_pools_region(idp: DevIdp, headers: dict[str, str],
                                                           code: str) -> None:
    """The protocol's errors: HTTP 400, `__type` and `x-amzn-ErrorType` name the code."""
    async with aiohttp.ClientSession() as http, http.post(
            idp.base_url + "/", json={"UserPoolId": idp.pool.pool_id},
            headers={"Content-Type": "application/x-amz-json-1.1", **headers}) as resp:
        body = await resp.json(content_type=None)
        assert (resp.status, body["__type"], resp.headers["x-amzn-ErrorType"]) == (
            400, code, code)


async def test_a_global_sign_out_stops_every_refresh_token_of_the_user(
        api: Any, idp: DevIdp, upstream: str, secrets: Secrets) -> None:
    """Before: the refresh token works. After AdminUserGlobalSignOut: invalid_grant; another
    user's refresh token still works."""
    callback = f"{upstream}/cb"
    idp.pool.clients[0].callback_urls.append(callback)
    tokens = {user.username: await user_tokens(
        idp.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, callback=callback,
        username=user.username, password=user.password) for user in (ALICE, BOB)}
    for issued in tokens.values():
        secrets.add(issued["access_token"], issued["id_token"], issued["refresh_token"])

    async def refresh(username: str) -> int:
        async with aiohttp.ClientSession() as http, http.post(
                f"{idp.base_url}/oauth2/token",
                headers={"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, CLIENT_SECRET)},
                data={"grant_type": "refresh_token",
                      "refresh_token": tokens[username]["refresh_token"]}) as resp:
            return resp.status

    assert await refresh(ALICE.username) == 200
    assert await api.admin_user_global_sign_out(UserPoolId=idp.pool.pool_id,
                                                Username="ALICE") is not None
    assert await refresh(ALICE.username) == 400
    assert await refresh(BOB.username) == 200
