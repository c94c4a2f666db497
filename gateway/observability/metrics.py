"""The gateway's Prometheus metrics: one registry per application, names from the contract.

Label values come from bounded sets only (normalised methods, status codes, OAuth error codes,
fixed reasons); never user ids, paths or raw error text.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway import __version__

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
                           "CONNECT", "TRACE"})


def normalise_method(method: str) -> str:
    """Client-controlled method names map to a bounded set ("other" for the rest)."""
    return method if method in KNOWN_METHODS else "other"


class Metrics:
    """Every metric the gateway exports, registered on its own CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        p = "cognito_gateway_"
        self.http_requests = Counter(p + "http_requests", "Requests answered by the gateway.",
                                     ["method", "code"], registry=r)
        self.http_request_duration = Histogram(
            p + "http_request_duration_seconds", "Time to answer a request (to response start "
            "for proxied requests).", buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_request_duration = Histogram(
            p + "upstream_request_duration_seconds", "Time until the upstream's response headers.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_errors = Counter(p + "upstream_errors", "Failed upstream requests.",
                                       ["reason"], registry=r)
        self.auth_decisions = Counter(
            p + "auth_decisions", "Guard decisions, by the deciding rule's index or `default`.",
            ["decision", "rule"], registry=r)
        self.token_requests = Counter(p + "token_requests", "Calls to the IdP token endpoint.",
                                      ["grant_type", "outcome"], registry=r)
        self.token_request_duration = Histogram(
            p + "token_request_duration_seconds", "Token endpoint latency.", ["grant_type"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.session_refreshes = Counter(p + "session_refreshes", "Session token refreshes.",
                                         ["outcome"], registry=r)
        self.jwks_fetches = Counter(p + "jwks_fetches", "JWKS fetches.", ["outcome"], registry=r)
        self.token_validation_failures = Counter(
            p + "token_validation_failures", "Tokens that failed verification.", ["reason"],
            registry=r)
        self.sign_ins = Counter(p + "sign_ins", "Completed and failed sign-ins.", ["outcome"],
                                registry=r)
        self.sign_outs = Counter(p + "sign_outs", "Sign-outs.", registry=r)
        self.ready = Gauge(p + "ready", "1 when the gateway is ready to serve.", registry=r)
        self.requests_refused = Counter(
            p + "requests_refused", "Requests refused before any decision (bad_target, "
            "unknown_endpoint, method_not_allowed, malformed, ...).", ["reason"], registry=r)
        self.reauthentications = Counter(
            p + "reauthentications", "Why signed-in users had to sign in again.", ["reason"],
            registry=r)
        self.config_reloads = Counter(p + "config_reloads", "Configuration reloads.",
                                      ["outcome"], registry=r)
        self.build_info = Gauge(p + "build_info", "Build information.", ["version"], registry=r)
        self.build_info.labels(version=__version__).set(1)


METRICS = web.AppKey("metrics", Metrics)
