"""What can go wrong when the gateway calls the AWS API, and the one place SDK errors map to it.

```
AWSError (a GatewayError)
├── AWSUnavailable        the `aws` extra (aiobotocore) is not installed
├── NoCredentials         the SDK's default chain found no credentials
├── CredentialsRejected   AWS refused the credentials (unknown key, bad signature, expired)
├── AccessDenied          the credentials may not call `action` (IAM)
├── ResourceNotFound      the user pool, app client or user does not exist (in that region)
└── AWSRequestFailed      anything else: network, timeout, throttling, a 5xx, an unknown code
```

`map_sdk_error` is the only function that looks at botocore's exceptions; everything above
it catches these classes. Every error carries the API `action` it happened in
(`DescribeUserPoolClient`, ...) so a message can say which permission is missing.
"""

from __future__ import annotations

import importlib
import re

import aiohttp

from gateway.errors import GatewayError


class AWSError(GatewayError):
    """A call to the AWS API failed; `action` is the API operation (`DescribeUserPool`)."""

    def __init__(self, message: str, *, action: str = "", code: str = "") -> None:
        super().__init__(message)
        self.action = action
        self.code = code


class AWSUnavailable(AWSError):
    """The AWS SDK is not installed: `pip install 'cognito-gateway[aws]'`."""


class NoCredentials(AWSError):
    """No credentials in the environment, profile, web identity (IRSA) or instance role."""


class CredentialsRejected(AWSError):
    """AWS does not accept the credentials found (unknown key, wrong secret, expired token)."""


class AccessDenied(AWSError):
    """The credentials are valid but IAM does not allow `action`."""


class ResourceNotFound(AWSError):
    """The named user pool, app client or user does not exist in that account and region."""


class AWSRequestFailed(AWSError):
    """The call failed for another reason: network, timeout, throttling, a server error."""


ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied",
                                 "UnauthorizedOperation"})
REJECTED_CREDENTIALS_CODES = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
    "SignatureDoesNotMatch", "ExpiredTokenException", "ExpiredToken", "IncompleteSignature",
    "MissingAuthenticationToken", "InvalidAccessKeyId", "InvalidToken",
})
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "UserNotFoundException"})
_CREDENTIAL_FAILURES = ("NoCredentialsError", "PartialCredentialsError",
                        "CredentialRetrievalError", "UnknownCredentialError", "ProfileNotFound",
                        "NoAuthTokenError")
# Some front ends answer a JSON-protocol request with a Query-style XML error body; botocore
# then reports the HTTP status as the code. The XML still names the real one.
_XML_CODE = re.compile(r"<Code>([A-Za-z.]+)</Code>")


def map_sdk_error(exc: BaseException, *, action: str) -> AWSError:
    """The AWSError for an exception raised by aiobotocore/botocore during `action`."""
    botocore = importlib.import_module("botocore.exceptions")
    if isinstance(exc, botocore.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", ""))
        if code.isdigit():
            found = _XML_CODE.search(message)
            code = found.group(1) if found else code
        return _client_error(code, action)
    name = type(exc).__name__
    if name in _CREDENTIAL_FAILURES:
        return NoCredentials(f"no usable AWS credentials ({name})", action=action, code=name)
    return AWSRequestFailed(f"{action} failed: {name}", action=action, code=name)


def sdk_failures() -> tuple[type[BaseException], ...]:
    """The exceptions an SDK call may raise that `map_sdk_error` translates."""
    botocore = importlib.import_module("botocore.exceptions")
    return (botocore.ClientError, botocore.BotoCoreError, aiohttp.ClientError, TimeoutError,
            OSError)


def _client_error(code: str, action: str) -> AWSError:
    if code in ACCESS_DENIED_CODES:
        return AccessDenied(f"not allowed to call cognito-idp:{action} ({code})",
                            action=action, code=code)
    if code in REJECTED_CREDENTIALS_CODES:
        return CredentialsRejected(f"AWS refused the credentials at {action} ({code})",
                                   action=action, code=code)
    if code in NOT_FOUND_CODES:
        return ResourceNotFound(f"{action}: not found ({code})", action=action, code=code)
    return AWSRequestFailed(f"{action} failed ({code or 'no error code'})", action=action,
                            code=code)
