"""What the Cognito API says about the configured app client, read once and kept as facts.

`read_facts` opens a cognito-idp client in the user pool's region (the prefix of its id) and
reads DescribeUserPool, DescribeUserPoolClient and DescribeUserPoolDomain (each of the pool's
domains, and the one cognito.domain names); when the client is not in the pool it lists the
pool's clients instead. It gives up with `APIUnavailable` at the first thing that stops it:
no SDK, no credentials, refused credentials, a denied action, the API unreachable. Configs
without a Cognito user pool (a generic OpenID issuer) have nothing to read: None.

`AppClientFacts` also keeps what the configuration expects (`Expectation`), captured at read
time: comparisons need no Settings later, and a reload reads both again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gateway.aws import (
    AppClientDescription,
    AWSError,
    ClientSummary,
    CognitoIdp,
    DomainDescription,
    ResourceNotFound,
    UserPoolDescription,
    open_cognito_idp,
    secret_digest,
)
from gateway.config import COGNITO_ISSUER, Settings

PREFIX_DOMAIN = re.compile(r"^(?P<prefix>[a-z0-9-]+)\.auth(-fips)?\.(?P<region>[a-z0-9-]+)"
                           r"\.amazoncognito\.com$")
_DOMAIN_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Expectation:
    """What the configuration needs of the user pool and app client."""

    user_pool_id: str
    region: str                    # where the pool lives: the prefix of its id
    configured_region: str         # cognito.region as set ("" = taken from the pool id)
    client_id: str
    redirect_uri: str
    logout_uri: str
    scopes: tuple[str, ...]
    identity_providers: frozenset[str]
    domain: str                    # cognito.domain ("" = endpoints from discovery)
    secret_sha256: bytes | None = field(repr=False)
    refresh_before_expiry_seconds: int
    revalidate_seconds: int
    session_lifetime_seconds: int
    session_store: str

    @classmethod
    def from_settings(cls, settings: Settings, user_pool_id: str) -> Expectation:
        c, s = settings.cognito, settings.session
        return cls(
            user_pool_id=user_pool_id,
            region=user_pool_id.partition("_")[0],
            configured_region=c.region,
            client_id=c.client_id,
            redirect_uri=settings.redirect_uri,
            logout_uri=settings.logout_uri,
            scopes=tuple(c.scopes),
            identity_providers=settings.identity_provider_names,
            domain=c.domain.rstrip("/"),
            secret_sha256=secret_digest(c.client_secret) if c.client_secret else None,
            refresh_before_expiry_seconds=s.refresh_before_expiry_seconds,
            revalidate_seconds=s.revalidate_seconds,
            session_lifetime_seconds=s.lifetime_seconds,
            session_store=s.store,
        )


@dataclass(frozen=True)
class AppClientFacts:
    """The user pool, app client and domains as read, next to what the configuration expects.

    `pool` is None when the pool does not exist in that region; `client` is None when the pool
    has no such app client (then `pool_clients` lists the ones it has).
    """

    expected: Expectation
    pool: UserPoolDescription | None
    client: AppClientDescription | None
    domains: tuple[DomainDescription, ...] = ()
    pool_clients: tuple[ClientSummary, ...] = ()


@dataclass(frozen=True)
class APIUnavailable:
    """Why the app client could not be read; `error.action` names the API call that failed."""

    expected: Expectation
    error: AWSError


def user_pool_id(settings: Settings) -> str | None:
    """The configured user pool: cognito.user_pool_id, else the one a Cognito issuer names."""
    if settings.cognito.user_pool_id:
        return settings.cognito.user_pool_id
    if settings.cognito.issuer and COGNITO_ISSUER.match(settings.issuer):
        return settings.issuer.rsplit("/", 1)[-1]
    return None


def domain_name(domain_url: str) -> str | None:
    """The DescribeUserPoolDomain name of a hosted-UI URL: the prefix, or the custom host."""
    parts = urlsplit(domain_url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        return None
    prefix = PREFIX_DOMAIN.match(host)
    if prefix:
        return prefix.group("prefix")
    return host if _DOMAIN_NAME.match(host) else None


async def read_facts(settings: Settings) -> AppClientFacts | APIUnavailable | None:
    """Read the configured pool, app client and domains; None without a Cognito user pool."""
    pool_id = user_pool_id(settings)
    if pool_id is None:
        return None
    expected = Expectation.from_settings(settings, pool_id)
    try:
        async with open_cognito_idp(expected.region,
                                    timeout_seconds=settings.cognito.timeout_seconds) as idp:
            return await _read(idp, expected)
    except AWSError as exc:
        return APIUnavailable(expected, exc)


async def read_app_client(settings: Settings) -> AppClientFacts | None:
    """The facts, or None when they cannot be read (no SDK, credentials or permission)."""
    facts = await read_facts(settings)
    return facts if isinstance(facts, AppClientFacts) else None


async def _read(idp: CognitoIdp, expected: Expectation) -> AppClientFacts:
    try:
        pool = await idp.describe_user_pool(expected.user_pool_id)
    except ResourceNotFound:
        return AppClientFacts(expected, pool=None, client=None)
    try:
        client = await idp.describe_user_pool_client(expected.user_pool_id, expected.client_id)
    except ResourceNotFound:
        client = None
    pool_clients: tuple[ClientSummary, ...] = ()
    if client is None:
        try:
            pool_clients = await idp.list_user_pool_clients(expected.user_pool_id)
        except AWSError:
            pool_clients = ()  # the listing only decorates the finding
    names = [pool.domain, pool.custom_domain, domain_name(expected.domain)]
    domains = []
    for name in dict.fromkeys(n for n in names if n):
        description = await idp.describe_user_pool_domain(name)
        if description is not None:
            domains.append(description)
    return AppClientFacts(expected, pool, client, tuple(domains), pool_clients)
