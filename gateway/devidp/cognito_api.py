"""POST /: the Cognito user pools API (cognito-idp) for the actions the gateway calls.

`cognito-gateway sessions revoke` with the cookie store finds a user by `sub` (ListUsers) and
signs them out everywhere (AdminUserGlobalSignOut). Serving those two here, in the API's own
protocol, lets the real AWS SDK talk to the stand-in (`AWS_ENDPOINT_URL=<base_url>`) as it
talks to `https://cognito-idp.<region>.amazonaws.com/`, and makes the sign-out real: the
user's refresh tokens stop working at this IdP's token endpoint.

The AWS JSON 1.1 protocol: the action in `X-Amz-Target:
AWSCognitoIdentityProviderService.<Action>`, a JSON body, answers as
`application/x-amz-json-1.1` with an `x-amzn-RequestId`, and errors as HTTP 400 with
`{"__type": "<Code>", "message": ...}` and an `x-amzn-ErrorType` header. A request must be
signed (SigV4) for `cognito-idp` in the pool's region; the stand-in has no IAM, so the
signature itself is not verified.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.devidp import admin
from gateway.devidp.state import IdpState, state_of

if TYPE_CHECKING:
    from gateway.devidp.model import User, UserPool

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_LIMIT = 60
# Credential=<key id>/<yyyymmdd>/<region>/<service>/aws4_request
_CREDENTIAL = re.compile(r"^AWS4-HMAC-SHA256 Credential=[^/\s]+/\d{8}/([^/\s]+)/([^/\s]+)"
                         r"/aws4_request\b")
# <attribute> = "<value>" or <attribute> ^= "<value>", with \" and \\ escaped in the value
_FILTER = re.compile(r'^\s*([\w:]+)\s*(\^?=)\s*"((?:[^"\\]|\\.)*)"\s*$')
_SEARCHABLE = ("username", "email", "phone_number", "name", "given_name", "family_name",
               "preferred_username", "cognito:user_status", "status", "sub")


class ApiError(Exception):
    """A Cognito API error: its `__type` code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def attributes(user: User) -> dict[str, str]:
    """The user's attributes as the API lists them (every value a string)."""
    found = {"sub": user.subject}
    if user.email is not None:
        found |= {"email": user.email, "email_verified": str(user.email_verified).lower()}
    found |= user.attributes
    if user.identities:
        found["identities"] = json.dumps(user.identities)
    return found


def user_status(user: User) -> str:
    """CONFIRMED, or EXTERNAL_PROVIDER for a user a federated sign-in created."""
    return "EXTERNAL_PROVIDER" if user.federated else "CONFIRMED"


def user_filter(expression: str) -> Callable[[User], bool]:
    """The test ListUsers' `Filter` names; ApiError(InvalidParameterException) if malformed."""
    if not expression.strip():
        return lambda _user: True
    found = _FILTER.match(expression)
    if found is None:
        raise ApiError("InvalidParameterException", "Error while parsing filter.")
    name, operator, quoted = found.groups()
    if name not in _SEARCHABLE:
        raise ApiError("InvalidParameterException", "Invalid search attribute.")
    wanted = re.sub(r"\\(.)", r"\1", quoted)

    def value_of(user: User) -> str | None:
        if name == "username":
            return user.username
        if name == "cognito:user_status":
            return user_status(user).casefold()
        if name == "status":
            return "Enabled"
        return attributes(user).get(name)

    target = wanted.casefold() if name == "cognito:user_status" else wanted

    def matches(user: User) -> bool:
        value = value_of(user)
        if value is None:
            return False
        return value.startswith(target) if operator == "^=" else value == target

    return matches


def list_users(st: IdpState, params: dict[str, Any]) -> dict[str, Any]:
    """ListUsers: the pool's users matching `Filter`, `Limit` (at most 60) at a time."""
    limit = params.get("Limit", MAX_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_LIMIT:
        raise ApiError("InvalidParameterException",
                       "1 validation error detected: Value at 'limit' failed to satisfy "
                       f"constraint: Member must have value less than or equal to {MAX_LIMIT}")
    wanted = params.get("AttributesToGet")
    matches = user_filter(str(params.get("Filter", "")))
    matching = [user for user in st.pool.users if matches(user)]
    start = _page_start(params.get("PaginationToken"))
    page = matching[start:start + (limit or MAX_LIMIT)]
    answer: dict[str, Any] = {"Users": [{
        "Username": user.username,
        "Attributes": [{"Name": k, "Value": v} for k, v in attributes(user).items()
                       if not isinstance(wanted, list) or k in wanted],
        "UserCreateDate": st.started_at, "UserLastModifiedDate": st.started_at,
        "Enabled": True, "UserStatus": user_status(user)} for user in page]}
    if start + len(page) < len(matching):
        answer["PaginationToken"] = str(start + len(page))
    return answer


def admin_user_global_sign_out(st: IdpState, params: dict[str, Any]) -> dict[str, Any]:
    """AdminUserGlobalSignOut: every refresh token of the user stops working."""
    username = params.get("Username")
    if not isinstance(username, str) or not username:
        raise ApiError("InvalidParameterException", "Username is required.")
    try:
        admin.global_sign_out(st, username)
    except KeyError:
        raise ApiError("UserNotFoundException", "User does not exist.") from None
    return {}


Action = Callable[[IdpState, dict[str, Any]], dict[str, Any]]
ACTIONS: dict[str, Action] = {
    "ListUsers": list_users,
    "AdminUserGlobalSignOut": admin_user_global_sign_out,
}


async def cognito_api(request: web.Request) -> web.Response:
    """POST / with `X-Amz-Target`: one action of the API, or its error."""
    try:
        return _answer(await _dispatch(request))
    except ApiError as exc:
        return _answer({"__type": exc.code, "message": exc.message}, error=exc.code)


async def _dispatch(request: web.Request) -> dict[str, Any]:
    st = state_of(request)
    target = request.headers.get("X-Amz-Target", "")
    action = ACTIONS.get(target.removeprefix(TARGET_PREFIX)) \
        if target.startswith(TARGET_PREFIX) else None
    if action is None:
        raise ApiError("UnknownOperationException", "")
    _check_signature(request.headers.get("Authorization", ""), st.pool)
    try:
        params = json.loads(await request.read() or b"{}")
    except ValueError:
        raise ApiError("SerializationException", "Malformed JSON body.") from None
    if not isinstance(params, dict):
        raise ApiError("SerializationException", "The body must be a JSON object.")
    pool_id = params.get("UserPoolId")
    if pool_id != st.pool.pool_id:
        raise ApiError("ResourceNotFoundException", f"User pool {pool_id} does not exist.")
    return action(st, params)


def _check_signature(authorization: str, pool: UserPool) -> None:
    found = _CREDENTIAL.match(authorization)
    if found is None:
        raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token")
    region, service = found.groups()
    if service != "cognito-idp" or region != pool.region:
        raise ApiError("InvalidSignatureException",
                       f"Credential should be scoped to a valid region and service "
                       f"({pool.region}/cognito-idp), not {region}/{service}.")


def _page_start(token: object) -> int:
    if token is None:
        return 0
    if not isinstance(token, str) or not token.isdigit():
        raise ApiError("InvalidParameterException", "Invalid pagination token.")
    return int(token)


def _answer(body: dict[str, Any], *, error: str | None = None) -> web.Response:
    headers = {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": str(uuid.uuid4())}
    if error:
        headers["x-amzn-ErrorType"] = error
    return web.Response(status=400 if error else 200, body=json.dumps(body).encode(),
                        headers=headers)

