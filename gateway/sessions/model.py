"""The server-side session: who signed in, the tokens, and when everything ends."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any

from gateway.identity import Identity


def new_session_id() -> str:
    """A new random session id (18 bytes, URL-safe text)."""
    return secrets.token_urlsafe(18)


class Absent(Enum):
    """Why a request has no session; the reasons after a sign-in are reauthentication reasons."""

    NO_COOKIE = "no_cookie"
    UNREADABLE = "key_rotated"      # no session key decrypts the cookie (or it was tampered with)
    LIFETIME = "lifetime"           # session.lifetime_seconds passed
    SIGNED_OUT = "signed_out"       # signed out (or ended) since the cookie was written


@dataclass(frozen=True)
class Session:
    """A signed-in session.

    `tokens_expire_at` is the earliest exp of the access and ID tokens: refresh is driven by it,
    never by the session's age. `expires_at` is the absolute end: the configured lifetime from
    sign-in, capped by the refresh token's validity when known; refresh never extends it.
    `checked_at` is when the IdP last confirmed the session (the sign-in, the last refresh): a
    store that cannot see sign-outs elsewhere re-checks it after `revalidate_after` seconds.
    `generation` counts the refreshes: a refreshed session is a newer generation of the same
    `sid`, which is how a request still carrying an older cookie is given the newer one.

    When to refresh: from `refresh_starts_at` on, a refresh should run, and the session still
    serves while `usable` (in the background, the request does not wait); once it is not
    usable (the tokens expired, or the re-check is overdue) a request waits for the refresh.
    """

    sid: str
    identity: Identity
    created_at: float
    expires_at: float
    tokens_expire_at: float
    refresh_token: str | None = None
    access_token: str | None = None
    id_token: str | None = None
    checked_at: float = 0.0
    generation: int = 0

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def tokens_valid(self, now: float) -> bool:
        return now < self.tokens_expire_at

    def usable(self, now: float, revalidate_after: float = 0) -> bool:
        """True while the session may serve a request without waiting for a refresh: its tokens
        are valid and, with re-checks, the IdP confirmed it less than `revalidate_after` ago."""
        return now < self.serves_until(revalidate_after)

    def serves_until(self, revalidate_after: float = 0) -> float:
        """The end of `usable`: the tokens' expiry, or the re-check deadline when earlier."""
        if revalidate_after > 0 and self.refresh_token is not None:
            return min(self.tokens_expire_at, self.checked_at + revalidate_after)
        return self.tokens_expire_at

    def refresh_starts_at(self, before_expiry: float, revalidate_after: float = 0) -> float:
        """When a refresh should start: `before_expiry` ahead of the tokens' expiry, and ahead
        of the re-check deadline by the same margin, at most half the re-check window (so that
        a session just confirmed is not re-checked at once)."""
        starts = self.tokens_expire_at - before_expiry
        if revalidate_after > 0:
            margin = min(before_expiry, revalidate_after / 2)
            starts = min(starts, self.checked_at + revalidate_after - margin)
        return starts

    def refresh_due(self, now: float, before_expiry: float, revalidate_after: float = 0) -> bool:
        """True when the tokens are within `before_expiry` of expiring, or the IdP has not
        confirmed the session for `revalidate_after` seconds (0: never re-checked early)."""
        if self.refresh_token is None:
            return False
        return now >= self.tokens_expire_at - before_expiry or (
            revalidate_after > 0 and now >= self.checked_at + revalidate_after)

    def with_tokens(self, **changes: Any) -> Session:
        """The next generation of this session, with new tokens (a refresh)."""
        return replace(self, **({"generation": self.generation + 1} | changes))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["identity"] = self.identity.to_dict()
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        return cls(sid=data["sid"], identity=Identity.from_dict(data["identity"]),
                   created_at=float(data["created_at"]), expires_at=float(data["expires_at"]),
                   tokens_expire_at=float(data["tokens_expire_at"]),
                   refresh_token=data.get("refresh_token"), access_token=data.get("access_token"),
                   id_token=data.get("id_token"),
                   checked_at=float(data.get("checked_at", data["created_at"])),
                   generation=int(data.get("generation", 0)))
