"""`cognito.doctor_at_start`: the doctor's app-client checks, run by the gateway itself.

At start (in the background: readiness never waits for it) the app client, user pool and
domain are read through the Cognito API once, and each finding is logged as one
`event="doctor_finding"` line (`check`, `status`, `detail`, `fix`; WARN and FAIL at warning
level). The facts are kept: a later token-endpoint error whose cause those facts confirm gets
that cause in its `hint` (see `confirm`). Without the `aws` extra, credentials or permission
there is one warning naming what is missing, and hints stay the inferred ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from gateway.doctor.apichecks import check_app_client
from gateway.doctor.causes import confirmed_cause
from gateway.doctor.report import Finding, Status

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.doctor.facts import AppClientFacts

log = structlog.get_logger("gateway.doctor")


class StartupDoctor:
    """Reads the app client once (`run`) and confirms token-endpoint causes (`confirm`)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._facts: AppClientFacts | None = None

    def use(self, settings: Settings) -> None:
        """Check these settings on the next `run` (a reload); until it has read the app client
        again, no cause is confirmed."""
        self._settings, self._facts = settings, None

    async def run(self) -> None:
        """Read the facts and log every finding; never raises for an unreadable API."""
        facts, findings = await check_app_client(self._settings)
        for finding in findings:
            _log(finding)
        self._facts = facts

    def confirm(self, *, outcome: str, error_description: str | None,
                grant_type: str) -> str | None:
        """The cause of a token-endpoint error that the app client's settings confirm, or None
        (facts not read yet, unreadable, or nothing failing that fits)."""
        if self._facts is None:
            return None
        return confirmed_cause(self._facts, outcome=outcome,
                               error_description=error_description, grant_type=grant_type)


def _log(finding: Finding) -> None:
    fields = {"check": finding.check, "status": finding.status.value, "detail": finding.detail}
    if finding.fix:
        fields["fix"] = finding.fix
    if finding.status in {Status.WARN, Status.FAIL}:
        log.warning("doctor_finding", **fields)
    else:
        log.info("doctor_finding", **fields)
