"""`cognito-gateway explain [--config FILE] METHOD PATH [--groups a,b] [--scopes s] [--bearer]
[--claim NAME=VALUE]`: which rule decides a request, and why, without starting anything.

The configuration is loaded and validated as `run` does it (exit 2 with every problem), then
the request is put through the gateway's own pieces: the target normaliser, the policy and the
judge. The report names the path decided on, each rule tried and why it does not match, the
deciding rule with the outcome of each of its requirements for the given principal, and the
answer an anonymous browser navigation, any other anonymous request, and the given principal
(a session, or a bearer token with `--bearer`) would get. A target the gateway refuses, or
whose `;params` reading falls under another rule, is reported as refused with 400. Nothing is
contacted; no token or secret is read or printed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.auth.guard import REDIRECTABLE, Decision, judge, unmet
from gateway.auth.policy import AccessPolicy, Route
from gateway.auth.principal import Principal
from gateway.auth.rules_globs import glob_source
from gateway.config import AuthSettings, load_settings
from gateway.errors import BadTarget, ConfigError
from gateway.identity import Identity
from gateway.target import RequestTarget, parse_target

if TYPE_CHECKING:
    from gateway.auth.rules import Rule

OWN_PREFIX = "/oauth2/"
ANSWERS = {
    "public": "passes: proxied to the app without identity headers (public)",
    "anonymous": "passes: proxied to the app without identity headers "
                 '(unauthenticated = "allow")',
    "allowed": "passes: proxied to the app with identity headers",
    "bearer": "passes: proxied to the app with identity headers",
    "redirected": "302 to sign in",
    "unauthenticated": "401: sign-in required",
    "forbidden": "403: access denied",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `explain` command's arguments."""
    parser.add_argument("method", metavar="METHOD", help="the request's method, e.g. GET")
    parser.add_argument("path", metavar="PATH", help="the request target, e.g. /admin/users?x=1")
    parser.add_argument("--config", type=Path, help="TOML file; GATEWAY_* variables override it")
    parser.add_argument("--groups", default="", metavar="A,B",
                        help="the principal's cognito:groups, comma-separated")
    parser.add_argument("--scopes", default="", metavar="S",
                        help="the principal's access-token scopes, comma- or space-separated")
    parser.add_argument("--bearer", action="store_true",
                        help="the principal is a bearer token (default: a browser session)")
    parser.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE",
                        type=_claim, help="a claim of the principal's token (repeatable)")


def main(args: argparse.Namespace) -> int:
    """Run `explain`: 0 with the report on stdout, 2 with the problems of a bad config."""
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"cognito-gateway: {exc}", file=sys.stderr)
        return 2
    who = given_principal(bearer=args.bearer, groups=_words(args.groups),
                          scopes=_words(args.scopes), claims=dict(args.claim))
    print("\n".join(explain(settings.auth, args.method, args.path, who)))
    return 0


def given_principal(*, bearer: bool, groups: list[str], scopes: list[str],
                    claims: dict[str, str]) -> Principal:
    """The principal described on the command line."""
    identity = Identity(sub="(given)", username="(given principal)", groups=tuple(groups),
                        claims=dict(claims))
    return Principal("bearer" if bearer else "session", identity, 0.0, {},
                     scopes=frozenset(scopes))


def explain(auth: AuthSettings, method: str, raw_target: str, who: Principal) -> list[str]:
    """The report's lines (see the module docstring)."""
    method = method.upper()
    lines = [f"{method} {raw_target}"]
    try:
        target = parse_target(raw_target)
    except BadTarget as exc:
        return [*lines, f"  refused: 400 bad_target ({exc.detail}: {exc}); no rule is tried"]
    if target.path.startswith(OWN_PREFIX) or target.path == OWN_PREFIX.rstrip("/"):
        return [*lines, f"  {target.path} is the gateway's own: its endpoints answer it (an "
                        "unknown one 404), it is never proxied and no rule applies"]
    lines.append(f"  decided on: {method} {target.decoded}  (the normalised, decoded path)")
    policy = AccessPolicy(auth)
    route = policy.route(method, target)
    for reading in target.readings[1:]:
        other = policy.route(method, reading)
        if other != route:
            return [*lines, f"  refused: 400 (path parameters change the decision: this path "
                            f"falls under {_label(route)}, and {reading.path}, as a server "
                            f"that drops ;params reads it, under {_label(other)})"]
    lines += _rules_tried(auth.rules, method, target, route)
    lines += _requirements(route, who)
    lines += _answers(route, method, who)
    return lines


def _rules_tried(rules: list[Rule], method: str, target: RequestTarget,
                 route: Route) -> list[str]:
    lines = [""]
    for index, rule in enumerate(rules):
        path_matches = re.match(glob_source(rule.paths), target.decoded) is not None
        method_matches = not rule.methods or method in rule.method_set
        what = (f"  rule {index} (auth.rules[{index}]): paths {', '.join(rule.paths)}; "
                f"methods {', '.join(rule.methods) or 'any'}; action {rule.action}")
        if str(index) == route.rule:
            return [*lines, f"{what}\n    -> matches: this rule decides"]
        reason = ("path does not match" if not path_matches
                  else f"method {method} not listed" if not method_matches else "matches")
        lines.append(f"{what}\n    -> {reason}")
    defaults = "public_paths" if route.public else (
        "api_paths" if route.unauthenticated == "deny" else "allowed_groups")
    return [*lines, f"  no rule matches: the defaults decide (rule \"default\", by {defaults})"]


def _requirements(route: Route, who: Principal) -> list[str]:
    if route.action != "authenticate":
        return []
    missing = set(unmet(route, who))
    checks = [
        ("groups", "groups (any of)", ", ".join(sorted(route.groups)),
         f"the principal's: {', '.join(who.identity.groups) or 'none'}"),
        ("scopes", "scopes (all of)", ", ".join(sorted(route.scopes)),
         f"the principal's: {', '.join(sorted(who.scopes or ())) or 'none'}"),
        ("principal", "principal", route.principal if route.principal != "any" else "",
         f"the principal's: {who.kind}"),
        ("claims", "claims", "; ".join(f"{name} = {' or '.join(sorted(values))}"
                                      for name, values in route.claims), ""),
    ]
    lines = ["", f"  requirements (unauthenticated = \"{route.unauthenticated}\""
                 + (f", identity_provider = {route.identity_provider}"
                    if route.identity_provider else "") + "):"]
    for name, label, needed, has in checks:
        if not needed:
            lines.append(f"    {label}: none")
            continue
        verdict = "NOT MET" if name in missing else "met"
        lines.append(f"    {label}: {needed}  -> {verdict}" + (f" ({has})" if has else ""))
    return lines


def _answers(route: Route, method: str, who: Principal) -> list[str]:
    redirectable = method in REDIRECTABLE

    def answer(decision: Decision) -> str:
        words = ANSWERS[decision.outcome]
        if decision.outcome == "redirected" and route.identity_provider:
            words += f" at identity provider {route.identity_provider}"
        return words

    navigation = judge(route, None, navigation=redirectable, redirectable=redirectable)
    other = judge(route, None, navigation=False, redirectable=redirectable)
    given = judge(route, who, navigation=redirectable, redirectable=redirectable)
    scopes = ", ".join(sorted(who.scopes or ())) or "none"
    kind = "bearer token" if who.kind == "bearer" else "session"
    return ["", "  answers:",
            f"    anonymous browser navigation: {answer(navigation)}"
            + ("" if redirectable else f" (a {method} is never a navigation)"),
            f"    anonymous, any other request: {answer(other)}",
            f"    {kind} (groups {', '.join(who.identity.groups) or 'none'}; scopes {scopes}): "
            f"{answer(given)}"]


def _label(route: Route) -> str:
    return f"rule {route.rule}" if route.rule.isdigit() else f'rule "{route.rule}"'


def _claim(value: str) -> tuple[str, str]:
    name, sep, text = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"must be NAME=VALUE, not {value!r}")
    return name, text


def _words(value: str) -> list[str]:
    return [word for word in re.split(r"[,\s]+", value) if word]
