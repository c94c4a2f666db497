"""The authorization-code request (`/oauth2/authorize` URL), built the one way both the sign-in
and the doctor's probe send it."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    from collections.abc import Sequence


def authorization_url(endpoint: str, *, client_id: str, redirect_uri: str, scopes: Sequence[str],
                      state: str, nonce: str, code_challenge: str | None = None,
                      identity_provider: str | None = None) -> str:
    """`endpoint` with the code-flow query; with `code_challenge`, PKCE S256 (Cognito rejects
    `plain`); with `identity_provider`, Cognito skips its provider choice and goes straight to
    that provider."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": " ".join(scopes), "state": state, "nonce": nonce}
    if code_challenge:
        params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
    if identity_provider:
        params["identity_provider"] = identity_provider
    return f"{endpoint}?{urlencode(params)}"
