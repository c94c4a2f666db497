"""Fixes that can be applied: console paths and `aws cognito-idp update-user-pool-client` lines.

UpdateUserPoolClient resets every parameter it is not given to Cognito's default (a well-known
trap: an update that names only CallbackURLs turns OAuth off, drops the scopes and resets the
token validities). So every command here starts from the app client's current settings, as
DescribeUserPoolClient returned them, and changes only what its finding is about. The client
secret is never part of it: UpdateUserPoolClient does not take one.

Each command is computed from the settings read in this run: running two of them one after the
other would let the second undo the first. `ClientUpdates.combined()` gives one command that
applies every app client fix of the run at once.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gateway.aws import AppClientDescription, cli_option

if TYPE_CHECKING:
    from collections.abc import Mapping

COMMAND = ("aws", "cognito-idp", "update-user-pool-client")
LOGIN_PAGES = "Login pages > Managed login pages configuration > Edit"
CLIENT_INFORMATION = "App client information > Edit"
ONE_AT_A_TIME = ("The command keeps every other current setting (Cognito resets omitted ones): "
                 "run one such command per doctor run, or the combined one at the end.")


def client_console(pool_name: str, client: AppClientDescription, section: str) -> str:
    """The Cognito console path to a section of this app client's settings."""
    name = client.client_name or client.client_id
    return f"Cognito console > User pools > {pool_name} > App clients > {name} > {section}"


def merge_changes(*patches: Mapping[str, Any]) -> dict[str, Any]:
    """Several changes as one: lists are united (order kept), other values: the last one wins."""
    merged: dict[str, Any] = {}
    for patch in patches:
        for key, value in patch.items():
            before = merged.get(key)
            if isinstance(before, list) and isinstance(value, list):
                merged[key] = before + [v for v in value if v not in before]
            else:
                merged[key] = value
    return merged


def with_added(current: tuple[str, ...], *values: str) -> list[str]:
    """`current` with `values` appended where missing."""
    return list(current) + [v for v in values if v not in current]


class ClientUpdates:
    """Update commands for one described app client; remembers each change for `combined()`."""

    def __init__(self, client: AppClientDescription, region: str) -> None:
        self._client = client
        self._region = region
        self._changes: list[Mapping[str, Any]] = []

    def request(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """The UpdateUserPoolClient parameters: every current setting, then `changes`."""
        return {"UserPoolId": self._client.user_pool_id, "ClientId": self._client.client_id,
                **self._client.current_settings, **changes}

    def command(self, changes: Mapping[str, Any]) -> tuple[str, ...]:
        """The `aws` argv that applies `changes` and keeps every other setting."""
        self._changes.append(changes)
        return update_command(self._region, self.request(changes))

    def combined(self) -> tuple[str, ...] | None:
        """One command applying every change made so far; None unless there are two or more."""
        if len(self._changes) < 2:
            return None
        return update_command(self._region, self.request(merge_changes(*self._changes)))


def update_command(region: str, request: Mapping[str, Any]) -> tuple[str, ...]:
    """UpdateUserPoolClient parameters as an AWS CLI argv (values never need a shell to expand).

    Strings and numbers are one argument, lists one argument per item, booleans the flag or its
    `--no-` form, structures JSON (which the CLI accepts for any structure parameter).
    """
    first = ("UserPoolId", "ClientId")
    argv = [*COMMAND, "--region", region]
    for key in (*first, *sorted(k for k in request if k not in first)):
        argv.extend(_arguments(key, request[key]))
    return tuple(argv)


def _arguments(member: str, value: Any) -> list[str]:
    option = cli_option(member)
    if isinstance(value, bool):
        return [option if value else "--no-" + option[2:]]
    if isinstance(value, list):
        return [option, *(str(v) for v in value)] if value else []
    if isinstance(value, dict):
        return [option, json.dumps(value, separators=(",", ":"), sort_keys=True)]
    return [option, str(value)]
