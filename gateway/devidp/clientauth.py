"""App-client authentication at /oauth2/token and /oauth2/revoke.

A client identifies itself with HTTP Basic (client_secret_basic) or with client_id and
client_secret in the form body (client_secret_post); a public client sends client_id only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.devidp.model import AppClient, UserPool


class ClientAuthError(Exception):
    """Client authentication failed; `error` is the OAuth error code to answer with."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def authenticate_client(
    pool: UserPool, authorization: str | None, form: Mapping[str, str]
) -> AppClient:
    """The authenticated, enabled client, or ClientAuthError.

    No client identification at all is `invalid_request` (a required parameter is missing);
    every other failure is `invalid_client`: unknown client, wrong or missing secret for a
    confidential client, a secret sent by a public client, a malformed Basic header, a body
    client_id different from the Basic one, and a disabled client (Cognito has no disabled
    clients; a deleted one fails the same way).
    """
    client_id, secret = _credentials(authorization, form)
    if not client_id:
        raise ClientAuthError("invalid_request")
    client = pool.client(client_id)
    if client is None or not client.enabled:
        raise ClientAuthError("invalid_client")
    if client.client_secret is None:
        if secret:
            raise ClientAuthError("invalid_client")
        return client
    if not secret or not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
        raise ClientAuthError("invalid_client")
    return client


def _credentials(authorization: str | None, form: Mapping[str, str]) -> tuple[str, str]:
    body_id = form.get("client_id", "")
    if authorization is None:
        return body_id, form.get("client_secret", "")
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise ClientAuthError("invalid_client")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ClientAuthError("invalid_client") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id or (body_id and body_id != client_id):
        raise ClientAuthError("invalid_client")
    return client_id, secret
