"""`cognito-gateway explain`: which rule decides a request and why, from the config alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gateway.cli import main

REPO = Path(__file__).resolve().parent.parent
CONFIG = f"""
[server]
public_url = "https://app.example.com"
[cognito]
user_pool_id = "eu-west-1_AbCdEf123"
client_id = "client"
[session]
secret = "{Fernet.generate_key().decode()}"
[auth]
public_paths = ["/static/*"]
allowed_groups = ["staff"]

[[auth.rules]]
paths = ["/health"]
action = "public"

[[auth.rules]]
paths = ["/*"]
methods = ["OPTIONS"]
action = "public"

[[auth.rules]]
paths = ["/admin", "/admin/*"]
groups = ["admins"]

[[auth.rules]]
paths = ["/api/*"]
scopes = ["orders/read"]
principal = "bearer"
unauthenticated = "deny"

[[auth.rules]]
paths = ["/partner/*"]
identity_provider = "PartnerSAML"
claims = {{ "custom:tenant" = ["acme", "beta"] }}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def explained(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The report of `explain --config CONFIG ARGS`, which must exit 0."""
    assert main(["explain", "--config", str(config), *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(["GET", "/admin/users", "--groups", "staff"], [
        "rule 2 (auth.rules[2]): paths /admin, /admin/*; methods any; action authenticate\n"
        "    -> matches: this rule decides",
        "rule 1 (auth.rules[1]): paths /*; methods OPTIONS; action public\n"
        "    -> method GET not listed",
        "groups (any of): admins  -> NOT MET (the principal's: staff)",
        "anonymous browser navigation: 302 to sign in",
        "anonymous, any other request: 401: sign-in required",
        "session (groups staff; scopes none): 403: access denied"], id="not-a-member"),
    pytest.param(["GET", "/admin", "--groups", "staff,admins"], [
        "groups (any of): admins  -> met (the principal's: staff, admins)",
        "session (groups staff, admins; scopes none): passes: proxied to the app with "
        "identity headers"], id="member"),
    pytest.param(["get", "/a/../%61dmin/x"], ["decided on: GET /admin/x", "rule 2"],
                 id="normalised-first"),
    pytest.param(["OPTIONS", "/admin/users"], [
        "rule 1 (auth.rules[1]): paths /*; methods OPTIONS; action public\n"
        "    -> matches: this rule decides",
        "anonymous, any other request: passes: proxied to the app without identity headers "
        "(public)"], id="cors-preflight"),
    pytest.param(["POST", "/api/orders", "--bearer", "--scopes", "openid orders/read"], [
        "scopes (all of): orders/read  -> met (the principal's: openid, orders/read)",
        "principal: bearer  -> met",
        "anonymous, any other request: 401: sign-in required",
        "bearer token (groups none; scopes openid, orders/read): passes"], id="api-bearer"),
    pytest.param(["GET", "/api/orders", "--scopes", "orders/read"], [
        "principal: bearer  -> NOT MET (the principal's: session)",
        "anonymous browser navigation: 401: sign-in required",
        "session (groups none; scopes orders/read): 403: access denied"],
        id="api-session-and-unauthenticated-deny"),
    pytest.param(["GET", "/partner/x", "--claim", "custom:tenant=beta"], [
        'requirements (unauthenticated = "auto", identity_provider = PartnerSAML)',
        "claims: custom:tenant = acme or beta  -> met",
        "anonymous browser navigation: 302 to sign in at identity provider PartnerSAML"],
        id="partner"),
    pytest.param(["GET", "/partner/x"], ["claims: custom:tenant = acme or beta  -> NOT MET"],
                 id="partner-claim-missing"),
    pytest.param(["DELETE", "/static/app.js"], [
        'no rule matches: the defaults decide (rule "default", by public_paths)'],
        id="default-public"),
    pytest.param(["PUT", "/other", "--groups", "staff"], [
        'no rule matches: the defaults decide (rule "default", by allowed_groups)',
        "anonymous browser navigation: 401: sign-in required (a PUT is never a navigation)"],
        id="default-groups"),
    pytest.param(["GET", "/public/%2e%2e/admin"], [
        "refused: 400 bad_target (ambiguous_dot_segment"], id="ambiguous"),
    pytest.param(["GET", "/admin;v=1/users"], [
        "refused: 400 (path parameters change the decision", "under rule 2"],
        id="params-change-the-rule"),
    pytest.param(["GET", "/oauth2/callback"], ["is the gateway's own"], id="gateway-endpoint"),
])
def test_explain_names_the_deciding_rule_and_the_answers(
        config: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        expected: list[str]) -> None:
    """The report shows the path decided on, the rules tried, each requirement's outcome for
    the given principal, and what anonymous requests and the principal get."""
    report = explained(config, capsys, *args)
    for text in expected:
        assert text in report, report


def test_explain_stops_at_the_deciding_rule(config: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Rules after the one that decides are not listed: they are never tried."""
    report = explained(config, capsys, "GET", "/admin")
    assert "rule 3" not in report
    assert "rule 4" not in report


def test_explain_with_a_bad_config_exits_2_listing_the_problems(tmp_path: Path) -> None:
    """An invalid configuration is reported by key, exit status 2, nothing explained."""
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG + '\n[[auth.rules]]\npaths = ["/admin/x"]\naction = "open"\n',
                   encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "explain", "--config", str(bad), "GET", "/admin/x"],
        cwd=REPO, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30,
        check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "auth.rules[5].action: must be one of public, authenticate, deny" in result.stderr
    assert "auth.rules[5].paths: never applies: rule 2 comes first" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_claim_argument_is_a_usage_error(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--claim takes NAME=VALUE; anything else is refused by the argument parser (exit 2)."""
    with pytest.raises(SystemExit) as exited:
        main(["explain", "--config", str(config), "GET", "/", "--claim", "custom:tenant"])
    assert exited.value.code == 2
    assert "must be NAME=VALUE" in capsys.readouterr().err
