"""[[auth.rules]] and GATEWAY_AUTH_RULES: every mistake in a rule is reported by key, at once,
before anything starts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from gateway.auth.explain import explain, given_principal
from gateway.auth.rules import Rule
from gateway.config import Settings, load_settings
from gateway.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
BASE_ENV = {
    "GATEWAY_SERVER_PUBLIC_URL": "https://app.example.com",
    "GATEWAY_COGNITO_USER_POOL_ID": "eu-west-1_AbCdEf123",
    "GATEWAY_COGNITO_CLIENT_ID": "client",
    "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
}


def settings_with(rules: Any, **env: str) -> Settings:
    """Settings whose rules come from GATEWAY_AUTH_RULES (a JSON array)."""
    return load_settings(environ={**BASE_ENV, "GATEWAY_AUTH_RULES": json.dumps(rules), **env})


def problems_of(rules: Any) -> dict[str, str]:
    """The problems reported for these rules, {key: messages joined by " / "}."""
    with pytest.raises(ConfigError) as caught:
        settings_with(rules)
    found: dict[str, str] = {}
    for problem in caught.value.problems:
        found[problem.key] = " / ".join(filter(None, [found.get(problem.key), problem.message]))
    return found


PATH = {"paths": ["/a/*"]}

INVALID = [
    # Keys, actions, types.
    pytest.param([{**PATH, "action": "allow"}], "auth.rules[0].action",
                 "must be one of public, authenticate, deny", id="unknown-action"),
    pytest.param([{**PATH, "group": ["admins"]}], "auth.rules[0].group", "unknown key",
                 id="unknown-key"),
    pytest.param(["/a/*"], "auth.rules[0]", "must be a table", id="rule-not-a-table"),
    pytest.param({"paths": ["/a"]}, "auth.rules", "must be an array of tables",
                 id="rules-not-an-array"),
    pytest.param([{"methods": ["GET"]}], "auth.rules[0].paths", "is required",
                 id="paths-missing"),
    pytest.param([{"paths": []}], "auth.rules[0].paths", "at least one glob", id="paths-empty"),
    pytest.param([{"paths": [1]}], "auth.rules[0].paths", "list of non-empty strings",
                 id="paths-wrong-type"),
    pytest.param([{**PATH, "groups": 5}], "auth.rules[0].groups", "list of non-empty strings",
                 id="groups-wrong-type"),
    pytest.param([{**PATH, "scopes": [""]}], "auth.rules[0].scopes",
                 "list of non-empty strings", id="scope-empty-string"),
    pytest.param([{**PATH, "methods": ["GET POST"]}], "auth.rules[0].methods",
                 "is not an HTTP method", id="method-not-a-token"),
    pytest.param([{**PATH, "principal": "robot"}], "auth.rules[0].principal",
                 "must be one of any, session, bearer", id="unknown-principal"),
    pytest.param([{**PATH, "unauthenticated": "maybe"}], "auth.rules[0].unauthenticated",
                 "must be one of auto, redirect, deny, allow", id="unknown-unauthenticated"),
    pytest.param([{**PATH, "claims": ["custom:tenant"]}], "auth.rules[0].claims",
                 "must be a table", id="claims-not-a-table"),
    pytest.param([{**PATH, "claims": {"custom:tenant": []}}],
                 "auth.rules[0].claims.custom:tenant", "non-empty list", id="claim-no-values"),
    pytest.param([{**PATH, "claims": {"custom:tenant": {"a": 1}}}],
                 "auth.rules[0].claims.custom:tenant", "string, number or boolean",
                 id="claim-value-a-table"),
    pytest.param([{**PATH, "claims": {"scope": "orders/read"}}], "auth.rules[0].claims.scope",
                 "use scopes", id="scope-as-claim"),
    pytest.param([{**PATH, "claims": {"client_id": "x"}}], "auth.rules[0].claims.client_id",
                 "protocol claim", id="claim-never-kept"),
    pytest.param([{**PATH, "identity_provider": "Partner SAML"}],
                 "auth.rules[0].identity_provider", "no spaces", id="provider-name"),
    pytest.param([{**PATH, "identity_provider": 7}], "auth.rules[0].identity_provider",
                 "provider's name", id="provider-not-text"),
    # Globs that can never match a normalised path.
    pytest.param([{"paths": ["admin/*"]}], "auth.rules[0].paths", "starts with /",
                 id="glob-relative"),
    pytest.param([{"paths": ["/a//b"]}], "auth.rules[0].paths", "//", id="glob-double-slash"),
    pytest.param([{"paths": ["/a/./b"]}], "auth.rules[0].paths", "dot segments",
                 id="glob-dot"),
    pytest.param([{"paths": ["/a/../b"]}], "auth.rules[0].paths", "dot segments",
                 id="glob-dot-dot"),
    pytest.param([{"paths": ["/a/."]}], "auth.rules[0].paths", "dot segments",
                 id="glob-trailing-dot"),
    pytest.param([{"paths": ["/a\\b"]}], "auth.rules[0].paths", "backslash",
                 id="glob-backslash"),
    pytest.param([{"paths": ["/a\u0000"]}], "auth.rules[0].paths", "control character",
                 id="glob-nul"),
    pytest.param([{"paths": ["/caf%C3%A9/*"]}], "auth.rules[0].paths", "decoded path",
                 id="glob-percent-encoded"),
    # Keys that only an authenticate rule takes.
    pytest.param([{**PATH, "action": "public", "scopes": ["orders/read"]}],
                 "auth.rules[0].scopes", 'action = "authenticate"', id="scope-on-public"),
    pytest.param([{**PATH, "action": "public", "groups": ["a"]}], "auth.rules[0].groups",
                 'action = "authenticate"', id="groups-on-public"),
    pytest.param([{**PATH, "action": "deny", "principal": "session"}],
                 "auth.rules[0].principal", 'action = "authenticate"', id="principal-on-deny"),
    pytest.param([{**PATH, "action": "deny", "claims": {"custom:x": "1"}}],
                 "auth.rules[0].claims", 'action = "authenticate"', id="claims-on-deny"),
    pytest.param([{**PATH, "action": "public", "unauthenticated": "deny"}],
                 "auth.rules[0].unauthenticated", 'action = "authenticate"',
                 id="unauthenticated-on-public"),
    pytest.param([{**PATH, "action": "deny", "identity_provider": "Partner"}],
                 "auth.rules[0].identity_provider", 'action = "authenticate"',
                 id="provider-on-deny"),
    pytest.param([{**PATH, "unauthenticated": "allow", "identity_provider": "Partner"}],
                 "auth.rules[0].identity_provider", "never used", id="provider-never-used"),
    # Rules an earlier one shadows.
    pytest.param([PATH, PATH], "auth.rules[1].paths", "rule 0 comes first",
                 id="shadowed-identical"),
    pytest.param([{"paths": ["/api/*"]}, {"paths": ["/api/v1/*", "/api/v2"]}],
                 "auth.rules[1].paths", "never applies", id="shadowed-by-prefix"),
    pytest.param([{"paths": ["/x"]}, {"paths": ["/**"], "action": "public"},
                  {"paths": ["/y/*"], "action": "deny"}],
                 "auth.rules[2].paths", "rule 1 comes first", id="shadowed-by-everything"),
    pytest.param([{"paths": ["/a/*"], "methods": ["GET"]},
                  {"paths": ["/a/b/*"], "methods": ["HEAD"]}],
                 "auth.rules[1].paths", "never applies", id="shadowed-get-covers-head"),
    pytest.param([{"paths": ["/a/*"]}, {"paths": ["/a/b"], "methods": ["POST"]}],
                 "auth.rules[1].paths", "never applies", id="shadowed-every-method"),
]


@pytest.mark.parametrize(("rules", "key", "message"), INVALID)
def test_a_bad_rule_is_reported_under_its_key(rules: Any, key: str, message: str) -> None:
    """Each mistake is one problem under the rule's own key, saying what is wrong."""
    found = problems_of(rules)
    assert key in found, found
    assert message in found[key]


@pytest.mark.parametrize("rules", [
    pytest.param([{"paths": ["/a/*"], "methods": ["GET"]}, {"paths": ["/a/*"]}],
                 id="method-subset-first"),
    pytest.param([{"paths": ["/a/*"], "methods": ["GET"]},
                  {"paths": ["/a/*"], "methods": ["POST"]}], id="other-methods"),
    pytest.param([{"paths": ["/a/b/*"]}, {"paths": ["/a/*"]}], id="narrow-first"),
    pytest.param([{"paths": ["/a*"]}, {"paths": ["/b"]}], id="unrelated-prefix"),
    pytest.param([{"paths": ["/a/?"]}, {"paths": ["/a/b"]}], id="wildcard-not-a-prefix"),
    pytest.param([{"paths": ["/api/*"]}, {"paths": ["/api"]}], id="area-and-its-root"),
])
def test_rules_that_can_apply_are_not_called_shadowed(rules: list[dict[str, Any]]) -> None:
    """A later rule that some request still reaches loads without a problem."""
    assert len(settings_with(rules).auth.rules) == len(rules)


def test_every_problem_of_every_rule_is_reported_at_once() -> None:
    """One load names each bad key of each rule, along with the other sections' problems."""
    rules = [{"paths": [], "action": "public", "groups": ["a"]},
             {"paths": ["/x//y"], "principal": "robot", "colour": "red"},
             {"paths": ["/ok"], "methods": ["GET"]},
             {"paths": ["/ok"], "methods": ["GET"]}]
    with pytest.raises(ConfigError) as caught:
        settings_with(rules, GATEWAY_SERVER_LISTEN="nope")
    keys = [problem.key for problem in caught.value.problems]
    assert sorted(keys) == sorted([
        "server.listen", "auth.rules[0].paths", "auth.rules[0].groups",
        "auth.rules[1].paths", "auth.rules[1].principal", "auth.rules[1].colour",
        "auth.rules[3].paths"])


@pytest.mark.parametrize(("value", "message"), [
    pytest.param("[", "is not a JSON array of rules", id="not-json"),
    pytest.param('{"paths": ["/a"]}', "must be an array of tables", id="an-object"),
])
def test_a_bad_environment_value_is_reported_once(value: str, message: str) -> None:
    """GATEWAY_AUTH_RULES that is not a JSON array is one problem under auth.rules."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={**BASE_ENV, "GATEWAY_AUTH_RULES": value})
    assert [(p.key, message in p.message) for p in caught.value.problems] == [
        ("auth.rules", True)]


def test_rules_from_the_file_and_the_environment_wins(tmp_path: Path) -> None:
    """[[auth.rules]] tables load in order, methods upper-cased; GATEWAY_AUTH_RULES replaces
    them all."""
    toml = tmp_path / "gateway.toml"
    toml.write_text('''
[[auth.rules]]
paths = ["/health"]
action = "public"

[[auth.rules]]
paths = ["/admin", "/admin/*"]
methods = ["get", "post"]
groups = ["admins"]
claims = { "custom:tenant" = ["acme", "beta"], "custom:level" = 3 }
identity_provider = "PartnerSAML"
''', encoding="utf-8")
    from_file = load_settings(toml, environ=BASE_ENV)
    assert from_file.auth.rules == [
        Rule(paths=("/health",), action="public"),
        Rule(paths=("/admin", "/admin/*"), methods=("GET", "POST"), groups=("admins",),
             claims=(("custom:tenant", ("acme", "beta")), ("custom:level", (3,))),
             identity_provider="PartnerSAML")]
    replaced = load_settings(toml, environ={**BASE_ENV, "GATEWAY_AUTH_RULES": "[]"})
    assert replaced.auth.rules == []


def test_rules_providers_join_the_sign_in_allow_list() -> None:
    """A provider a rule names may be chosen at /oauth2/sign_in like the allow-listed ones."""
    settings = settings_with([{"paths": ["/partner/*"], "identity_provider": "PartnerSAML"}],
                             GATEWAY_COGNITO_IDENTITY_PROVIDERS="Google")
    assert settings.identity_provider_names == {"Google", "PartnerSAML"}


@pytest.mark.parametrize(("rules", "pass_access_token", "keeps"), [
    pytest.param([], "false", False, id="no-rules"),
    pytest.param([], "true", True, id="passed-upstream"),
    pytest.param([{"paths": ["/a"], "scopes": ["s"]}], "false", True, id="session-scopes"),
    pytest.param([{"paths": ["/a"], "scopes": ["s"], "principal": "bearer"}], "false", False,
                 id="bearer-scopes-only"),
])
def test_sessions_keep_their_access_token_when_a_rule_reads_its_scopes(
        rules: list[dict[str, Any]], pass_access_token: str, keeps: bool) -> None:
    """A session must keep its access token to pass it upstream or to show its scopes."""
    settings = settings_with(rules, GATEWAY_HEADERS_PASS_ACCESS_TOKEN=pass_access_token)
    assert settings.session_needs_access_token is keeps


def test_run_with_bad_rules_exits_2_listing_each_problem(tmp_path: Path) -> None:
    """`cognito-gateway run` with bad rules prints each problem by key and exits 2."""
    toml = tmp_path / "bad.toml"
    toml.write_text('''
[[auth.rules]]
paths = ["/a/*"]
action = "allow"

[[auth.rules]]
paths = ["/b/./c"]
action = "public"
scopes = ["orders/read"]
''', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "--config", str(toml)], cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **BASE_ENV}, capture_output=True, text=True, timeout=30,
        check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for line in ["auth.rules[0].action: must be one of public, authenticate, deny",
                 "auth.rules[1].paths: '/b/./c' can never match a normalised path",
                 'auth.rules[1].scopes: a rule with action = "public" has no requirements']:
        assert line in result.stderr


DOCS = REPO / "docs" / "rules.md"
TOML_BLOCK = re.compile(r"```toml\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("index", range(len(TOML_BLOCK.findall(DOCS.read_text("utf-8")))))
def test_the_docs_recipes_are_valid_configurations(tmp_path: Path, index: int) -> None:
    """Each TOML recipe of docs/rules.md loads (with the required settings around it)."""
    block = TOML_BLOCK.findall(DOCS.read_text("utf-8"))[index]
    path = tmp_path / "recipe.toml"
    path.write_text(block, encoding="utf-8")
    assert load_settings(path, environ=BASE_ENV).auth.rules


def test_the_example_configuration_is_valid_and_explains(tmp_path: Path) -> None:
    """examples/rules.toml loads (its secret files stubbed) and its rules decide as its
    comments say."""
    secret = tmp_path / "secret"
    secret.write_text(Fernet.generate_key().decode(), encoding="utf-8")
    env = {"GATEWAY_COGNITO_CLIENT_SECRET_FILE": str(secret),
           "GATEWAY_SESSION_SECRET_FILE": str(secret)}
    settings = load_settings(REPO / "examples" / "rules.toml", environ=env)
    assert len(settings.auth.rules) == 8
    assert settings.identity_provider_names == {"PartnerSAML"}
    staff = given_principal(bearer=False, groups=["staff"], scopes=[], claims={})
    report = "\n".join(explain(settings.auth, "GET", "/partner/x", staff))
    assert "302 to sign in at identity provider PartnerSAML" in report
    report = "\n".join(explain(settings.auth, "DELETE", "/reports/q3", staff))
    assert "rule 7 (auth.rules[7])" in report
    assert "anonymous, any other request: 403: access denied" in report
