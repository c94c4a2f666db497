"""Which rule governs a request: its method and normalised path decide, nothing else.

`[[auth.rules]]` (gateway/auth/rules.py) are tried in order and the first whose paths and
methods match decides; its `Route` is labelled by its index ("0", "1", ...). A request no rule
matches gets the defaults, labelled "default": `auth.public_paths` are public, `auth.api_paths`
answer 401 instead of a sign-in redirect, everything else needs a principal in
`auth.allowed_groups` (any group when empty). Globs match the decoded, normalised path of a
request target (`fnmatch` syntax, `*` also crosses `/`), never the raw one.

Matching is one regular expression per method, compiled at start: the rules that apply to a
method are alternatives in rule order, so the first alternative that matches is the first
matching rule. Nothing is compiled per request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.auth.rules_globs import glob_source

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gateway.auth.rules import Action, PrincipalKind, Rule, WithoutPrincipal
    from gateway.config import AuthSettings
    from gateway.target import RequestTarget

DEFAULT_RULE = "default"
RULE = web.RequestKey("rule", str)
"""The label of the rule that decided the request ("0", "1", ..., or "default"), set by the
guard; the access log writes it as `rule`."""


def claim_text(value: Any) -> str:
    """How a claim value compares: as text, so that true matches "true" and 3 matches "3"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Route:
    """What the method and path alone decide: equal for every reading of a target.

    `claims` pairs each claim with its accepted values as text (see `claim_text`).
    """

    rule: str
    action: Action = "authenticate"
    unauthenticated: WithoutPrincipal = "auto"
    groups: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    principal: PrincipalKind = "any"
    claims: tuple[tuple[str, frozenset[str]], ...] = ()
    identity_provider: str | None = None

    @property
    def public(self) -> bool:
        return self.action == "public"

    def required(self) -> dict[str, Any]:
        """What a principal needs here, in the rules' own words (for 403 answers and
        `explain`): groups (any of), scopes (all of), principal, claims; or action deny."""
        if self.action != "authenticate":
            return {"action": self.action}
        required: dict[str, Any] = {}
        if self.groups:
            required["groups"] = sorted(self.groups)
        if self.scopes:
            required["scopes"] = sorted(self.scopes)
        if self.principal != "any":
            required["principal"] = self.principal
        if self.claims:
            required["claims"] = {name: sorted(values) for name, values in self.claims}
        return required


def route_of(index: int, rule: Rule) -> Route:
    """The route a rule gives the requests it matches."""
    return Route(
        rule=str(index), action=rule.action, unauthenticated=rule.unauthenticated,
        groups=frozenset(rule.groups), scopes=frozenset(rule.scopes), principal=rule.principal,
        claims=tuple((name, frozenset(claim_text(v) for v in values))
                     for name, values in rule.claims),
        identity_provider=rule.identity_provider)


def compile_globs(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One regular expression matching any of the globs; None for no globs."""
    return re.compile(glob_source(patterns)) if patterns else None


class RuleMatcher:
    """The index of the first rule matching a method and a decoded path."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        named = {method for rule in rules for method in rule.method_set}
        self._any_method = self._compile(rules, None)
        self._by_method = {method: self._compile(rules, method) for method in named}

    @staticmethod
    def _compile(rules: Sequence[Rule], method: str | None) -> re.Pattern[str] | None:
        """The alternatives, in rule order, of the rules that apply to `method` (None: a
        method no rule names, which only rules without methods match)."""
        alternatives = [f"(?P<r{i}>{glob_source(rule.paths)})" for i, rule in enumerate(rules)
                        if not rule.methods or method in rule.method_set]
        return re.compile("|".join(alternatives)) if alternatives else None

    def first(self, method: str, path: str) -> int | None:
        """The index of the first rule for `method` (upper-case) matching `path`, if any."""
        pattern = self._by_method.get(method, self._any_method)
        if pattern is None:
            return None
        found = pattern.match(path)
        return int(found.lastgroup[1:]) if found is not None and found.lastgroup else None


class AccessPolicy:
    """Routes requests by `auth.rules`, then by the defaults."""

    def __init__(self, settings: AuthSettings) -> None:
        groups = frozenset(settings.allowed_groups)
        self._rules = RuleMatcher(settings.rules) if settings.rules else None
        self._routes = tuple(route_of(i, rule) for i, rule in enumerate(settings.rules))
        self._public = compile_globs(settings.public_paths)
        self._api = compile_globs(settings.api_paths)
        self._public_route = Route(DEFAULT_RULE, action="public")
        self._api_route = Route(DEFAULT_RULE, unauthenticated="deny", groups=groups)
        self._signed_in = Route(DEFAULT_RULE, groups=groups)

    def route(self, method: str, target: RequestTarget | None) -> Route:
        """The route of a request; `method` as sent (rules compare it upper-case). With no
        target (forward-auth without a trusted original URI) the default signed-in route."""
        if target is None:
            return self._signed_in
        path = target.decoded
        if self._rules is not None:
            index = self._rules.first(method.upper(), path)
            if index is not None:
                return self._routes[index]
        if self._public is not None and self._public.match(path):
            return self._public_route
        if self._api is not None and self._api.match(path):
            return self._api_route
        return self._signed_in
