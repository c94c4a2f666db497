"""Checks of the app client's token settings against the gateway's session settings.

- `token validity`: the access and ID tokens must outlive session.refresh_before_expiry_seconds
  (else every request finds them due: a token-endpoint call per request); a refresh token
  shorter than session.lifetime_seconds ends sessions early. TokenValidityUnits apply; without
  units Cognito counts access and ID token validity in hours and refresh tokens in days, and
  without a validity it uses 1 hour and 30 days.
- `refresh rotation`: with rotation on, each refresh spends the refresh token. The cookie store
  coordinates refreshes only inside one process, so two replicas refreshing one session at once
  present the same token twice: with no grace period the second is refused.
- `token revocation`: sign-out revokes the refresh token; Cognito refuses that when
  EnableTokenRevocation is off, and a copied cookie keeps refreshing until the token expires.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gateway.doctor.fixes import CLIENT_INFORMATION, ONE_AT_A_TIME, ClientUpdates, client_console
from gateway.doctor.report import Finding, Status

if TYPE_CHECKING:
    from gateway.aws import AppClientDescription
    from gateway.doctor.facts import AppClientFacts

VALIDITY = "token validity"
ROTATION = "refresh rotation"
REVOCATION = "token revocation"
UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
HOUR, DAY = 3600, 86400
ACCESS_RANGE = (300, DAY)                # 5 minutes - 1 day, for access and ID tokens
REFRESH_RANGE = (HOUR, 3650 * DAY)       # 60 minutes - 10 years
SUGGESTED_GRACE_SECONDS = 10


def lifetime(validity: int | None, unit: str | None, *, default_seconds: int,
             default_unit: str) -> int:
    """A token validity in seconds, as Cognito reads the value and its unit."""
    if validity is None:
        return default_seconds
    return validity * UNIT_SECONDS.get(unit or default_unit, UNIT_SECONDS[default_unit])


def spoken(seconds: int) -> str:
    """`90 s`, `5 min`, `1 h`, `30 days`."""
    for unit, size in (("days", DAY), ("h", HOUR), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _in_unit(seconds: int, unit: str | None, default_unit: str) -> int:
    return math.ceil(seconds / UNIT_SECONDS.get(unit or default_unit, 1))


class TokenRules:
    """The token checks of one described app client."""

    def __init__(self, facts: AppClientFacts, client: AppClientDescription,
                 updates: ClientUpdates, pool: str) -> None:
        self.e = facts.expected
        self.client = client
        self.updates = updates
        self.console = client_console(pool, client, CLIENT_INFORMATION)
        units = client.token_validity_units
        self.access = lifetime(client.access_token_validity, units.access_token,
                               default_seconds=HOUR, default_unit="hours")
        self.id = lifetime(client.id_token_validity, units.id_token,
                           default_seconds=HOUR, default_unit="hours")
        self.refresh = lifetime(client.refresh_token_validity, units.refresh_token,
                                default_seconds=30 * DAY, default_unit="days")

    def findings(self) -> list[Finding]:
        return [*self.validity(), self.rotation(), self.revocation()]

    def validity(self) -> list[Finding]:
        e, c = self.e, self.client
        margin = e.refresh_before_expiry_seconds
        units = c.token_validity_units
        short = [(name, life) for name, life in (("access", self.access), ("ID", self.id))
                 if life <= margin]
        found = []
        if short:
            target = min(ACCESS_RANGE[1], max(HOUR, 2 * margin))
            changes: dict[str, object] = {}
            if self.access <= margin:
                changes["AccessTokenValidity"] = _in_unit(target, units.access_token, "hours")
            if self.id <= margin:
                changes["IdTokenValidity"] = _in_unit(target, units.id_token, "hours")
            lives = ", ".join(f"the {name} token lives {spoken(life)}" for name, life in short)
            command = self.updates.command(changes) if target > margin else ()
            found.append(Finding(
                VALIDITY, Status.FAIL,
                f"{lives}, no longer than session.refresh_before_expiry_seconds ({margin} s): "
                "every request finds the tokens due and refreshes them (a token-endpoint call "
                "per request)",
                f"Lower session.refresh_before_expiry_seconds well below "
                f"{spoken(min(self.access, self.id))} (the default is 120), or give the tokens "
                f"a longer validity ({self.console}). {ONE_AT_A_TIME}", command=command))
        if self.refresh < e.session_lifetime_seconds:
            wanted = min(REFRESH_RANGE[1], e.session_lifetime_seconds)
            changes = {"RefreshTokenValidity": _in_unit(wanted, units.refresh_token, "days")}
            found.append(Finding(
                VALIDITY, Status.WARN,
                f"the refresh token lives {spoken(self.refresh)}, less than "
                f"session.lifetime_seconds ({spoken(e.session_lifetime_seconds)}): sessions "
                f"end after {spoken(self.refresh)}, when the refresh token expires",
                f"Lower session.lifetime_seconds to {self.refresh}, or give refresh tokens a "
                f"longer validity ({self.console}). {ONE_AT_A_TIME}",
                command=self.updates.command(changes)))
        if not found:
            found.append(Finding.ok(VALIDITY, self._summary()))
        return found

    def _summary(self) -> str:
        e = self.e
        interval = min(self.access, self.id) - e.refresh_before_expiry_seconds
        if e.revalidate_seconds and e.session_store == "cookie":
            interval = min(interval, e.revalidate_seconds)
        return (f"access token {spoken(self.access)}, ID token {spoken(self.id)}, refresh token "
                f"{spoken(self.refresh)}; sessions refresh "
                f"{e.refresh_before_expiry_seconds} s before expiry, and are re-checked with "
                f"Cognito at least every {spoken(interval)}")

    def rotation(self) -> Finding:
        rotation = self.client.refresh_token_rotation
        if rotation is None or not rotation.enabled:
            return Finding.ok(ROTATION, "refresh-token rotation is off: a refresh keeps the "
                              "refresh token")
        grace = rotation.retry_grace_period_seconds
        if self.e.session_store != "cookie":
            return Finding.ok(ROTATION, f"refresh-token rotation is on (grace {grace} s); the "
                              "Redis store refreshes each session once, under a lock shared by "
                              "every replica")
        if grace > 0:
            return Finding.ok(ROTATION, f"refresh-token rotation is on with a {grace} s grace "
                              "period: with the cookie store, replicas that refresh one session "
                              f"at once both succeed within {grace} s")
        return Finding(
            ROTATION, Status.WARN,
            "refresh-token rotation is on with RetryGracePeriodSeconds 0, and the cookie store "
            "coordinates refreshes only inside one process: when two replicas (or workers) "
            "refresh one session at once, both spend the same rotated refresh token, the second "
            "is refused (invalid_grant) and that user is sent back to sign in",
            'Use session.store = "redis" (one refresh per session across replicas), or give '
            f"rotation a grace period of a few seconds ({self.console} > Refresh token "
            f"rotation). {ONE_AT_A_TIME}",
            command=self.updates.command({"RefreshTokenRotation": {
                "Feature": "ENABLED", "RetryGracePeriodSeconds": SUGGESTED_GRACE_SECONDS}}))

    def revocation(self) -> Finding:
        if self.client.enable_token_revocation:
            return Finding.ok(REVOCATION, "token revocation is on: sign-out revokes the refresh "
                              "token")
        return Finding(
            REVOCATION, Status.FAIL,
            "token revocation is off (EnableTokenRevocation false): sign-out's /oauth2/revoke "
            "is refused (invalid_request), so a copied session cookie keeps refreshing until "
            "its refresh token expires",
            f"Turn on 'Enable token revocation' ({self.console}); tokens issued before stay "
            f"unrevocable. {ONE_AT_A_TIME}",
            command=self.updates.command({"EnableTokenRevocation": True}))
