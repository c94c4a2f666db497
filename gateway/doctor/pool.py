"""Checks of the user pool as the Cognito API describes it: where it is, its domain, its guards.

- `pool region`: cognito.region, when set, is the region the user pool id names;
- `user pool`: the pool exists in that region (for the AWS account of the credentials);
- `domain`: the pool has a hosted-UI domain, it is ACTIVE, and cognito.domain is that domain
  (`https://<prefix>.auth.<region>.amazoncognito.com` or `https://<custom domain>`).
- `deletion protection`, `advanced security`: reported as INFO, not judged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gateway.doctor.facts import PREFIX_DOMAIN, AppClientFacts, domain_name
from gateway.doctor.report import Finding, Status

if TYPE_CHECKING:
    from gateway.aws import DomainDescription, UserPoolDescription

POOL = "user pool"
REGION = "pool region"
DOMAIN = "domain"
DELETION = "deletion protection"
SECURITY = "advanced security"
DOMAIN_CONSOLE = "Cognito console > User pools > {pool} > Branding > Domain"


def region_finding(facts: AppClientFacts) -> Finding | None:
    """FAIL when cognito.region names another region than the user pool id does."""
    e = facts.expected
    if not e.configured_region or e.configured_region == e.region:
        return None
    return Finding.fail(
        REGION, f"cognito.region is {e.configured_region}, but user pool {e.user_pool_id} lives "
        f"in {e.region} (the prefix of its id): the gateway would look for its issuer and keys "
        f"in {e.configured_region}",
        f'Set cognito.region = "{e.region}", or remove it (the region is taken from '
        "cognito.user_pool_id).")


def pool_finding(facts: AppClientFacts) -> Finding:
    """PASS when the pool exists, FAIL naming the region searched when it does not."""
    e = facts.expected
    if facts.pool is None:
        return Finding.fail(
            POOL, f"user pool {e.user_pool_id} does not exist in {e.region} (DescribeUserPool: "
            "ResourceNotFoundException), at least not in the AWS account of these credentials",
            "Check cognito.user_pool_id against the Cognito console (User pools, in the "
            "pool's region), and that the AWS credentials belong to the pool's account.")
    return Finding.ok(POOL, f"{facts.pool.name} ({facts.pool.user_pool_id}) in {e.region}")


def domain_findings(facts: AppClientFacts) -> list[Finding]:
    """The pool's hosted-UI domain: present, ACTIVE, and the one cognito.domain names."""
    pool = facts.pool
    if pool is None:
        return []
    e = facts.expected
    own = [d for d in facts.domains if d.domain in {pool.domain, pool.custom_domain}]
    console = DOMAIN_CONSOLE.format(pool=pool.name)
    if not own:
        return [_no_domain(facts, pool, console)]
    urls = ", ".join(d.url(e.region) for d in own)
    if not e.domain:
        return [_status(own[0], e.region, console) or Finding.ok(
            DOMAIN, f"cognito.domain is not set (endpoints come from discovery); the pool's "
            f"domain: {urls}")]
    configured = domain_name(e.domain)
    match = next((d for d in own if d.domain == configured
                  and _origin(d.url(e.region)) == _origin(e.domain)), None)
    if match is None:
        other = next((d for d in facts.domains if d.domain == configured and d not in own), None)
        belongs = (f"; {other.url(e.region)} belongs to user pool {other.user_pool_id}"
                   if other else "")
        return [Finding.fail(
            DOMAIN, f"cognito.domain {e.domain} is not a domain of user pool {pool.name}: "
            f"its domain is {urls}{belongs}. Sign-in and the token endpoint would go to "
            "another pool or nowhere",
            f'Set cognito.domain = "{own[0].url(e.region)}" ({console}).')]
    return [_status(match, e.region, console) or Finding.ok(
        DOMAIN, f"cognito.domain is the pool's {'custom' if match.custom else 'prefix'} "
        f"domain {match.url(e.region)} (ACTIVE)")]


def _origin(url: str) -> str:
    return url.rstrip("/").lower().removesuffix(":443")


def _no_domain(facts: AppClientFacts, pool: UserPoolDescription, console: str) -> Finding:
    e = facts.expected
    prefix = PREFIX_DOMAIN.match((urlsplit(e.domain).hostname or "").lower())
    command: tuple[str, ...] = ()
    if prefix and prefix.group("region") == e.region:
        command = ("aws", "cognito-idp", "create-user-pool-domain", "--region", e.region,
                   "--user-pool-id", e.user_pool_id, "--domain", prefix.group("prefix"))
    return Finding(
        DOMAIN, Status.FAIL,
        f"user pool {pool.name} has no domain: there is no hosted UI and no /oauth2/token, so "
        "nobody can sign in",
        f"Create a domain ({console} > Create Cognito domain, or a custom domain) and set "
        "cognito.domain to its https:// URL.", command=command)


def _status(domain: DomainDescription, region: str, console: str) -> Finding | None:
    if domain.status == "ACTIVE" or not domain.status:
        return None
    url = domain.url(region)
    if domain.status in {"CREATING", "UPDATING"}:
        return Finding.warn(DOMAIN, f"{url} is {domain.status}: sign-in works once it is "
                            "ACTIVE (a custom domain can take up to an hour)",
                            f"Wait, then run the doctor again ({console}).")
    return Finding.fail(DOMAIN, f"{url} is {domain.status}: its hosted UI and /oauth2/* "
                        "endpoints do not answer",
                        f"Delete and create the domain again ({console}); for a custom "
                        "domain check its ACM certificate (us-east-1) and DNS alias.")


def info_findings(pool: UserPoolDescription) -> list[Finding]:
    """Deletion protection and advanced security (threat protection): reported, not judged."""
    tier = f"; feature plan {pool.tier}" if pool.tier else ""
    return [
        Finding.info(DELETION, f"deletion protection is {pool.deletion_protection or 'INACTIVE'}"
                     " on user pool " + pool.name),
        Finding.info(SECURITY, "threat protection (UserPoolAddOns.AdvancedSecurityMode) is "
                     f"{pool.advanced_security_mode or 'OFF'}{tier}"),
    ]
