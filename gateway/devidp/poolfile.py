"""Loading a user pool from a TOML file.

The file mirrors the dataclasses: top-level `pool_id` and `region`, `[[users]]`,
`[[clients]]` and `[[identity_providers]]` (each with its own `[[identity_providers.users]]`)
arrays of tables, and a `[resource_servers]` table mapping each identifier to its scope names.
Every unknown key, missing key and bad value is reported in one `ValueError`. Every key added
since the first version is optional, so older files load unchanged.
"""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Any, Literal

from gateway.devidp.model import AppClient, User, UserPool
from gateway.devidp.providers import IdentityProvider, ProviderUser

if TYPE_CHECKING:
    from pathlib import Path

_Kind = Literal["str", "optional_str", "bool", "int", "str_list", "str_table", "table_list"]
_Model = type[User] | type[AppClient] | type[IdentityProvider] | type[ProviderUser]

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
    "client_name": "optional_str",
    "supported_identity_providers": "str_list",
}
_PROVIDER_KEYS: dict[str, _Kind] = {
    "name": "str",
    "type": "str",
    "identifiers": "str_list",
    "issuer": "optional_str",
    "users": "table_list",
}
_PROVIDER_USER_KEYS: dict[str, _Kind] = {
    "user_id": "str",
    "password": "str",
    "email": "optional_str",
    "email_verified": "bool",
    "attributes": "str_table",
}
_TOP_KEYS = {"pool_id", "region", "users", "clients", "resource_servers", "identity_providers",
             "prevent_user_existence_errors"}


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
    if not _fits(data.get("prevent_user_existence_errors", True), "bool"):
        problems.append("prevent_user_existence_errors: must be true or false")
    users = [
        User(**kw)
        for _, kw in _entries(data.get("users", []), "users", _USER_KEYS, problems,
                              required=("username", "password"), check=_Check(User))
    ]
    clients = [
        AppClient(**kw)
        for _, kw in _entries(data.get("clients", []), "clients", _CLIENT_KEYS, problems,
                              required=("client_id",), check=_Check(AppClient))
    ]
    providers = _providers(data.get("identity_providers", []), problems)
    servers = data.get("resource_servers", {})
    if not isinstance(servers, dict) or not all(_fits(v, "str_list") for v in servers.values()):
        problems.append("resource_servers: must map each identifier to a list of scope names")
        servers = {}
    if problems:
        raise ValueError(_report(path, problems))
    kwargs: dict[str, Any] = {k: data[k] for k in ("pool_id", "region",
                                                   "prevent_user_existence_errors") if k in data}
    try:
        return UserPool(users=users, clients=clients, resource_servers=servers,
                        identity_providers=providers, **kwargs)
    except ValueError as exc:
        raise ValueError(_report(path, str(exc).split("; "))) from exc


def _providers(raw: object, problems: list[str]) -> list[IdentityProvider]:
    """The well-formed [[identity_providers]], each with its [[identity_providers.users]].

    The users of every provider table are checked, even when the table has problems itself.
    """
    good = dict(_entries(raw, "identity_providers", _PROVIDER_KEYS, problems,
                         required=("name",)))
    providers = []
    for i, table in enumerate(raw if isinstance(raw, list) else []):
        raw_users = table.get("users", []) if isinstance(table, dict) else None
        if not _fits(raw_users, "table_list"):
            continue  # reported by the provider's own check
        found = len(problems)
        users = [
            ProviderUser(**kw)
            for _, kw in _entries(raw_users, f"identity_providers[{i}].users",
                                  _PROVIDER_USER_KEYS, problems,
                                  required=("user_id", "password"), check=_Check(ProviderUser))
        ]
        if i not in good or len(problems) > found:
            continue
        fields = {**good[i], "users": users}
        problems.extend(f"identity_providers[{i}].{p}" for p in _Check(IdentityProvider)(fields))
        if len(problems) == found:
            providers.append(IdentityProvider(**fields))
    return providers


def _entries(
    raw: object,
    section: str,
    kinds: dict[str, _Kind],
    problems: list[str],
    *,
    required: tuple[str, ...],
    check: _Check | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """The well-formed tables of one array section, with their indexes; problems go to
    `problems`."""
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        problems.append(f"{section}: must be an array of tables ([[{section}]])")
        return []
    good = []
    for i, table in enumerate(raw):
        where = f"{section}[{i}]"
        found = len(problems)
        for key in sorted(set(table) - set(kinds)):
            problems.append(f"{where}.{key}: unknown key")
        for key in required:
            if key not in table:
                problems.append(f"{where}.{key}: required")
        for key, value in table.items():
            kind = kinds.get(key)
            if kind is not None and not _fits(value, kind):
                problems.append(f"{where}.{key}: must be {_describe(kind)}")
        if len(problems) == found and check is not None:
            problems.extend(f"{where}.{p}" for p in check(table))
        if len(problems) == found:
            good.append((i, table))
    return good


class _Check:
    """Builds one dataclass from a table and returns its validation problems (empty = fine)."""

    def __init__(self, cls: _Model) -> None:
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
    if kind == "table_list":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _describe(kind: _Kind) -> str:
    return {
        "str": "a string",
        "optional_str": "a string (leave the key out for none)",
        "bool": "true or false",
        "int": "an integer",
        "str_list": "a list of strings",
        "str_table": "a table of string values",
        "table_list": "an array of tables",
    }[kind]


def _report(path: Path, problems: list[str]) -> str:
    return f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems)
