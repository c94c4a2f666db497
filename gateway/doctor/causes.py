"""Confirmed causes: which failing API check explains a token-endpoint error the gateway met.

The probable causes of `gateway.cognito.diagnosis` are inferred from the error alone. With
`AppClientFacts` read at start, the gateway can name the cause it CONFIRMED: the first FAIL,
among the checks that can produce that error, of the same rules the doctor prints. No facts,
or no failing check that fits: None, and the inferred hint stands alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.doctor.apichecks import app_client_findings
from gateway.doctor.appclient import AUTH_FLOWS, CALLBACKS, CLIENT, FLOWS, SCOPES, SECRET
from gateway.doctor.pool import POOL
from gateway.doctor.report import Status
from gateway.doctor.tokens import REVOCATION

if TYPE_CHECKING:
    from gateway.doctor.facts import AppClientFacts


def _suspects(outcome: str, error_description: str | None, grant_type: str
              ) -> tuple[str, ...]:
    """The checks whose failure produces this outcome, most specific first."""
    if outcome == "invalid_client":
        return (POOL, CLIENT, SECRET)
    if outcome == "unauthorized_client":
        if error_description and "invalid_redirect" in error_description:
            return (CALLBACKS,)
        if grant_type == "refresh_token":
            return (AUTH_FLOWS, FLOWS)
        return (FLOWS,)
    if outcome == "invalid_scope":
        return (SCOPES,)
    if outcome == "invalid_request" and grant_type == "revoke":
        return (REVOCATION,)
    return ()


def confirmed_cause(facts: AppClientFacts, *, outcome: str, error_description: str | None,
                    grant_type: str) -> str | None:
    """The cause of a token-endpoint `outcome` that the app client's settings confirm, or None.

    `outcome` is the metric label (`invalid_client`, ...), `grant_type` the token request's
    (`authorization_code`, `refresh_token`, or `revoke` for the revocation endpoint). The
    answer is a sentence such as "the app client has no client secret but
    cognito.client_secret is set: ..."; it never contains a secret.
    """
    suspects = _suspects(outcome, error_description, grant_type)
    if not suspects:
        return None
    failed: dict[str, str] = {}
    for finding in app_client_findings(facts):
        if finding.status is Status.FAIL:
            failed.setdefault(finding.check, finding.detail)
    return next((failed[check] for check in suspects if check in failed), None)
