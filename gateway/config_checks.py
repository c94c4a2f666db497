"""Validators for settings: each takes a value and returns what is wrong with it, or None."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

if TYPE_CHECKING:
    from gateway.errors import ConfigProblem

Check = Callable[[Any], str | None]


class Load(Protocol):
    """Reads a structured setting (a table or an array of tables) from its raw TOML value or
    environment text, reporting every problem under `key` or the keys below it."""

    def __call__(self, raw: Any, key: str, *,
                 from_env: bool) -> tuple[Any, list[ConfigProblem]]: ...


def host_port(value: str) -> str | None:
    """None for HOST:PORT with a port in 1-65535, else the problem."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "must be HOST:PORT, e.g. 0.0.0.0:4180"
    return None


def http_url(value: str) -> str | None:
    """None for an absolute http(s) URL with a host (or empty: not set), else the problem."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "must be an absolute http:// or https:// URL"
    return None


def origin_url(value: str) -> str | None:
    """None for an http(s) origin (no path, query or fragment), or empty; else the problem."""
    problem = http_url(value)
    if problem:
        return problem
    parts = urlsplit(value)
    if parts.query or parts.fragment or parts.path.rstrip("/"):
        return "must be an origin (scheme://host[:port]) without path, query or fragment"
    return None


def one_of(*choices: str) -> Check:
    """A check that accepts exactly `choices`."""
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def each(check: Check) -> Check:
    """A check of a list: `check` on each item; the first problem names its item."""
    def check_all(values: list[Any]) -> str | None:
        for value in values:
            problem = check(value)
            if problem:
                return f"{value!r} {problem}"
        return None

    return check_all


def cidr(value: str) -> str | None:
    """None for an IP network in CIDR form (host bits allowed), else the problem."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "is not an IP network in CIDR form (e.g. 10.0.0.0/8)"
    return None


def fernet_key(value: str) -> str | None:
    """None for a valid Fernet key, else the problem and how to make one."""
    try:
        Fernet(value.encode())
    except (ValueError, TypeError):
        return ("is not a Fernet key (32 url-safe base64-encoded bytes); create one with "
                "`cognito-gateway generate-secret`")
    return None


def at_least(minimum: float) -> Check:
    """A check that accepts numbers not below `minimum`."""
    def check(value: float) -> str | None:
        return None if value >= minimum else f"must be at least {minimum}"

    return check


def path_glob(value: str) -> str | None:
    """None for a glob that starts with /, else the problem."""
    return None if value.startswith("/") else "must start with /"
