"""The one place that talks to the AWS API: Cognito user pools through aiobotocore (optional).

Install with the `aws` extra (`pip install 'cognito-gateway[aws]'`). The package imports, and
the gateway runs, without it: only opening a client needs the SDK, and then raises
`AWSUnavailable`. Answers are typed (`gateway.aws.model`), failures are `AWSError`s
(`gateway.aws.errors`), and no client secret ever leaves this package.
"""

from __future__ import annotations

from gateway.aws.cognito_idp import CognitoIdp, cli_option, open_cognito_idp
from gateway.aws.errors import (
    AccessDenied,
    AWSError,
    AWSRequestFailed,
    AWSUnavailable,
    CredentialsRejected,
    NoCredentials,
    ResourceNotFound,
)
from gateway.aws.model import (
    AppClientDescription,
    ClientSummary,
    DomainDescription,
    RefreshTokenRotation,
    TokenValidityUnits,
    UserPoolDescription,
    secret_digest,
)

__all__ = [
    "AWSError",
    "AWSRequestFailed",
    "AWSUnavailable",
    "AccessDenied",
    "AppClientDescription",
    "ClientSummary",
    "CognitoIdp",
    "CredentialsRejected",
    "DomainDescription",
    "NoCredentials",
    "RefreshTokenRotation",
    "ResourceNotFound",
    "TokenValidityUnits",
    "UserPoolDescription",
    "cli_option",
    "open_cognito_idp",
    "secret_digest",
]
