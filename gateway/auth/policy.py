"""Which rule governs a path: public, API, or signed-in with the allowed groups.

The policy matches globs (`fnmatch` syntax: `*` also crosses `/`) against the decoded,
normalised path of a request target, never the raw one. `auth.public_paths` are served
without sign-in; `auth.api_paths` answer 401 instead of a sign-in redirect; everything else
needs a principal in `auth.allowed_groups` (any group when empty). The governing `Route`
names its rule for the `cognito_gateway_auth_decisions_total{rule}` label.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import translate

from gateway.config import AuthSettings
from gateway.target import RequestTarget

DEFAULT_RULE = "default"


@dataclass(frozen=True)
class Route:
    """What the path alone decides: equal for every reading of a target."""

    rule: str
    public: bool = False
    api: bool = False
    groups: frozenset[str] = frozenset()


def compile_globs(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One regular expression matching any of the globs; None for no globs."""
    return re.compile("|".join(translate(p) for p in patterns)) if patterns else None


class AccessPolicy:
    def __init__(self, settings: AuthSettings) -> None:
        groups = frozenset(settings.allowed_groups)
        self._public = compile_globs(settings.public_paths)
        self._api = compile_globs(settings.api_paths)
        self._public_route = Route(DEFAULT_RULE, public=True)
        self._api_route = Route(DEFAULT_RULE, api=True, groups=groups)
        self._signed_in = Route(DEFAULT_RULE, groups=groups)

    def route(self, method: str, target: RequestTarget | None) -> Route:
        """The route of a request; with no target (forward-auth without a trusted original
        URI), nothing is public."""
        if target is None:
            return self._signed_in
        path = target.decoded
        if self._public is not None and self._public.match(path):
            return self._public_route
        if self._api is not None and self._api.match(path):
            return self._api_route
        return self._signed_in
