"""The doctor's API checks: the facts read through the Cognito API, turned into findings.

`app_client_findings(facts)` is pure (no I/O): the pool's checks, then the app client's, its
tokens', the domain's, INFO lines, and, when two or more app client fixes have commands, one
command applying them all. `check_app_client(settings)` reads the facts first; when they cannot
be read it gives ONE warning that names the missing piece (SDK, credentials, permission) with
a ready-to-paste IAM policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.aws import AccessDenied, AWSUnavailable, CredentialsRejected, NoCredentials
from gateway.doctor.appclient import client_findings, missing_client_finding
from gateway.doctor.facts import APIUnavailable, AppClientFacts, read_facts
from gateway.doctor.fixes import ClientUpdates
from gateway.doctor.iam import DOCTOR_ACTIONS, doctor_policy
from gateway.doctor.pool import domain_findings, info_findings, pool_finding, region_finding
from gateway.doctor.report import Finding, Status
from gateway.doctor.tokens import TokenRules

if TYPE_CHECKING:
    from gateway.config import Settings

API = "aws api"
ALL_FIXES = "all client fixes"


def app_client_findings(facts: AppClientFacts, *, secret_accepted: bool | None = None
                        ) -> list[Finding]:
    """Every API check for these facts. `secret_accepted`: the token endpoint accepted the
    configured secret (the doctor's probe), which settles a secret the API shows differently."""
    e = facts.expected
    found = [Finding.ok(API, f"read user pool {e.user_pool_id}, app client {e.client_id} and "
                        f"the pool's domain through the Cognito API in {e.region}")]
    region = region_finding(facts)
    if region:
        found.append(region)
    found.append(pool_finding(facts))
    if facts.pool is None:
        return found
    client = facts.client
    if client is None:
        found.append(missing_client_finding(facts))
    else:
        updates = ClientUpdates(client, e.region)
        found.extend(client_findings(facts, client, updates, secret_accepted=secret_accepted))
        found.extend(TokenRules(facts, client, updates, facts.pool.name).findings())
    found.extend(domain_findings(facts))
    found.extend(info_findings(facts.pool))
    if client is not None and (combined := updates.combined()):
        found.append(Finding(ALL_FIXES, Status.INFO,
                             "every app client fix above in one command (each command above "
                             "carries the other current settings, so running two of them "
                             "would undo the first)", command=combined))
    return found


def unavailable_finding(unavailable: APIUnavailable) -> Finding:
    """The one warning for app client checks that could not run, with the IAM policy."""
    e, error = unavailable.expected, unavailable.error
    actions = ", ".join(DOCTOR_ACTIONS)
    grant = (f"Give the doctor AWS credentials (environment, profile, web identity / EKS IRSA, "
             f"or an instance or container role) allowed {actions}: the policy below.")
    policy = doctor_policy(e.region, e.user_pool_id)
    if isinstance(error, AWSUnavailable):
        why, fix = "the AWS SDK is not installed", ("pip install 'cognito-gateway[aws]'. "
                                                    + grant)
    elif isinstance(error, NoCredentials):
        why, fix = "no AWS credentials were found", grant
    elif isinstance(error, CredentialsRejected):
        why, fix = f"AWS refused the credentials ({error.code})", grant
    elif isinstance(error, AccessDenied):
        why, fix = f"the credentials may not call cognito-idp:{error.action}", grant
    else:
        why = f"the Cognito API in {e.region} failed at {error.action} ({error.code})"
        fix = (f"Check egress to cognito-idp.{e.region}.amazonaws.com (or AWS_ENDPOINT_URL) "
               "and run the doctor again.")
        policy = ""
    return Finding(API, Status.WARN, f"the app client was not read through the Cognito API: "
                   f"{why}. The checks of callback URLs, OAuth flows, scopes, secret, identity "
                   "providers, domain and token settings did not run; the probes did",
                   fix, policy=policy)


def api_findings(read: AppClientFacts | APIUnavailable | None, *,
                 secret_accepted: bool | None = None) -> list[Finding]:
    """The findings for what `read_facts` returned: none without a user pool, one warning when
    the API could not be read, else every check."""
    if read is None:
        return []
    if isinstance(read, APIUnavailable):
        return [unavailable_finding(read)]
    return app_client_findings(read, secret_accepted=secret_accepted)


async def check_app_client(settings: Settings) -> tuple[AppClientFacts | None, list[Finding]]:
    """Read the app client and check it: (facts, findings); (None, []) without a user pool,
    (None, [the warning]) when it cannot be read."""
    read = await read_facts(settings)
    return (read if isinstance(read, AppClientFacts) else None), api_findings(read)
