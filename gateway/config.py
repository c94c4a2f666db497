"""Typed settings, loaded from a TOML file and `GATEWAY_<SECTION>_<KEY>` environment variables.

The environment wins over the file. A key marked secret may also be read from a file named by
`<key>_file` (TOML) or `GATEWAY_<SECTION>_<KEY>_FILE` (environment). Every problem (unknown
key, wrong type, invalid value, missing requirement) is collected and reported at once by
`load_settings`, which raises `ConfigError`.

Each field's metadata (`doc`, `secret`) is the single source of the configuration reference
(`python -m gateway.config_reference`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import tomllib
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.auth.rules import Rule, load_rules
from gateway.config_checks import (
    Check,
    Load,
    at_least,
    cidr,
    each,
    fernet_key,
    host_port,
    http_url,
    one_of,
    origin_url,
    path_glob,
)
from gateway.errors import ConfigError, ConfigProblem

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "GATEWAY_"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _setting(default: Any, doc: str, *, check: Check | None = None, secret: bool = False,
             load: Load | None = None) -> Any:
    meta = {"doc": doc, "check": check, "secret": secret, "load": load}
    if isinstance(default, list):
        return field(default_factory=functools.partial(list, default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ServerSettings:
    """The [server] section: listeners, public URL, trusted proxies and limits."""

    listen: str = _setting("0.0.0.0:4180", "Address of the proxy and /oauth2/* endpoints.",
                           check=host_port)
    metrics_listen: str = _setting("0.0.0.0:9464", "Address of the /metrics listener.",
                                   check=host_port)
    public_url: str = _setting(
        "", "External base URL of the gateway (scheme://host[:port]); the OAuth redirect_uri is "
        "public_url + /oauth2/callback. Required.", check=origin_url)
    trusted_proxies: list[str] = _setting(
        [], "CIDRs of proxies whose X-Forwarded-For/Proto/Host are believed.", check=each(cidr))
    shutdown_delay_seconds: float = _setting(
        0.0, "On SIGTERM, how long /ready answers 503 while connections are still accepted, "
        "before the listeners close (lets load balancers stop routing first).",
        check=at_least(0))
    shutdown_timeout_seconds: float = _setting(
        25.0, "On SIGTERM, how long in-flight requests may take to finish.", check=at_least(0))
    workers: int = _setting(
        1, "Worker processes sharing `listen` (SO_REUSEPORT); a supervisor restarts a dead one "
        "and /metrics reports the sum over workers.", check=at_least(1))
    max_connections: int = _setting(
        10000, "Client connections served at once per worker; one more is answered 503 and "
        "closed.", check=at_least(1))
    max_header_bytes: int = _setting(
        65536, "Longest request line or header line accepted from a client (larger: 431/400); "
        "Cognito-sized session cookies need well over the common 8 KiB.", check=at_least(1024))
    client_header_timeout_seconds: float = _setting(
        20.0, "A client must send its request line and headers within this (slow-header "
        "attacks); an idle keep-alive connection is closed after it too.", check=at_least(0.1))
    client_body_timeout_seconds: float = _setting(
        30.0, "Longest pause between two reads of a request body (slow-body attacks) before "
        "the request fails with 408.", check=at_least(0.1))


@dataclass(frozen=True)
class UpstreamSettings:
    """The [upstream] section: the app behind the gateway and how it is reached."""

    url: str = _setting("http://127.0.0.1:8080", "The app behind the gateway.", check=http_url)
    timeout_seconds: float = _setting(
        60.0, "Connect and idle-read timeout; long downloads and SSE streams are not cut.",
        check=at_least(0.1))
    max_request_body_bytes: int = _setting(
        0, "Largest request body forwarded (larger: 413); 0 = no limit.", check=at_least(0))
    websockets: bool = _setting(True, "Proxy WebSocket upgrades.")
    max_websockets: int = _setting(
        1024, "Open proxied WebSockets at once per worker; further upgrades get 503.",
        check=at_least(1))
    websocket_max_message_bytes: int = _setting(
        16 * 1024 * 1024, "Largest WebSocket message relayed in either direction; a larger "
        "one closes the socket with 1009 (message too big).", check=at_least(1024))


@dataclass(frozen=True)
class CognitoSettings:
    """The [cognito] section: the user pool, its domain and the app client."""

    region: str = _setting("", "AWS region of the user pool (default: taken from user_pool_id).")
    user_pool_id: str = _setting("", "User pool id, e.g. eu-west-1_AbCdEf123.")
    domain: str = _setting(
        "", "Hosted UI domain (https://<prefix>.auth.<region>.amazoncognito.com or a custom "
        "domain); its /oauth2/* and /logout are used instead of the discovered ones.",
        check=origin_url)
    client_id: str = _setting("", "App client id. Required.")
    client_secret: str = _setting("", "App client secret; empty for a public client (PKCE only).",
                                  secret=True)
    scopes: list[str] = _setting(["openid", "email", "profile"], "Scopes requested at sign-in.")
    issuer: str = _setting(
        "", "Token issuer; default https://cognito-idp.<region>.amazonaws.com/<user_pool_id>. "
        "Set it for the dev IdP or any other OpenID provider.", check=http_url)
    pkce: bool = _setting(True, "Use PKCE (S256) at sign-in.")
    logout_uri: str = _setting(
        "", "Where the IdP sends the browser after sign-out; default public_url + "
        "/oauth2/signed_out (register it on the app client).", check=http_url)
    identity_providers: list[str] = _setting(
        [], "Identity provider names that /oauth2/sign_in?identity_provider= may select "
        "(an allow-list; any other name is ignored).")
    timeout_seconds: float = _setting(
        10.0, "Timeout of each call to the token endpoint and the IdP's other endpoints.",
        check=at_least(0.1))
    doctor_at_start: bool = _setting(
        False, "With AWS credentials (the `aws` extra), read the app client through the Cognito "
        "API at start, log the doctor's findings once, and name confirmed causes in hints.")


@dataclass(frozen=True)
class SessionSettings:
    """The [session] section: where sessions live, their cookie and lifetime."""

    store: str = _setting("cookie", "Session store: cookie (no infrastructure) or redis.",
                          check=one_of("cookie", "redis"))
    cookie_name: str = _setting("_cognito_gateway", "Name of the session cookie.")
    secret: list[str] = _setting(
        [], "Fernet key(s) encrypting sessions. A list rotates: the first encrypts, all "
        "decrypt. Required.", check=each(fernet_key), secret=True)
    cookie_secure: bool = _setting(True, "Mark cookies Secure (HTTPS only).")
    cookie_samesite: str = _setting("lax", "SameSite attribute of the session cookie.",
                                    check=one_of("lax", "strict", "none"))
    lifetime_seconds: int = _setting(86400, "Absolute session lifetime.", check=at_least(60))
    refresh_before_expiry_seconds: int = _setting(
        120, "Refresh tokens this long before the access or ID token expires.", check=at_least(0))
    revalidate_seconds: int = _setting(
        300, "Cookie store: a session is re-checked with the IdP (a refresh) at least this often, "
        "so a signed-out or revoked session stops working on every replica within it; 0 = only "
        "when its tokens expire.", check=at_least(0))
    redis_url: str = _setting(
        "redis://127.0.0.1:6379/0", "Redis for store = redis: redis://, rediss:// (TLS) or "
        "unix://; password and db from the URL.", secret=True)
    redis_sentinels: list[str] = _setting(
        [], "Sentinel addresses (host:port); set to find the master through Redis Sentinel.",
        check=each(host_port))
    redis_sentinel_master: str = _setting("mymaster", "The master name the sentinels monitor.")
    redis_cluster: bool = _setting(False, "redis_url names one node of a Redis Cluster.")
    redis_max_connections: int = _setting(
        64, "Largest Redis connection pool per worker (per node with a cluster).",
        check=at_least(1))
    redis_timeout_seconds: float = _setting(
        2.0, "Timeout of every Redis call, connecting included.", check=at_least(0.05))


@dataclass(frozen=True)
class AuthSettings:
    """The [auth] section: which paths are public or APIs, and who is let in."""

    public_paths: list[str] = _setting(
        [], "Glob paths served without sign-in (e.g. /health, /static/*).", check=each(path_glob))
    api_paths: list[str] = _setting(
        [], "Glob paths that get 401 JSON instead of a sign-in redirect.", check=each(path_glob))
    allowed_groups: list[str] = _setting([], "Groups allowed in; empty = any signed-in user.")
    accept_bearer_tokens: bool = _setting(
        True, "Accept `Authorization: Bearer <access token>` from API clients.")
    bearer_client_ids: list[str] = _setting(
        [], "App clients whose access tokens are accepted; empty = client_id only.")
    rules: list[Rule] = _setting(
        [], "Per-route rules, ordered, the first match decides: `[[auth.rules]]` tables (in the "
        "environment a JSON array of objects) with paths, methods, action, groups, scopes, "
        "principal, claims, unauthenticated, identity_provider; see docs/rules.md. A request "
        "no rule matches gets public_paths, api_paths and allowed_groups.", load=load_rules)


@dataclass(frozen=True)
class HeadersSettings:
    """The [headers] section: the identity headers sent upstream."""

    sets: list[str] = _setting(
        ["x-auth-request"], "Identity header sets sent upstream: x-auth-request, alb.",
        check=each(one_of("x-auth-request", "alb")))
    pass_access_token: bool = _setting(False, "Also send the access token upstream.")
    pass_unverified_email: bool = _setting(
        False, "Send X-Auth-Request-Email even when email_verified is not true (an unverified "
        "email can be anyone's: never key accounts on it).")


@dataclass(frozen=True)
class LogSettings:
    """The [log] section: the level and the access log."""

    level: str = _setting("info", "Log level.", check=one_of("debug", "info", "warning", "error"))
    access_log: bool = _setting(True, "One JSON line per request.")


@dataclass(frozen=True)
class Settings:
    """The whole configuration, one frozen dataclass per section, checked when loaded."""

    server: ServerSettings
    upstream: UpstreamSettings
    cognito: CognitoSettings
    session: SessionSettings
    auth: AuthSettings
    headers: HeadersSettings
    log: LogSettings

    @property
    def redirect_uri(self) -> str:
        return self.server.public_url.rstrip("/") + "/oauth2/callback"

    @property
    def logout_uri(self) -> str:
        return self.cognito.logout_uri or self.server.public_url.rstrip("/") + "/oauth2/signed_out"

    @property
    def issuer(self) -> str:
        if self.cognito.issuer:
            return self.cognito.issuer.rstrip("/")
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.cognito.user_pool_id}"

    @property
    def region(self) -> str:
        return self.cognito.region or self.cognito.user_pool_id.partition("_")[0]

    @property
    def is_cognito(self) -> bool:
        """True for a Cognito user pool: Cognito token rules and its /logout endpoint apply."""
        return bool(self.cognito.region or self.cognito.user_pool_id or self.cognito.domain) or (
            COGNITO_ISSUER.match(self.issuer) is not None)

    @property
    def bearer_client_ids(self) -> frozenset[str]:
        return frozenset(self.auth.bearer_client_ids or [self.cognito.client_id])

    @property
    def identity_provider_names(self) -> frozenset[str]:
        """Every identity provider a sign-in may name (the allow-list, and the rules' ones)."""
        return frozenset(self.cognito.identity_providers) | {
            rule.identity_provider for rule in self.auth.rules if rule.identity_provider}

    @property
    def session_needs_access_token(self) -> bool:
        """True when sessions must keep the access token: to pass it upstream, or because a
        rule requires scopes of a session principal (read from that token)."""
        return self.headers.pass_access_token or any(
            rule.scopes and rule.principal != "bearer" for rule in self.auth.rules)


COGNITO_ISSUER = re.compile(
    r"^https://(issuer-)?cognito-idp\.[a-z0-9-]+\.amazonaws\.com/[A-Za-z0-9-]+_[A-Za-z0-9]+$")

SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(Settings)[f.name] for f in fields(Settings)
}


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None, *,
                  files: list[Path] | None = None) -> Settings:
    """Build Settings from an optional TOML file and the environment; raise ConfigError.

    `files`, when given, receives every secret file read (`<key>_file`), for a reload to watch.
    """
    environ = os.environ if environ is None else environ
    files = [] if files is None else files
    problems: list[ConfigProblem] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError([ConfigProblem(str(path), f"cannot read: {exc.strerror}")]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([ConfigProblem(str(path), f"not valid TOML: {exc}")]) from None
    for name in raw:
        if name not in SECTIONS:
            problems.append(ConfigProblem(name, f"unknown section (known: {', '.join(SECTIONS)})"))
    problems.extend(_unknown_env(environ))
    sections = {}
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            problems.append(ConfigProblem(name, "must be a table"))
            table = {}
        sections[name] = _build_section(name, cls, table, environ, problems, files=files)
    settings = Settings(**sections)
    problems.extend(_cross_checks(settings))
    if problems:
        raise ConfigError(problems)
    return settings


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper()


def _unknown_env(environ: Mapping[str, str]) -> list[ConfigProblem]:
    known = set()
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            known.add(_env_name(section, f.name))
            if f.metadata["secret"]:
                known.add(_env_name(section, f.name) + "_FILE")
    prefixes = tuple(f"{ENV_PREFIX}{s}_".upper() for s in SECTIONS)
    return [ConfigProblem(name, "unknown setting in the environment")
            for name in sorted(environ) if name.startswith(prefixes) and name not in known]


def _build_section(name: str, cls: type[Any], table: dict[str, Any], environ: Mapping[str, str],
                   problems: list[ConfigProblem], *, files: list[Path]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    secret_files = {f"{f.name}_file" for f in fields(cls) if f.metadata["secret"]}
    for key in table:
        if key not in known and key not in secret_files:
            problems.append(ConfigProblem(f"{name}.{key}", "unknown key"))
    values: dict[str, Any] = {}
    for f in fields(cls):
        key = f"{name}.{f.name}"
        raw_value, from_env = _raw_value(name, f.name, table, environ, problems, files=files,
                                         secret=bool(f.metadata["secret"]))
        if raw_value is MISSING:
            continue
        load: Load | None = f.metadata["load"]
        if load is not None:
            loaded, found = load(raw_value, key, from_env=from_env)
            problems.extend(found)
            if not found:
                values[f.name] = loaded
            continue
        try:
            value = _coerce(raw_value, hints[f.name], from_env=from_env)
        except ValueError as exc:
            problems.append(ConfigProblem(key, str(exc)))
            continue
        check: Check | None = f.metadata["check"]
        problem = check(value) if check else None
        if problem:
            problems.append(ConfigProblem(key, problem))
            continue
        values[f.name] = value
    return cls(**values)


def _raw_value(section: str, key: str, table: dict[str, Any], environ: Mapping[str, str],
               problems: list[ConfigProblem], *, files: list[Path],
               secret: bool) -> tuple[Any, bool]:
    env = _env_name(section, key)
    if env in environ:
        return environ[env], True
    if secret:
        file_name = environ.get(env + "_FILE") or table.get(f"{key}_file")
        if file_name:
            files.append(Path(file_name))
            try:
                return Path(file_name).read_text(encoding="utf-8").strip(), True
            except OSError as exc:
                problems.append(ConfigProblem(f"{section}.{key}_file",
                                              f"cannot read {file_name}: {exc.strerror}"))
                return MISSING, False
    return table.get(key, MISSING), False


def _coerce(value: Any, hint: Any, *, from_env: bool) -> Any:
    if typing.get_origin(hint) is list:
        return _coerce_list(value, from_env=from_env)
    if hint is bool:
        return _coerce_bool(value, from_env=from_env)
    if hint is int or hint is float:
        return _coerce_number(value, hint, from_env=from_env)
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {value!r}")
    return value


def _coerce_bool(value: Any, *, from_env: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_env and isinstance(value, str) and value.lower() in _BOOLS:
        return _BOOLS[value.lower()]
    raise ValueError("must be true or false")


def _coerce_number(value: Any, hint: type[int] | type[float], *, from_env: bool) -> int | float:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {value!r}")
    if isinstance(value, (int, float)) and (hint is float or isinstance(value, int)):
        return hint(value)
    if from_env and isinstance(value, str):
        try:
            return hint(value)
        except ValueError:
            pass
    raise ValueError(f"must be {'an integer' if hint is int else 'a number'}, not {value!r}")


def _coerce_list(value: Any, *, from_env: bool) -> list[str]:
    if from_env and isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not a JSON array: {exc.msg}") from None
        else:
            return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return list(value)


_BOOLS = {"true": True, "1": True, "yes": True, "on": True,
          "false": False, "0": False, "no": False, "off": False}


def _cross_checks(settings: Settings) -> list[ConfigProblem]:
    return _required_settings(settings) + _conflicting_settings(settings)


def _required_settings(settings: Settings) -> list[ConfigProblem]:
    problems = []
    c = settings.cognito
    if not settings.server.public_url:
        problems.append(ConfigProblem("server.public_url", "is required (the gateway's external "
                                      "URL; redirect_uri is derived from it)"))
    if not c.client_id:
        problems.append(ConfigProblem("cognito.client_id", "is required"))
    if not c.issuer and not c.user_pool_id:
        problems.append(ConfigProblem("cognito.user_pool_id",
                                      "is required unless cognito.issuer is set"))
    if c.user_pool_id and not re.fullmatch(r"[\w-]+_[0-9a-zA-Z]+", c.user_pool_id):
        problems.append(ConfigProblem("cognito.user_pool_id", "must look like <region>_<id>"))
    if not settings.session.secret:
        problems.append(ConfigProblem("session.secret", "is required: one or more Fernet keys"))
    return problems


def _conflicting_settings(settings: Settings) -> list[ConfigProblem]:
    problems = []
    c = settings.cognito
    if "openid" not in c.scopes:
        problems.append(ConfigProblem("cognito.scopes", "must include openid (the ID token is "
                                      "how the gateway learns who signed in)"))
    if not c.pkce and not c.client_secret:
        problems.append(ConfigProblem("cognito.pkce", "a public client (no client_secret) "
                                      "must use PKCE"))
    if settings.session.cookie_samesite == "none" and not settings.session.cookie_secure:
        problems.append(ConfigProblem("session.cookie_samesite",
                                      "none requires session.cookie_secure = true"))
    if settings.session.redis_sentinels and settings.session.redis_cluster:
        problems.append(ConfigProblem("session.redis_cluster", "cannot be combined with "
                                      "session.redis_sentinels (choose Sentinel or Cluster)"))
    public = urlsplit(settings.server.public_url)
    # Browsers accept Secure cookies from loopback origins even over http.
    insecure_origin = public.scheme == "http" and public.hostname not in LOOPBACK_HOSTS
    if settings.session.cookie_secure and insecure_origin:
        problems.append(ConfigProblem("session.cookie_secure", "is true but server.public_url is "
                                      "http://: browsers would never send the cookie back"))
    return problems
