"""A sign-in in progress: state, nonce, PKCE verifier and where to return, kept in a cookie.

Each sign-in gets its own short-lived encrypted cookie named after a hash of its state, scoped
to /oauth2/callback: several tabs can sign in at once, the values never reach the upstream, and
the callback consumes the cookie so a replayed callback finds nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.sessions.cipher import Cipher
    from gateway.sessions.cookies import CookiePolicy

SIGN_IN_TTL = 600
CALLBACK_PATH = "/oauth2/callback"


@dataclass(frozen=True)
class PendingSignIn:
    """One sign-in under way: its OAuth state, nonce, PKCE verifier and the page to return to."""

    state: str
    nonce: str
    code_verifier: str | None
    return_to: str


class PendingSignIns:
    """Sign-ins under way, each in its own sealed cookie named after a hash of its state."""

    def __init__(self, cookies: CookiePolicy, cipher: Cipher) -> None:
        self._cookies = cookies
        self._cipher = cipher

    def _name(self, state: str) -> str:
        return f"{self._cookies.name}_signin_{hashlib.sha256(state.encode()).hexdigest()[:16]}"

    def remember(self, response: web.StreamResponse, pending: PendingSignIn) -> None:
        self._cookies.set(response, self._name(pending.state), self._cipher.seal(asdict(pending)),
                          max_age=SIGN_IN_TTL, path=CALLBACK_PATH)

    def recall(self, request: web.Request, state: str) -> PendingSignIn | None:
        """The sign-in this state belongs to, if this browser started it in the last 10 min."""
        sealed = request.cookies.get(self._name(state))
        data = self._cipher.open(sealed, ttl=SIGN_IN_TTL) if sealed else None
        if not data or data.get("state") != state:
            return None
        try:
            return PendingSignIn(**data)
        except TypeError:
            return None

    def forget(self, response: web.StreamResponse, state: str) -> None:
        self._cookies.delete(response, self._name(state), path=CALLBACK_PATH)
