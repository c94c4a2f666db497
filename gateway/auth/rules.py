"""Per-route rules (`[[auth.rules]]`, or `GATEWAY_AUTH_RULES` as a JSON array): what one rule
says, and every way a list of rules can be wrong, found before anything starts.

A rule matches a request by `paths` (globs on the normalised path, as `auth.public_paths`) and
`methods` (none: every method; GET also matches HEAD); the first rule that matches decides, and
a request no rule matches gets the defaults (`public_paths`, `api_paths`, `allowed_groups`).
`action` "public" serves without sign-in, "deny" refuses everyone (403), "authenticate" (the
default) needs a principal that meets every requirement: `groups` (any one of them in
cognito:groups), `scopes` (all of them in the access token's `scope`), `principal` ("session",
"bearer" or "any") and `claims` (each claim equal to an accepted value or, when the token holds
a list, containing one). `unauthenticated` says what a request without a principal gets:
"auto" (a browser navigation is sent to sign in, anything else 401), "redirect" (sent to sign
in whenever a redirect can work: GET and HEAD), "deny" (401) or "allow" (proxied without
identity headers). `identity_provider` sends the sign-ins the rule starts straight to that
provider of the user pool.

`load_rules` turns the raw value into `Rule`s and reports every problem by key
(`auth.rules[2].groups`) at once; gateway/auth/policy.py compiles them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from gateway.auth.rules_globs import covers, never_matches
from gateway.errors import ConfigProblem
from gateway.identity import Identity

if TYPE_CHECKING:
    from collections.abc import Mapping

Action = Literal["public", "authenticate", "deny"]
PrincipalKind = Literal["any", "session", "bearer"]
WithoutPrincipal = Literal["auto", "redirect", "deny", "allow"]
ClaimValue = str | int | float | bool

ACTIONS: tuple[Action, ...] = ("public", "authenticate", "deny")
PRINCIPALS: tuple[PrincipalKind, ...] = ("any", "session", "bearer")
UNAUTHENTICATED: tuple[WithoutPrincipal, ...] = ("auto", "redirect", "deny", "allow")
REQUIREMENTS = ("groups", "scopes", "principal", "claims")
REFERENCE: tuple[tuple[str, str, str, str], ...] = (
    # (key, type, default, description): the configuration reference's table of rule keys.
    ("paths", "list of string", "required", "Globs on the normalised, decoded path "
     "(`*` also crosses `/`; `/admin/*` does not match `/admin`). At least one."),
    ("methods", "list of string", "[]", "Methods the rule applies to, any case; empty = every "
     "method. GET also matches HEAD."),
    ("action", "string", '"authenticate"', "public (no sign-in, no identity headers), "
     "authenticate (a principal meeting the requirements), deny (403 for everyone)."),
    ("groups", "list of string", "[]", "Requirement: the principal is in at least one of "
     "these cognito:groups."),
    ("scopes", "list of string", "[]", "Requirement: the access token's `scope` holds all of "
     "these (for a session: its current access token)."),
    ("principal", "string", '"any"', "Requirement: session (a browser sign-in), bearer (an "
     "`Authorization: Bearer` access token) or any."),
    ("claims", "table", "{}", "Requirement: claim = value or [values]; the token's claim "
     "equals one of them or, when it is a list, contains one. Values compare as text "
     "(true matches \"true\", 3 matches \"3\")."),
    ("unauthenticated", "string", '"auto"', "Without a principal: auto (navigation 302 to "
     "sign-in, else 401), redirect (302 for every GET/HEAD), deny (401), allow (proxied "
     "without identity headers)."),
    ("identity_provider", "string", "none", "The user pool's identity provider that sign-ins "
     "started by this rule go to (`identity_provider=` at /authorize)."),
)
KEYS = tuple(key for key, *_ in REFERENCE)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP method (RFC 9110 token)
_PROVIDER_NAME = re.compile(r"[^\s\x00-\x1f\x7f]{1,32}")


@dataclass(frozen=True)
class Rule:
    """One `[[auth.rules]]` entry, validated; `methods` upper-case, empty for every method."""

    paths: tuple[str, ...]
    methods: tuple[str, ...] = ()
    action: Action = "authenticate"
    groups: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    principal: PrincipalKind = "any"
    claims: tuple[tuple[str, tuple[ClaimValue, ...]], ...] = ()
    unauthenticated: WithoutPrincipal = "auto"
    identity_provider: str | None = None

    @property
    def method_set(self) -> frozenset[str]:
        """The methods matched (GET brings HEAD); empty for every method."""
        methods = frozenset(self.methods)
        return methods | {"HEAD"} if "GET" in methods else methods


def load_rules(raw: Any, key: str, *, from_env: bool) -> tuple[list[Rule], list[ConfigProblem]]:
    """Rules from a TOML array of tables, or a JSON array in an environment variable; every
    problem found, by key (`key[i].name`)."""
    if from_env and isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            return [], [ConfigProblem(key, f"is not a JSON array of rules: {exc.msg}")]
    if not isinstance(raw, list):
        return [], [ConfigProblem(key, "must be an array of tables ([[auth.rules]]; in the "
                                       "environment a JSON array of objects)")]
    rules: list[Rule] = []
    matchable: list[Rule] = []  # with their paths and methods valid: what shadowing compares
    problems: list[ConfigProblem] = []
    for index, table in enumerate(raw):
        reader = _RuleReader(table, f"{key}[{index}]", problems)
        rule = reader.rule()
        if reader.matches_validly:
            problems.extend(_shadowing(matchable, rule, f"{key}[{index}]"))
        rules.append(rule)
        matchable.append(rule if reader.matches_validly else Rule(paths=()))
    return rules, problems


def _shadowing(earlier: list[Rule], rule: Rule, key: str) -> list[ConfigProblem]:
    """A problem when an earlier rule matches every request `rule` would (it never applies)."""
    for index, other in enumerate(earlier):
        if not other.paths or not _methods_cover(other, rule):
            continue
        if all(any(covers(mine, glob) for mine in other.paths) for glob in rule.paths):
            return [ConfigProblem(f"{key}.paths", f"never applies: rule {index} comes first and "
                                  "matches every path and method this rule does")]
    return []


def _methods_cover(earlier: Rule, later: Rule) -> bool:
    if not earlier.methods:
        return True
    return bool(later.methods) and later.method_set <= earlier.method_set


class _RuleReader:
    """Reads one rule's table, adding a problem per bad key."""

    def __init__(self, table: Any, key: str, problems: list[ConfigProblem]) -> None:
        self._key = key
        self._problems = problems
        self._bad: set[str] = set()
        self._table: Mapping[str, Any] = table if isinstance(table, dict) else {}
        if not isinstance(table, dict):
            self._problem("", "must be a table (in the environment: a JSON object)")
        for name in self._table:
            if name not in KEYS:
                self._problem(name, f"unknown key (a rule has {', '.join(KEYS)})")

    @property
    def matches_validly(self) -> bool:
        """True when the rule's paths and methods are valid (whatever else is wrong)."""
        return not self._bad & {"", "paths", "methods"}

    def rule(self) -> Rule:
        """The rule as read; a key with a problem keeps its default."""
        action = cast("Action", self._choice("action", ACTIONS, "authenticate"))
        rule = Rule(
            paths=self._paths(), methods=self._methods(), action=action,
            groups=self._strings("groups"), scopes=self._strings("scopes"),
            principal=cast("PrincipalKind", self._choice("principal", PRINCIPALS, "any")),
            claims=self._claims(),
            unauthenticated=cast("WithoutPrincipal",
                                 self._choice("unauthenticated", UNAUTHENTICATED, "auto")),
            identity_provider=self._identity_provider())
        if action != "authenticate":
            self._only_for_authenticate(action)
        elif rule.identity_provider and rule.unauthenticated in {"deny", "allow"}:
            self._problem("identity_provider", f"is never used: unauthenticated = "
                          f"\"{rule.unauthenticated}\" sends nobody to sign in")
        return rule

    def _only_for_authenticate(self, action: str) -> None:
        for name in (*REQUIREMENTS, "unauthenticated", "identity_provider"):
            if name in self._table:
                self._problem(name, f"a rule with action = \"{action}\" has no requirements, "
                              "no sign-in and no unauthenticated mode: only action = "
                              "\"authenticate\" takes this key")

    def _problem(self, name: str, message: str) -> None:
        self._bad.add(name.partition(".")[0])
        self._problems.append(ConfigProblem(f"{self._key}.{name}" if name else self._key,
                                            message))

    def _strings(self, name: str) -> tuple[str, ...]:
        value = self._table.get(name, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self._problem(name, "must be a list of non-empty strings")
            return ()
        return tuple(value)

    def _choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self._table.get(name, default)
        if value not in choices:
            self._problem(name, f"must be one of {', '.join(choices)}, not {value!r}")
            return default
        return str(value)

    def _paths(self) -> tuple[str, ...]:
        if "paths" not in self._table:
            self._problem("paths", "is required: the globs of the paths this rule governs")
            return ()
        if self._table["paths"] == []:
            self._problem("paths", "must list at least one glob")
            return ()
        paths = self._strings("paths")
        for glob in paths:
            why = never_matches(glob)
            if why:
                self._problem("paths", f"{glob!r} can never match a normalised path: {why}")
        return paths

    def _methods(self) -> tuple[str, ...]:
        methods = self._strings("methods")
        for method in methods:
            if not _TOKEN.fullmatch(method):
                self._problem("methods", f"{method!r} is not an HTTP method")
        return tuple(dict.fromkeys(m.upper() for m in methods))

    def _identity_provider(self) -> str | None:
        value = self._table.get("identity_provider")
        if value is None:
            return None
        if not isinstance(value, str) or not _PROVIDER_NAME.fullmatch(value):
            self._problem("identity_provider", "must be the provider's name in the user pool "
                          "(1 to 32 characters, no spaces)")
            return None
        return value

    def _claims(self) -> tuple[tuple[str, tuple[ClaimValue, ...]], ...]:
        value = self._table.get("claims", {})
        if not isinstance(value, dict):
            self._problem("claims", "must be a table of claim = value or [values]")
            return ()
        claims = []
        for name, accepted in value.items():
            values = accepted if isinstance(accepted, list) else [accepted]
            where = f"claims.{name}"
            if not values or not all(isinstance(v, ClaimValue) for v in values):
                self._problem(where, "must be a string, number or boolean, or a non-empty "
                              "list of them")
            elif name == "scope":
                self._problem(where, "is not tested as a claim: use scopes")
            elif name not in Identity.from_claims({"sub": "-", name: "-"}).claims:
                self._problem(where, "is a protocol claim the gateway does not keep, so it "
                              "would never match")
            else:
                claims.append((name, tuple(values)))
        return tuple(claims)
