"""Loading a user pool from a TOML file.

The file mirrors the dataclasses: top-level `pool_id` and `region`, `[[users]]` and
`[[clients]]` arrays of tables, and a `[resource_servers]` table mapping each identifier to its
scope names. Every unknown key, missing key and bad value is reported in one `ValueError`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from gateway.devidp.model import AppClient, User, UserPool

_Kind = Literal["str", "optional_str", "bool", "int", "str_list", "str_table"]

_USER_KEYS: dict[str, _Kind] = {
    "username": "str",
    "password": "str",
    "sub": "optional_str",
    "email": "optional_str",
    "email_verified": "bool",
    "groups": "str_list",
    "attributes": "str_table",
}
_CLIENT_KEYS: dict[str, _Kind] = {
    "client_id": "str",
    "client_secret": "optional_str",
    "allowed_flows": "str_list",
    "allowed_scopes": "str_list",
    "callback_urls": "str_list",
    "logout_urls": "str_list",
    "enabled": "bool",
    "access_token_validity_seconds": "int",
    "id_token_validity_seconds": "int",
    "refresh_token_validity_seconds": "int",
    "auth_code_validity_seconds": "int",
    "refresh_token_rotation": "bool",
    "rotation_grace_seconds": "int",
    "revocation_enabled": "bool",
}
_REQUIRED = {"users": ("username", "password"), "clients": ("client_id",)}
_TOP_KEYS = {"pool_id", "region", "users", "clients", "resource_servers"}


def load_pool(path: Path) -> UserPool:
    """Read a pool from a TOML file; raise ValueError naming every bad key at once."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    problems: list[str] = []
    for key in sorted(set(data) - _TOP_KEYS):
        problems.append(f"{key}: unknown key")
    for key in ("pool_id", "region"):
        if key in data and not _fits(data[key], "str"):
            problems.append(f"{key}: must be a string")
    users = [
        User(**kw)
        for kw in _entries(data.get("users", []), "users", _USER_KEYS, problems, _Check(User))
    ]
    clients = [
        AppClient(**kw)
        for kw in _entries(
            data.get("clients", []), "clients", _CLIENT_KEYS, problems, _Check(AppClient)
        )
    ]
    servers = data.get("resource_servers", {})
    if not isinstance(servers, dict) or not all(_fits(v, "str_list") for v in servers.values()):
        problems.append("resource_servers: must map each identifier to a list of scope names")
        servers = {}
    if problems:
        raise ValueError(_report(path, problems))
    kwargs: dict[str, Any] = {k: data[k] for k in ("pool_id", "region") if k in data}
    try:
        return UserPool(users=users, clients=clients, resource_servers=servers, **kwargs)
    except ValueError as exc:
        raise ValueError(_report(path, str(exc).split("; "))) from exc


def _entries(
    raw: object,
    section: str,
    kinds: dict[str, _Kind],
    problems: list[str],
    check: _Check,
) -> list[dict[str, Any]]:
    """The well-formed tables of one array section; problems go to `problems`."""
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        problems.append(f"{section}: must be an array of tables ([[{section}]])")
        return []
    good = []
    for i, table in enumerate(raw):
        where = f"{section}[{i}]"
        found = len(problems)
        for key in sorted(set(table) - set(kinds)):
            problems.append(f"{where}.{key}: unknown key")
        for key in _REQUIRED[section]:
            if key not in table:
                problems.append(f"{where}.{key}: required")
        for key, value in table.items():
            kind = kinds.get(key)
            if kind is not None and not _fits(value, kind):
                problems.append(f"{where}.{key}: must be {_describe(kind)}")
        if len(problems) == found:
            problems.extend(f"{where}.{p}" for p in check(table))
        if len(problems) == found:
            good.append(table)
    return good


class _Check:
    """Builds one dataclass from a table and returns its validation problems (empty = fine)."""

    def __init__(self, cls: type[User] | type[AppClient]) -> None:
        self._cls = cls

    def __call__(self, table: dict[str, Any]) -> list[str]:
        try:
            self._cls(**table)
        except ValueError as exc:
            return str(exc).split("; ")
        return []


def _fits(value: object, kind: _Kind) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "optional_str":
        return isinstance(value, str)  # TOML has no null: leave the key out for None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "str_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _describe(kind: _Kind) -> str:
    return {
        "str": "a string",
        "optional_str": "a string (leave the key out for none)",
        "bool": "true or false",
        "int": "an integer",
        "str_list": "a list of strings",
        "str_table": "a table of string values",
    }[kind]


def _report(path: Path, problems: list[str]) -> str:
    return f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems)
