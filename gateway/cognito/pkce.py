"""PKCE (RFC 7636, S256 only: Cognito rejects plain), state and nonce values."""

from __future__ import annotations

import base64
import hashlib
import secrets


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random string (base64url, no padding)."""
    return secrets.token_urlsafe(nbytes)


def code_challenge(verifier: str) -> str:
    """The S256 challenge of a code verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
