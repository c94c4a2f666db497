"""The doctor's checks, in the order a sign-in depends on them.

redirect_uri shape (offline) -> discovery reachable -> issuer matches -> endpoints present ->
JWKS usable -> /authorize accepts the client and callback URL -> the token endpoint
authenticates the client and allows the code grant -> clocks agree. When discovery fails,
nothing after it can be checked and the run stops there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gateway.cognito.discovery import ProviderMetadata
from gateway.cognito.http import fetch_json
from gateway.cognito.jwks import JWKSCache
from gateway.cognito.probes import (
    AuthorizeProbe,
    AuthorizeVerdict,
    probe_authorize,
    probe_token,
)
from gateway.doctor.redirect import near_misses, redirect_uri_finding
from gateway.doctor.report import Finding
from gateway.doctor.verdicts import (
    callback_findings,
    client_findings,
    client_known,
    clock_finding,
)
from gateway.errors import DiscoveryError, IdPError, JWKSError
from gateway.observability.metrics import Metrics

if TYPE_CHECKING:
    import aiohttp

    from gateway.config import Settings

NETWORK_REASONS = frozenset({"connect", "timeout", "reset", "network_error"})
ISSUER_FIX = ("Set cognito.region and cognito.user_pool_id (issuer https://cognito-idp.<region>"
              ".amazonaws.com/<user pool id>), or cognito.issuer, to the user pool's issuer.")


async def run_checks(settings: Settings, http: aiohttp.ClientSession) -> list[Finding]:
    """Every finding for these settings, probing the IdP over `http`."""
    local_idp = urlsplit(settings.cognito.domain or settings.issuer).scheme == "http"
    findings = [redirect_uri_finding(settings, local_idp=local_idp)]
    doc = await _discovery(settings, http, findings)
    if doc is None:
        return findings
    metadata = _endpoints(settings, doc, findings)
    if metadata is None:
        return findings
    await _jwks(http, metadata.jwks_uri, findings)
    c = settings.cognito
    try:
        authorize = await probe_authorize(
            http, metadata.authorization_endpoint, client_id=c.client_id,
            redirect_uri=settings.redirect_uri, scopes=c.scopes, pkce=c.pkce)
    except IdPError as exc:
        authorize = None
        findings.append(Finding.fail("authorize request", f"cannot reach "
                                     f"{metadata.authorization_endpoint}: {exc.reason}",
                                     "Check cognito.domain and egress to the hosted-UI domain."))
    token = await probe_token(http, metadata.token_endpoint, client_id=c.client_id,
                              client_secret=c.client_secret, redirect_uri=settings.redirect_uri,
                              pkce=c.pkce)
    without_secret = None
    if token.outcome == "invalid_client" and c.client_secret:
        without_secret = await probe_token(
            http, metadata.token_endpoint, client_id=c.client_id, client_secret="",
            redirect_uri=settings.redirect_uri, pkce=c.pkce)
    if authorize is not None and client_known(token, without_secret):
        instead = await _registered_instead(http, metadata, settings, authorize)
        findings.extend(callback_findings(settings.redirect_uri, token, authorize, instead))
    findings.extend(client_findings(settings, token, without_secret, authorize))
    if authorize is not None:
        findings.append(clock_finding(authorize.skew_seconds))
    return findings


async def _discovery(settings: Settings, http: aiohttp.ClientSession,
                     findings: list[Finding]) -> dict[str, Any] | None:
    url = settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        doc = await fetch_json(http, url, error=DiscoveryError)
    except DiscoveryError as exc:
        findings.append(_discovery_failure(url, exc.reason))
        return None
    findings.append(Finding.ok("discovery", f"{url} answered"))
    issuer = doc.get("issuer")
    if not isinstance(issuer, str) or issuer.rstrip("/") != settings.issuer.rstrip("/"):
        findings.append(Finding.fail(
            "issuer", f"the discovery document names issuer {issuer!r}, not the configured "
            f"{settings.issuer!r}: every token would fail the iss check",
            f"Set cognito.issuer to {issuer!r} exactly, or correct the URL the gateway "
            "reaches the IdP by (the issuer is compared as a string)."
            if isinstance(issuer, str) else ISSUER_FIX))
    else:
        findings.append(Finding.ok("issuer", f"{issuer} matches the configuration"))
    return doc


def _discovery_failure(url: str, reason: str) -> Finding:
    if reason in NETWORK_REASONS:
        return Finding.fail("discovery", f"cannot reach the IdP: GET {url} failed ({reason})",
                            "Check cognito.issuer / region / user_pool_id, DNS, and that this "
                            "host may reach the IdP (NAT, security groups, HTTPS proxy).")
    if reason.startswith("http_") and reason[5:].isdigit() and int(reason[5:]) >= 500:
        return Finding.fail("discovery", f"the IdP failed: GET {url} answered HTTP {reason[5:]}",
                            "Usually transient: check the IdP's status and run the doctor again.")
    if reason.startswith("http_"):
        return Finding.fail("discovery", f"no discovery document at {url} (HTTP {reason[5:]}): "
                            "the issuer is wrong", ISSUER_FIX)
    return Finding.fail("discovery", f"{url} is not an OpenID discovery document ({reason}): "
                        "the issuer points at something else", ISSUER_FIX)


def _endpoints(settings: Settings, doc: dict[str, Any],
               findings: list[Finding]) -> ProviderMetadata | None:
    issuer = doc.get("issuer")
    try:
        metadata = ProviderMetadata.from_document(
            doc, expected_issuer=issuer if isinstance(issuer, str) else "")
    except DiscoveryError as exc:
        findings.append(Finding.fail("endpoints", str(exc), ISSUER_FIX))
        return None
    domain = settings.cognito.domain
    if domain:
        metadata = metadata.with_domain(domain)
    methods = doc.get("token_endpoint_auth_methods_supported")
    if (settings.cognito.client_secret and isinstance(methods, list)
            and "client_secret_basic" not in methods):
        findings.append(Finding.warn(
            "endpoints", f"the IdP lists token endpoint auth methods {methods}, without "
            "client_secret_basic, which the gateway uses",
            "Use an IdP that accepts HTTP Basic client authentication (Cognito does)."))
    findings.append(Finding.ok("endpoints", f"authorize {metadata.authorization_endpoint}, "
                               f"token {metadata.token_endpoint}"
                               + (" (hosted-UI endpoints from cognito.domain)" if domain else "")))
    return metadata


async def _jwks(http: aiohttp.ClientSession, uri: str, findings: list[Finding]) -> None:
    try:
        await JWKSCache(http, uri, Metrics()).refresh()
    except JWKSError as exc:
        findings.append(Finding.fail("jwks", f"signing keys not usable: {exc}",
                                     "Check that jwks_uri in the discovery document is reachable "
                                     "from this host and serves RSA or EC signing keys."))
        return
    findings.append(Finding.ok("jwks", f"{uri} serves usable signing keys"))


async def _registered_instead(http: aiohttp.ClientSession, metadata: ProviderMetadata,
                              settings: Settings,
                              authorize: AuthorizeProbe) -> tuple[str, str] | None:
    """For a redirect_mismatch: the near-miss callback URL the app client has, if any."""
    if authorize.verdict is not AuthorizeVerdict.REDIRECT_MISMATCH:
        return None
    c = settings.cognito
    for url, how in near_misses(settings.redirect_uri):
        try:
            answer = await probe_authorize(http, metadata.authorization_endpoint,
                                           client_id=c.client_id, redirect_uri=url,
                                           scopes=c.scopes, pkce=c.pkce)
        except IdPError:
            return None
        if answer.verdict is not AuthorizeVerdict.REDIRECT_MISMATCH:
            return url, how
    return None

