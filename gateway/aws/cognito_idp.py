"""An async client of the Cognito user pools API (cognito-idp): the gateway's only AWS caller.

    async with open_cognito_idp("eu-west-1", timeout_seconds=10) as idp:
        pool = await idp.describe_user_pool("eu-west-1_AbCdEf123")

Credentials come from the SDK's default chain: environment, shared profile, web identity
(EKS IRSA), container and instance roles. The SDK itself honours `AWS_ENDPOINT_URL` (and
`AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER`). aiobotocore is imported when a client is opened,
never when this module is: without the `aws` extra, opening raises `AWSUnavailable`. Every SDK
failure leaves as one of `gateway.aws.errors`; answers leave as `gateway.aws.model` types.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
from typing import TYPE_CHECKING, Any

from gateway.aws.errors import AWSUnavailable, NoCredentials, map_sdk_error, sdk_failures
from gateway.aws.model import (
    AppClientDescription,
    ClientSummary,
    DomainDescription,
    UserPoolDescription,
    UserSummary,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from types import ModuleType

SERVICE = "cognito-idp"
# botocore logs whole response bodies at DEBUG, DescribeUserPoolClient's ClientSecret included.
SDK_LOGGERS = ("botocore", "aiobotocore")
LIST_PAGE = 60  # ListUserPoolClients' largest MaxResults, and ListUsers' largest Limit


def _sdk() -> tuple[ModuleType, ModuleType]:
    try:
        return (importlib.import_module("aiobotocore.session"),
                importlib.import_module("aiobotocore.config"))
    except ImportError as exc:
        raise AWSUnavailable("the AWS SDK is not installed: pip install "
                             "'cognito-gateway[aws]'") from exc


@functools.cache
def _data_loader() -> Any:
    # The service models are static and slow to parse (~0.2 s for cognito-idp): parse once per
    # process. Credentials are still resolved afresh by each session.
    return importlib.import_module("botocore.loaders").create_loader()


def _quiet_sdk_logs() -> None:
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


@contextlib.asynccontextmanager
async def open_cognito_idp(region: str, *, timeout_seconds: float = 10.0
                           ) -> AsyncIterator[CognitoIdp]:
    """A cognito-idp client for `region`; raises AWSUnavailable or NoCredentials up front."""
    session_module, config_module = _sdk()
    _quiet_sdk_logs()
    session = session_module.get_session()
    session.register_component("data_loader", _data_loader())
    try:
        credentials = await session.get_credentials()
    except sdk_failures() as exc:
        raise map_sdk_error(exc, action="GetCredentials") from exc
    if credentials is None:
        raise NoCredentials("no AWS credentials: none in the environment, a profile, a web "
                            "identity token (IRSA) or an instance or container role",
                            action="GetCredentials")
    config = config_module.AioConfig(
        connect_timeout=timeout_seconds, read_timeout=timeout_seconds,
        retries={"mode": "standard", "max_attempts": 3})
    async with contextlib.AsyncExitStack() as stack:
        try:
            client = await stack.enter_async_context(
                session.create_client(SERVICE, region_name=region, config=config))
        except sdk_failures() as exc:
            raise map_sdk_error(exc, action="CreateClient") from exc
        yield CognitoIdp(client)


class CognitoIdp:
    """The Cognito API calls the gateway makes: reads (the doctor's, and a user by `sub`), and
    one global sign-out (`sessions revoke` with the cookie store)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @property
    def update_client_members(self) -> frozenset[str]:
        """The parameters UpdateUserPoolClient takes, from the installed SDK's service model."""
        model = self._client.meta.service_model.operation_model("UpdateUserPoolClient")
        return frozenset(str(name) for name in model.input_shape.members)

    async def describe_user_pool(self, user_pool_id: str) -> UserPoolDescription:
        """DescribeUserPool; ResourceNotFound when no such pool exists in this region."""
        answer = await self._call("DescribeUserPool", UserPoolId=user_pool_id)
        return UserPoolDescription.from_api(_mapping(answer.get("UserPool")))

    async def describe_user_pool_client(self, user_pool_id: str, client_id: str
                                        ) -> AppClientDescription:
        """DescribeUserPoolClient; ResourceNotFound when the pool has no such client."""
        answer = await self._call("DescribeUserPoolClient", UserPoolId=user_pool_id,
                                  ClientId=client_id)
        return AppClientDescription.from_api(_mapping(answer.get("UserPoolClient")),
                                             update_members=self.update_client_members)

    async def describe_user_pool_domain(self, domain: str) -> DomainDescription | None:
        """DescribeUserPoolDomain for a prefix or custom domain; None when it does not exist."""
        answer = await self._call("DescribeUserPoolDomain", Domain=domain)
        return DomainDescription.from_api(_mapping(answer.get("DomainDescription")))

    async def list_user_pool_clients(self, user_pool_id: str, *, limit: int = LIST_PAGE
                                     ) -> tuple[ClientSummary, ...]:
        """ListUserPoolClients: up to `limit` of the pool's app clients (id and name)."""
        found: list[ClientSummary] = []
        params: dict[str, Any] = {"UserPoolId": user_pool_id}
        while len(found) < limit:
            params["MaxResults"] = min(LIST_PAGE, limit - len(found))
            answer = await self._call("ListUserPoolClients", **params)
            page = answer.get("UserPoolClients")
            found.extend(ClientSummary.from_api(_mapping(doc))
                         for doc in (page if isinstance(page, list) else []))
            token = answer.get("NextToken")
            if not isinstance(token, str) or not token:
                break
            params["NextToken"] = token
        return tuple(found)

    async def users_with_sub(self, user_pool_id: str, sub: str) -> tuple[UserSummary, ...]:
        """ListUsers filtered by `sub = "<sub>"`: the user (a sub names one at most) or none.

        AdminUserGlobalSignOut takes a username, and a user's `sub` is not one: in a pool
        whose sign-in names are emails, or for a federated user (`Google_1234...`), the two
        differ, so the username is looked up.
        """
        answer = await self._call("ListUsers", UserPoolId=user_pool_id, Limit=LIST_PAGE,
                                  AttributesToGet=["sub"], Filter=f'sub = "{_quoted(sub)}"')
        users = answer.get("Users")
        return tuple(UserSummary.from_api(_mapping(doc))
                     for doc in (users if isinstance(users, list) else []))

    async def admin_user_global_sign_out(self, user_pool_id: str, username: str) -> None:
        """AdminUserGlobalSignOut: revoke every refresh token of `username` in the pool.

        Access and ID tokens already issued stay valid offline until they expire; Cognito's
        endpoints refuse them at once.
        """
        await self._call("AdminUserGlobalSignOut", UserPoolId=user_pool_id, Username=username)

    async def _call(self, action: str, **params: Any) -> Mapping[str, Any]:
        botocore = importlib.import_module("botocore")
        method = getattr(self._client, botocore.xform_name(action))
        try:
            answer = await method(**params)
        except sdk_failures() as exc:
            raise map_sdk_error(exc, action=action) from exc
        return _mapping(answer)


def cli_option(member: str) -> str:
    """The AWS CLI option of an API parameter, as the CLI derives it (`CallbackURLs` ->
    `--callback-urls`, `AllowedOAuthFlows` -> `--allowed-o-auth-flows`)."""
    botocore = importlib.import_module("botocore")
    return "--" + str(botocore.xform_name(member, "-"))


def _quoted(value: str) -> str:
    """`value` inside a ListUsers filter's double quotes (backslash-escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
