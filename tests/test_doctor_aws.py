"""The doctor's API checks against moto's Cognito user pools API, run as a real server.

Each misconfiguration gets its own user pool in moto; the doctor reads it through the SDK's
default credential chain (`AWS_ENDPOINT_URL` and static keys in the environment) and must name
it, with its fix. Where moto differs from Cognito the test says so, with moto's source:

- moto's UpdateUserPoolClient MERGES the given fields into the client
  (moto/cognitoidp/models.py, CognitoIdpBackend.update_user_pool_client:
  `client.extended_config.update(...)`); Cognito resets every omitted field to its default.
  So an update command is also applied to a fresh client that holds only defaults: what it
  then shows is what Cognito would show after the command.
- DescribeUserPoolDomain always answers Status ACTIVE and never CustomDomainConfig
  (models.py, CognitoIdpUserPoolDomain.to_json), and DescribeUserPool puts a custom domain in
  `Domain`, never in `CustomDomain` (CognitoIdpUserPool.to_json). Domain status is covered by a
  table on `domain_findings` with described domains.
- RefreshTokenRotation, DeletionProtection and UserPoolAddOns are stored and echoed as given
  (extended_config), without Cognito's validation (grace 0-60 s); rotation itself is not
  implemented. moto validates no app client setting at all (Cognito refuses OAuth flows
  without scopes, code without a callback URL, code with client_credentials).
- A client has no AccessTokenValidity / TokenValidityUnits unless created with them
  (Cognito describes 60 / 60 / 30 with units); the doctor applies Cognito's defaults.
- With IAM enforcement on (INITIAL_NO_AUTH_ACTION_COUNT, moto/core/authorization.py) moto
  answers a denied JSON-protocol call with a Query-style XML error (HTTP 403,
  `<Code>AccessDenied</Code>`); Cognito answers JSON `AccessDeniedException`.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import os
import shlex
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.fernet import Fernet

from gateway.app import RECONFIGURE
from gateway.aws import (
    DomainDescription,
    ResourceNotFound,
    UserPoolDescription,
    open_cognito_idp,
)
from gateway.config import load_settings
from gateway.devidp import AppClient, DevIdp, UserPool
from gateway.doctor import (
    Finding,
    Status,
    check_app_client,
    confirmed_cause,
    read_app_client,
    run_doctor,
)
from gateway.doctor.apichecks import ALL_FIXES, API
from gateway.doctor.facts import AppClientFacts, Expectation
from gateway.doctor.iam import DOCTOR_ACTIONS
from gateway.doctor.pool import domain_findings
from tests.conftest import ALICE, JWT_SHAPED, Secrets, log_events, start_gateway
from tests.support.browser import ScriptedBrowser
from tests.support.moto_server import (
    MotoAdmin,
    MotoServer,
    aws_environment,
    start_moto_server,
)

if TYPE_CHECKING:
    import socket

REGION = "eu-west-1"
PUBLIC_URL = "https://app.example.com"
REDIRECT_URI = PUBLIC_URL + "/oauth2/callback"
LOGOUT_URI = PUBLIC_URL + "/oauth2/signed_out"
AWS_SECRET = "moto-secret-access-key-" + uuid.uuid4().hex
CONFIGURED_SECRET = "configured-client-secret-" + uuid.uuid4().hex
REPO = Path(__file__).resolve().parent.parent
GOOD_CLIENT: dict[str, Any] = {
    "ClientName": "gateway", "GenerateSecret": True,
    "AllowedOAuthFlowsUserPoolClient": True, "AllowedOAuthFlows": ["code"],
    "AllowedOAuthScopes": ["openid", "email", "profile"],
    "CallbackURLs": [REDIRECT_URI], "LogoutURLs": [LOGOUT_URI],
    "SupportedIdentityProviders": ["COGNITO"],
    "ExplicitAuthFlows": ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"],
    "EnableTokenRevocation": True, "PreventUserExistenceErrors": "ENABLED",
    "AccessTokenValidity": 60, "IdTokenValidity": 60, "RefreshTokenValidity": 30,
    "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes",
                           "RefreshToken": "days"},
}
API_CHECKS = ("aws api", "user pool", "app client", "oauth flows", "callback URLs",
              "sign-out URLs", "oauth scopes", "client secret", "identity providers",
              "auth flows", "token validity", "refresh rotation", "token revocation", "domain")
CLIENT_ENV_KEYS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
                   "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_DEFAULT_REGION", "AWS_REGION",
                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server for the module; each test makes its own user pools in it."""
    server = start_moto_server(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


def use_aws(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """The SDK's default chain sees exactly `env` (nothing from this machine's AWS setup)."""
    for key in CLIENT_ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def aws_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
            secrets: Secrets) -> dict[str, str]:
    """Static dummy keys and AWS_ENDPOINT_URL=moto, in this process's environment."""
    secrets.add(AWS_SECRET, CONFIGURED_SECRET)
    env = aws_environment(moto.url, AWS_SECRET, tmp_path)
    use_aws(monkeypatch, env)
    return env


@pytest.fixture
async def admin(moto: MotoServer) -> AsyncIterator[MotoAdmin]:
    async with MotoAdmin.connect(moto.url, REGION, AWS_SECRET) as connected:
        yield connected


@dataclass
class Built:
    """A user pool made for one test, and the gateway config (GATEWAY_*) that points at it."""

    pool_id: str
    client: dict[str, Any]
    config: dict[str, str]

    @property
    def client_id(self) -> str:
        return str(self.client["ClientId"])


Setup = Callable[[MotoAdmin, Built], Awaitable[dict[str, str]]]


async def build(admin: MotoAdmin, secrets: Secrets, *, client: dict[str, Any] | None = None,
                pool: dict[str, Any] | None = None, domain: str | None = "prefix",
                config: dict[str, str] | None = None, setup: Setup | None = None,
                public_url: str = PUBLIC_URL) -> Built:
    """A pool with GOOD_CLIENT (+ `client`; None drops a key) and a domain, and its config."""
    pool_id = await admin.create_pool(unique("gateway"), **(pool or {}))
    settings = {k: v for k, v in (GOOD_CLIENT | (client or {})).items() if v is not None}
    created = await admin.create_client(pool_id, **settings)
    secrets.add(created.get("ClientSecret"))
    env = {"GATEWAY_SERVER_PUBLIC_URL": public_url, "GATEWAY_COGNITO_USER_POOL_ID": pool_id,
           "GATEWAY_COGNITO_CLIENT_ID": created["ClientId"],
           "GATEWAY_COGNITO_CLIENT_SECRET": created.get("ClientSecret", ""),
           "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode()}
    if domain == "prefix":
        prefix = unique("gw")
        await admin.create_domain(pool_id, prefix)
        env["GATEWAY_COGNITO_DOMAIN"] = f"https://{prefix}.auth.{REGION}.amazoncognito.com"
    elif domain == "custom":
        host = f"{unique('auth')}.example.com"
        await admin.create_domain(pool_id, host)
        env["GATEWAY_COGNITO_DOMAIN"] = f"https://{host}"
    built = Built(pool_id, created, env)
    env.update(config or {})
    if setup:
        env.update(await setup(admin, built))
    built.config = {k: v for k, v in env.items() if v}
    return built


async def check(built: Built) -> tuple[AppClientFacts | None, list[Finding]]:
    return await check_app_client(load_settings(environ=built.config))


def finding(findings: list[Finding], check_id: str, status: Status | None = None) -> Finding:
    """The (first) finding of `check_id`, with `status` when given."""
    for f in findings:
        if f.check == check_id and (status is None or f.status is status):
            return f
    pytest.fail(f"no {check_id!r} ({status}) finding in {[(f.check, f.status) for f in findings]}")


async def _client_of_another_pool(admin: MotoAdmin, _built: Built) -> dict[str, str]:
    other = await admin.create_pool(unique("other"))
    client = await admin.create_client(other, ClientName="elsewhere")
    return {"GATEWAY_COGNITO_CLIENT_ID": str(client["ClientId"])}


async def _domain_of_another_pool(admin: MotoAdmin, _built: Built) -> dict[str, str]:
    other = await admin.create_pool(unique("other"))
    prefix = unique("theirs")
    await admin.create_domain(other, prefix)
    return {"GATEWAY_COGNITO_DOMAIN": f"https://{prefix}.auth.{REGION}.amazoncognito.com"}


@dataclass(frozen=True)
class Case:
    check: str
    status: Status
    phrase: str
    client: dict[str, Any] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    pool: dict[str, Any] = field(default_factory=dict)
    domain: str | None = "prefix"
    setup: Setup | None = None
    changes: frozenset[str] = frozenset()   # what the update command changes; empty = none


def near_miss(registered: str, how: str) -> Case:
    return Case("callback URLs", Status.FAIL, f"registered instead: {registered} ({how}",
                client={"CallbackURLs": [registered]}, changes=frozenset({"CallbackURLs"}))


MINUTES = {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "days"}
CASES = {
    "client id of another pool": Case(
        "app client", Status.FAIL, "This pool's app clients: gateway (",
        setup=_client_of_another_pool),
    "pool id unknown in its region": Case(
        "user pool", Status.FAIL, f"does not exist in {REGION}",
        config={"GATEWAY_COGNITO_USER_POOL_ID": f"{REGION}_NoSuchPool1"}),
    "cognito.region is not the pool's region": Case(
        "pool region", Status.FAIL, f"lives in {REGION}",
        config={"GATEWAY_COGNITO_REGION": "us-east-2"}),
    "OAuth off on the client": Case(
        "oauth flows", Status.FAIL, "OAuth 2.0 is off on the app client",
        client={"AllowedOAuthFlowsUserPoolClient": False},
        changes=frozenset({"AllowedOAuthFlowsUserPoolClient"})),
    "implicit grant only": Case(
        "oauth flows", Status.FAIL, "allows the OAuth flows implicit, not the authorization code",
        client={"AllowedOAuthFlows": ["implicit"]}, changes=frozenset({"AllowedOAuthFlows"})),
    "callback with a trailing slash": near_miss(REDIRECT_URI + "/", "with a trailing slash"),
    "callback with http": near_miss(REDIRECT_URI.replace("https", "http"),
                                    "http:// instead of https://"),
    "callback with upper case": near_miss(REDIRECT_URI.replace("app.", "App."),
                                          "different letter case"),
    "callback with the default port": near_miss(REDIRECT_URI.replace(".com", ".com:443"),
                                                "the default port 443 written out"),
    "callback on another port": near_miss(REDIRECT_URI.replace(".com", ".com:8443"),
                                          "port 8443 instead of 443"),
    "callback not registered": Case(
        "callback URLs", Status.FAIL, "registered: https://elsewhere.example.org/cb",
        client={"CallbackURLs": ["https://elsewhere.example.org/cb"]},
        changes=frozenset({"CallbackURLs"})),
    "sign-out URL missing": Case(
        "sign-out URLs", Status.FAIL, f"{LOGOUT_URI} is not among", client={"LogoutURLs": None},
        changes=frozenset({"LogoutURLs"})),
    "custom logout_uri not registered": Case(
        "sign-out URLs", Status.FAIL, "path /oauth2/signed_out instead of /bye",
        config={"GATEWAY_COGNITO_LOGOUT_URI": PUBLIC_URL + "/bye"},
        changes=frozenset({"LogoutURLs"})),
    "scopes missing": Case(
        "oauth scopes", Status.FAIL, "asks for email, profile",
        client={"AllowedOAuthScopes": ["openid"]}, changes=frozenset({"AllowedOAuthScopes"})),
    "openid missing": Case(
        "oauth scopes", Status.FAIL, "Without openid Cognito issues no ID token",
        client={"AllowedOAuthScopes": ["email", "profile"]},
        changes=frozenset({"AllowedOAuthScopes"})),
    "secret on the client, none configured": Case(
        "client secret", Status.FAIL, "has a client secret but cognito.client_secret is empty",
        config={"GATEWAY_COGNITO_CLIENT_SECRET": ""}),
    "secret configured, none on the client": Case(
        "client secret", Status.FAIL, "has no client secret but cognito.client_secret is set",
        client={"GenerateSecret": False},
        config={"GATEWAY_COGNITO_CLIENT_SECRET": CONFIGURED_SECRET}),
    "secrets differ": Case(
        "client secret", Status.FAIL, "differs from the app client's secret",
        config={"GATEWAY_COGNITO_CLIENT_SECRET": CONFIGURED_SECRET}),
    "no identity provider": Case(
        "identity providers", Status.FAIL, "allows no identity provider",
        client={"SupportedIdentityProviders": None},
        changes=frozenset({"SupportedIdentityProviders"})),
    "configured provider not allowed": Case(
        "identity providers", Status.FAIL, "names Google, which the app client does not allow",
        config={"GATEWAY_COGNITO_IDENTITY_PROVIDERS": "Google"},
        changes=frozenset({"SupportedIdentityProviders"})),
    "refresh auth flow missing": Case(
        "auth flows", Status.FAIL, "lacks ALLOW_REFRESH_TOKEN_AUTH",
        client={"ExplicitAuthFlows": ["ALLOW_USER_SRP_AUTH"]},
        changes=frozenset({"ExplicitAuthFlows"})),
    "no domain": Case("domain", Status.FAIL, "has no domain", domain=None,
                      config={"GATEWAY_COGNITO_DOMAIN":
                              f"https://missing.auth.{REGION}.amazoncognito.com"}),
    "cognito.domain of another pool": Case(
        "domain", Status.FAIL, "belongs to user pool", setup=_domain_of_another_pool),
    "cognito.domain unknown": Case(
        "domain", Status.FAIL, "is not a domain of user pool",
        config={"GATEWAY_COGNITO_DOMAIN": "https://auth.unknown.example.net"}),
    "custom domain": Case("domain", Status.PASS, "is the pool's custom domain", domain="custom"),
    "access token shorter than the refresh margin (minutes)": Case(
        "token validity", Status.FAIL, "the access token lives 5 min",
        client={"AccessTokenValidity": 5, "TokenValidityUnits": MINUTES},
        config={"GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS": "600"},
        changes=frozenset({"AccessTokenValidity"})),
    "the same validity in hours passes": Case(
        "token validity", Status.PASS, "access token 5 h",
        client={"AccessTokenValidity": 5, "TokenValidityUnits": MINUTES | {"AccessToken": "hours"}},
        config={"GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS": "600"}),
    "no units: hours, as Cognito reads it": Case(
        "token validity", Status.PASS, "access token 1 h, ID token 1 h",
        client={"AccessTokenValidity": 1, "IdTokenValidity": 1, "TokenValidityUnits": None}),
    "ID token in seconds, shorter than the margin": Case(
        "token validity", Status.FAIL, "the ID token lives 5 min",
        client={"IdTokenValidity": 300, "TokenValidityUnits": MINUTES | {"IdToken": "seconds"}},
        config={"GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS": "300"},
        changes=frozenset({"IdTokenValidity"})),
    "refresh token shorter than the session": Case(
        "token validity", Status.WARN, "the refresh token lives 12 h",
        client={"RefreshTokenValidity": 12,
                "TokenValidityUnits": MINUTES | {"RefreshToken": "hours"}},
        changes=frozenset({"RefreshTokenValidity"})),
    "rotation without grace, cookie store": Case(
        "refresh rotation", Status.WARN, "the second is refused (invalid_grant)",
        client={"RefreshTokenRotation": {"Feature": "ENABLED", "RetryGracePeriodSeconds": 0}},
        changes=frozenset({"RefreshTokenRotation"})),
    "rotation without grace, redis store": Case(
        "refresh rotation", Status.PASS, "the Redis store refreshes each session once",
        client={"RefreshTokenRotation": {"Feature": "ENABLED", "RetryGracePeriodSeconds": 0}},
        config={"GATEWAY_SESSION_STORE": "redis"}),
    "rotation with grace, cookie store": Case(
        "refresh rotation", Status.PASS, "with a 10 s grace period",
        client={"RefreshTokenRotation": {"Feature": "ENABLED", "RetryGracePeriodSeconds": 10}}),
    "token revocation off": Case(
        "token revocation", Status.FAIL, "token revocation is off",
        client={"EnableTokenRevocation": False}, changes=frozenset({"EnableTokenRevocation"})),
    "deletion protection reported": Case(
        "deletion protection", Status.INFO, "deletion protection is ACTIVE",
        pool={"DeletionProtection": "ACTIVE"}),
    "advanced security reported": Case(
        "advanced security", Status.INFO, "is ENFORCED",
        pool={"UserPoolAddOns": {"AdvancedSecurityMode": "ENFORCED"}}),
}
COMMAND_CASES = {name: case for name, case in CASES.items() if case.changes}


async def build_case(admin: MotoAdmin, secrets: Secrets, case: Case) -> Built:
    return await build(admin, secrets, client=case.client, pool=case.pool, domain=case.domain,
                       config=case.config, setup=case.setup)


@pytest.mark.usefixtures("aws_env")
class TestAppClientChecks:
    async def test_a_correct_pool_passes_every_api_check(self, admin: MotoAdmin,
                                                         secrets: Secrets) -> None:
        """A pool and app client set up as docs/cognito-app-client.md says: all PASS."""
        facts, findings = await check(await build(admin, secrets))
        assert facts is not None
        assert {f.check for f in findings} >= set(API_CHECKS)
        judged = [f for f in findings if f.status is not Status.INFO]
        assert all(f.status is Status.PASS for f in judged), findings

    @pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
    async def test_each_misconfiguration_is_named_with_its_fix(
            self, admin: MotoAdmin, secrets: Secrets, case: Case) -> None:
        """The check that owns the misconfiguration says what is wrong and how to fix it."""
        _, findings = await check(await build_case(admin, secrets, case))
        found = finding(findings, case.check, case.status)
        assert case.phrase in found.detail, found
        if case.status is Status.FAIL:
            assert found.fix, found
        if case.changes:
            assert found.command[:3] == ("aws", "cognito-idp", "update-user-pool-client")
            assert "Cognito console > User pools > " in found.fix
            assert shlex.split(found.command_line) == list(found.command)

    async def test_unchanged_checks_still_pass_next_to_a_failure(
            self, admin: MotoAdmin, secrets: Secrets) -> None:
        """One misconfiguration fails one check; the other checks of that client pass."""
        case = CASES["scopes missing"]
        _, findings = await check(await build_case(admin, secrets, case))
        failed = {f.check for f in findings if f.status is Status.FAIL}
        assert failed == {"oauth scopes"}, findings


def cli_request(argv: tuple[str, ...], model: Any) -> dict[str, Any]:
    """The UpdateUserPoolClient request an AWS CLI argv stands for, read as the CLI reads it.

    Options map to members through botocore's own name transform; lists take every value up
    to the next option, booleans are the flag or `--no-` flag, structures JSON, integers ints.
    """
    assert argv[:3] == ("aws", "cognito-idp", "update-user-pool-client"), argv
    botocore = importlib.import_module("botocore")
    members = model.operation_model("UpdateUserPoolClient").input_shape.members
    by_option = {botocore.xform_name(name, "-"): name for name in members}
    request: dict[str, Any] = {}
    args = list(argv[3:])
    while args:
        option = args.pop(0)
        assert option.startswith("--"), option
        values: list[str] = []
        while args and not args[0].startswith("--"):
            values.append(args.pop(0))
        name = option[2:]
        if name == "region":
            continue
        negated = name.startswith("no-") and name[3:] in by_option
        member = by_option[name[3:] if negated else name]
        kind = members[member].type_name
        if kind == "boolean":
            assert not values, option
            request[member] = not negated
        elif kind == "list":
            request[member] = values
        elif kind == "structure":
            request[member] = json.loads(values[0])
        elif kind == "integer":
            request[member] = int(values[0])
        else:
            (request[member],) = values
    return request


DESCRIBED_ONLY = {"ClientId", "ClientSecret", "CreationDate", "LastModifiedDate"}


@pytest.mark.usefixtures("aws_env")
class TestUpdateCommands:
    @pytest.mark.parametrize("case", list(COMMAND_CASES.values()), ids=list(COMMAND_CASES))
    async def test_the_command_fixes_its_finding_and_keeps_every_other_setting(
            self, admin: MotoAdmin, secrets: Secrets, case: Case) -> None:
        """Applied to moto, the command fixes the finding and changes no other field."""
        built = await build_case(admin, secrets, case)
        _, findings = await check(built)
        command = finding(findings, case.check, case.status).command
        request = cli_request(command, admin.service_model())
        assert "ClientSecret" not in request
        before = await admin.describe_client(built.pool_id, built.client_id)
        updatable = set(admin.service_model().operation_model(
            "UpdateUserPoolClient").input_shape.members)
        assert set(before) - DESCRIBED_ONLY <= set(request), "a current setting is not carried"
        assert set(before) <= updatable | DESCRIBED_ONLY

        await admin.update_client(**request)
        after = await admin.describe_client(built.pool_id, built.client_id)
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        assert changed == case.changes, (before, after)
        _, fixed = await check(built)
        assert all(f.status in {Status.PASS, Status.INFO} for f in fixed
                   if f.check == case.check), fixed

        # Cognito's reset of omitted fields, emulated: a fresh client with only defaults, given
        # the same command, must end up exactly like the fixed client.
        fresh = await admin.create_client(built.pool_id, ClientName="fresh")
        await admin.update_client(**(request | {"ClientId": fresh["ClientId"]}))
        replica = await admin.describe_client(built.pool_id, str(fresh["ClientId"]))
        assert {k: v for k, v in replica.items() if k not in DESCRIBED_ONLY} == {
            k: v for k, v in after.items() if k not in DESCRIBED_ONLY}

    async def test_the_combined_command_fixes_every_client_finding_at_once(
            self, admin: MotoAdmin, secrets: Secrets) -> None:
        """Several client fixes: one combined command, and after it no app client FAIL left."""
        built = await build(admin, secrets, client={
            "AllowedOAuthFlows": ["implicit"], "AllowedOAuthScopes": ["openid"],
            "CallbackURLs": [REDIRECT_URI + "/"], "EnableTokenRevocation": False})
        _, findings = await check(built)
        combined = finding(findings, ALL_FIXES, Status.INFO).command
        await admin.update_client(**cli_request(combined, admin.service_model()))
        _, fixed = await check(built)
        assert [f for f in fixed if f.status in {Status.FAIL, Status.WARN}] == [], fixed
        assert all(f.check != ALL_FIXES for f in fixed)


@pytest.mark.parametrize(("status", "verdict", "phrase"), [
    ("ACTIVE", Status.PASS, "(ACTIVE)"),
    ("CREATING", Status.WARN, "is CREATING"),
    ("UPDATING", Status.WARN, "is UPDATING"),
    ("FAILED", Status.FAIL, "is FAILED"),
    ("DELETING", Status.FAIL, "is DELETING"),
])
def test_domain_status(status: str, verdict: Status, phrase: str) -> None:
    """A domain must be ACTIVE; CREATING/UPDATING warn, FAILED/DELETING fail (moto: ACTIVE only)."""
    settings = load_settings(environ={
        "GATEWAY_SERVER_PUBLIC_URL": PUBLIC_URL, "GATEWAY_COGNITO_USER_POOL_ID": f"{REGION}_P1",
        "GATEWAY_COGNITO_CLIENT_ID": "c", "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
        "GATEWAY_COGNITO_DOMAIN": f"https://mine.auth.{REGION}.amazoncognito.com"})
    pool = UserPoolDescription(f"{REGION}_P1", "p", "", "mine", None, None, None, None)
    facts = AppClientFacts(Expectation.from_settings(settings, f"{REGION}_P1"), pool, None,
                           (DomainDescription("mine", f"{REGION}_P1", status, custom=False),))
    (found,) = domain_findings(facts)
    assert found.status is verdict
    assert phrase in found.detail


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize(("client", "config", "outcome", "description", "grant", "cause"), [
    ({"GenerateSecret": False}, {"GATEWAY_COGNITO_CLIENT_SECRET": CONFIGURED_SECRET},
     "invalid_client", None, "authorization_code",
     "the app client has no client secret but cognito.client_secret is set"),
    ({}, {"GATEWAY_COGNITO_CLIENT_SECRET": ""}, "invalid_client", None, "authorization_code",
     "the app client has a client secret but cognito.client_secret is empty"),
    ({}, {"GATEWAY_COGNITO_CLIENT_ID": "no-such-client"}, "invalid_client", None,
     "refresh_token", "app client no-such-client is not a client of user pool"),
    ({"CallbackURLs": [REDIRECT_URI + "/"]}, {}, "unauthorized_client", "invalid_redirect",
     "authorization_code", f"{REDIRECT_URI} is not among the app client's allowed callback"),
    ({"AllowedOAuthFlows": ["implicit"]}, {}, "unauthorized_client", None,
     "authorization_code", "not the authorization code grant"),
    ({"ExplicitAuthFlows": ["ALLOW_USER_SRP_AUTH"]}, {}, "unauthorized_client", None,
     "refresh_token", "lacks ALLOW_REFRESH_TOKEN_AUTH"),
    ({"AllowedOAuthScopes": ["openid"]}, {}, "invalid_scope", None, "authorization_code",
     "asks for email, profile"),
    ({"EnableTokenRevocation": False}, {}, "invalid_request", None, "revoke",
     "token revocation is off"),
    ({}, {}, "invalid_client", None, "authorization_code", None),
    ({"AllowedOAuthScopes": ["openid"]}, {}, "invalid_grant", None, "refresh_token", None),
], ids=["public client sent a secret", "secret missing", "unknown client",
        "callback near miss", "code grant off", "refresh flow off", "scope not allowed",
        "revocation off", "nothing confirmed", "not a configuration error"])
async def test_confirmed_cause_names_what_the_api_confirms(
        admin: MotoAdmin, secrets: Secrets, client: dict[str, Any], config: dict[str, str],
        outcome: str, description: str | None, grant: str, cause: str | None) -> None:
    """confirmed_cause names the failing check behind a token-endpoint error, else None."""
    facts, _ = await check(await build(admin, secrets, client=client, config=config))
    assert facts is not None
    found = confirmed_cause(facts, outcome=outcome, error_description=description,
                            grant_type=grant)
    if cause is None:
        assert found is None
    else:
        assert found is not None
        assert cause in found


# --- the whole doctor: probes against the dev IdP, API checks against moto -----------------

DEV_PUBLIC_URL = "http://localhost:4180"


@dataclass
class Stack:
    built: Built
    idp: DevIdp

    def config(self, **overrides: str) -> dict[str, str]:
        env = self.built.config | {"GATEWAY_COGNITO_ISSUER": self.idp.issuer,
                                   "GATEWAY_SESSION_COOKIE_SECURE": "false"}
        env.pop("GATEWAY_COGNITO_DOMAIN", None)  # endpoints from the dev IdP's discovery
        return {k: v for k, v in (env | overrides).items() if v}


@pytest.fixture
async def stack(admin: MotoAdmin, secrets: Secrets, request: pytest.FixtureRequest
                ) -> AsyncIterator[Stack]:
    """A moto pool and a dev IdP serving the same app client (id, secret, URLs)."""
    client: dict[str, Any] = getattr(request, "param", {})
    urls = {"CallbackURLs": [DEV_PUBLIC_URL + "/oauth2/callback"],
            "LogoutURLs": [DEV_PUBLIC_URL + "/oauth2/signed_out"]}
    built = await build(admin, secrets, client=urls | client, domain="prefix",
                        public_url=DEV_PUBLIC_URL)
    dev_client = AppClient(client_id=built.client_id, client_secret=built.client["ClientSecret"],
                           callback_urls=urls["CallbackURLs"], logout_urls=urls["LogoutURLs"])
    async with DevIdp(UserPool(users=[ALICE], clients=[dev_client])) as idp:
        yield Stack(built, idp)


async def doctor(environ: dict[str, str], *, as_json: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_doctor(None, out=out, environ=environ, as_json=as_json)
    return code, out.getvalue()


def statuses(document: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for f in document["findings"]:
        found.setdefault(f["check"], set()).add(f["status"])
    return found


@pytest.mark.usefixtures("aws_env")
class TestDoctorRun:
    async def test_probes_and_api_checks_all_pass_for_a_correct_setup(self, stack: Stack
                                                                      ) -> None:
        """Probes (dev IdP) and API checks (moto) together: every check PASS, exit 0."""
        code, text = await doctor(stack.config())
        assert code == 0, text
        document = json.loads((await doctor(stack.config(), as_json=True))[1])
        assert document["exit_code"] == 0
        found = statuses(document)
        for check_id in (*API_CHECKS, "client auth", "callback URL", "code grant", "jwks"):
            assert found.get(check_id) == {"PASS"}, (check_id, text)

    @pytest.mark.parametrize("stack", [{"CallbackURLs": [DEV_PUBLIC_URL + "/oauth2/callback/"]}],
                             indirect=True, ids=["callback near miss in the pool"])
    async def test_json_carries_the_failing_check_its_fix_and_command(self, stack: Stack
                                                                      ) -> None:
        """--json: check id, status, message, fix and command; exit_code 1 as the process's."""
        code, out = await doctor(stack.config(), as_json=True)
        document = json.loads(out)
        assert code == 1 == document["exit_code"]
        (failed,) = [f for f in document["findings"] if f["status"] == "FAIL"]
        assert failed["check"] == "callback URLs"
        assert "with a trailing slash" in failed["message"]
        assert failed["fix"]
        assert failed["command"].startswith(
            "aws cognito-idp update-user-pool-client --region eu-west-1 ")
        assert shlex.split(failed["command"]) == failed["argv"]
        assert document["summary"]["failed"] == 1
        assert set(document["findings"][0]) == {"check", "status", "message", "fix", "command",
                                                "argv", "policy"}

    @pytest.mark.parametrize("stack", [{"CallbackURLs": [DEV_PUBLIC_URL + "/oauth2/callback/"]}],
                             indirect=True, ids=["callback near miss in the pool"])
    async def test_the_printed_command_pastes_into_a_shell_as_the_json_argv(
            self, stack: Stack) -> None:
        """The text report's `run:` lines, continuation backslashes and all, are the argv."""
        _, text = await doctor(stack.config())
        _, out = await doctor(stack.config(), as_json=True)
        (argv,) = [f["argv"] for f in json.loads(out)["findings"] if f["argv"]]
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("run: "))
        block = [lines[start].split("run: ", 1)[1]]
        while block[-1].endswith("\\"):
            block[-1] = block[-1][:-1]
            block.append(lines[start + len(block)])
        assert shlex.split(" ".join(block)) == argv

    async def test_a_second_secret_passes_when_the_token_endpoint_accepts_it(
            self, stack: Stack) -> None:
        """Secret rotation: the API shows one secret, the config holds the other one, and the
        token endpoint accepts it: the secret check passes instead of failing."""
        rotated = AppClient(client_id=stack.built.client_id, client_secret=CONFIGURED_SECRET,
                            callback_urls=[DEV_PUBLIC_URL + "/oauth2/callback"])
        async with DevIdp(UserPool(users=[ALICE], clients=[rotated])) as idp:
            environ = Stack(stack.built, idp).config(
                GATEWAY_COGNITO_CLIENT_SECRET=CONFIGURED_SECRET)
            code, out = await doctor(environ, as_json=True)
        found = {f["check"]: f for f in json.loads(out)["findings"]}
        assert code == 0, out
        assert found["client auth"]["status"] == found["client secret"]["status"] == "PASS"
        assert "second secret" in found["client secret"]["message"]

    @pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
    @pytest.mark.parametrize("secret", ["right", "wrong"])
    async def test_no_secret_or_token_is_ever_printed(self, stack: Stack, secrets: Secrets,
                                                      as_json: bool, secret: str) -> None:
        """Neither client secret, AWS secret key nor a token reaches the output or the log."""
        client_secret = str(stack.built.client["ClientSecret"])
        configured = client_secret if secret == "right" else CONFIGURED_SECRET
        _, out = await doctor(stack.config(GATEWAY_COGNITO_CLIENT_SECRET=configured),
                              as_json=as_json)
        for value in (client_secret, CONFIGURED_SECRET, AWS_SECRET):
            assert value not in out
        assert not JWT_SHAPED.search(out)
        assert "client secret" in out  # the check ran
        facts, _ = await check_app_client(load_settings(environ=stack.config()))
        assert client_secret not in repr(facts)
        secrets.add(client_secret)

    async def test_invalid_config_exits_2_in_json_too(self) -> None:
        """--json with a broken config: every problem as a FAIL, exit_code 2."""
        code, out = await doctor({"GATEWAY_SERVER_PUBLIC_URL": "ftp://x"}, as_json=True)
        document = json.loads(out)
        assert code == 2 == document["exit_code"]
        assert all(f["check"] == "config" and f["status"] == "FAIL"
                   for f in document["findings"])

    async def test_python_m_gateway_doctor_json(self, stack: Stack, aws_env: dict[str, str]
                                                ) -> None:
        """`python -m gateway doctor --json` prints one JSON document and exits as it says."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "doctor", "--json", cwd=REPO,
            env=env | aws_env | stack.config(GATEWAY_COGNITO_CLIENT_SECRET=CONFIGURED_SECRET),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        document = json.loads(out)
        assert proc.returncode == 1 == document["exit_code"], err.decode()
        assert statuses(document)["client secret"] == {"FAIL"}
        assert CONFIGURED_SECRET not in out.decode() + err.decode()


# --- without the API: one WARN with the IAM policy, and the probes still run ---------------

def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_aws(monkeypatch, {"AWS_CONFIG_FILE": str(tmp_path / "none"),
                          "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                          "AWS_EC2_METADATA_DISABLED": "true"})
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)


def without_sdk(monkeypatch: pytest.MonkeyPatch, _tmp_path: Path) -> None:
    for module in ("aiobotocore", "aiobotocore.session", "aiobotocore.config"):
        monkeypatch.setitem(sys.modules, module, None)


@pytest.fixture(scope="module")
def iam_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto server that enforces IAM after the first four calls (the setup's)."""
    server = start_moto_server(tmp_path_factory.mktemp("iam-moto") / "moto.log",
                               env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    yield server
    server.stop()


@dataclass(frozen=True)
class IamSetup:
    pool_id: str
    client: dict[str, Any]
    access_key: str
    secret_key: str


@pytest.fixture(scope="module")
def iam_setup(iam_moto: MotoServer) -> IamSetup:
    """Exactly four unauthenticated calls: a pool, its client, an IAM user without policies,
    and its access key. Every later call is authenticated and authorised by moto's IAM."""
    async def setup() -> IamSetup:
        async with MotoAdmin.connect(iam_moto.url, REGION, AWS_SECRET, iam=True) as moto_admin:
            pool_id = await moto_admin.create_pool(unique("denied"))
            client = await moto_admin.create_client(
                pool_id, **(GOOD_CLIENT | {"CallbackURLs": [DEV_PUBLIC_URL + "/oauth2/callback"]}))
            await moto_admin.iam.create_user(UserName="doctor")
            key = (await moto_admin.iam.create_access_key(UserName="doctor"))["AccessKey"]
        return IamSetup(pool_id, client, key["AccessKeyId"], key["SecretAccessKey"])
    return asyncio.run(setup())


@dataclass(frozen=True)
class Unreadable:
    phrase: str
    fix: str
    prepare: Callable[[pytest.MonkeyPatch, Path], None] | None = None
    keys: str = ""   # "user": the IAM user's keys, "unknown": a key moto's IAM never issued


UNREADABLE = {
    "no credentials": Unreadable("no AWS credentials were found", "Give the doctor AWS",
                                 prepare=no_credentials),
    "no aws extra": Unreadable("the AWS SDK is not installed",
                               "pip install 'cognito-gateway[aws]'", prepare=without_sdk),
    "access denied": Unreadable("may not call cognito-idp:DescribeUserPool", "Give the doctor",
                                keys="user"),
    "credentials refused": Unreadable("AWS refused the credentials (InvalidClientTokenId)",
                                      "Give the doctor", keys="unknown"),
}


@pytest.mark.parametrize("case", list(UNREADABLE.values()), ids=list(UNREADABLE))
async def test_without_the_api_one_warning_with_the_iam_policy_and_the_probes_run(
        case: Unreadable, iam_moto: MotoServer, iam_setup: IamSetup, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, secrets: Secrets) -> None:
    """No SDK, no credentials, refused or denied: ONE WARN naming it, with the policy."""
    secret = str(iam_setup.client["ClientSecret"])
    secrets.add(secret, iam_setup.secret_key, AWS_SECRET)
    if case.keys:
        key, secret_key = ((iam_setup.access_key, iam_setup.secret_key) if case.keys == "user"
                           else ("AKIAUNKNOWNDOCTOR000", AWS_SECRET))
        use_aws(monkeypatch, aws_environment(iam_moto.url, secret_key, tmp_path, key))
    if case.prepare:
        case.prepare(monkeypatch, tmp_path)
    dev_client = AppClient(client_id=iam_setup.client["ClientId"], client_secret=secret,
                           callback_urls=[DEV_PUBLIC_URL + "/oauth2/callback"])
    async with DevIdp(UserPool(users=[ALICE], clients=[dev_client])) as idp:
        environ = {"GATEWAY_SERVER_PUBLIC_URL": DEV_PUBLIC_URL,
                   "GATEWAY_COGNITO_ISSUER": idp.issuer,
                   "GATEWAY_COGNITO_USER_POOL_ID": iam_setup.pool_id,
                   "GATEWAY_COGNITO_CLIENT_ID": iam_setup.client["ClientId"],
                   "GATEWAY_COGNITO_CLIENT_SECRET": secret,
                   "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
                   "GATEWAY_SESSION_COOKIE_SECURE": "false"}
        code, out = await doctor(environ, as_json=True)
        _, text = await doctor(environ)
    assert await read_app_client(load_settings(environ=environ)) is None
    document = json.loads(out)
    assert code == 0, out
    api = [f for f in document["findings"] if f["check"] == API]
    assert len(api) == 1, api
    (warning,) = api
    assert warning["status"] == "WARN"
    assert case.phrase in warning["message"]
    assert case.fix in warning["fix"]
    statements = warning["policy"]["Statement"]
    assert {a for s in statements for a in s["Action"]} == set(DOCTOR_ACTIONS)
    assert f"arn:aws:cognito-idp:{REGION}:*:userpool/{iam_setup.pool_id}" in [
        s["Resource"] for s in statements]
    found = statuses(document)
    assert found["client auth"] == found["code grant"] == found["callback URL"] == {"PASS"}
    assert "callback URLs" not in found
    assert "policy:" in text
    assert '"cognito-idp:DescribeUserPoolClient"' in text
    for value in (secret, iam_setup.secret_key, AWS_SECRET):
        assert value not in out + text


async def logged(buffer: io.StringIO, event: str, within: float = 10.0
                 ) -> list[dict[str, Any]]:
    """The `event` lines, once at least one is logged (failing loudly after `within` s)."""
    async with asyncio.timeout(within):
        while not (found := [e for e in log_events(buffer) if e["event"] == event]):  # noqa: ASYNC110 - a log line has no event to await
            await asyncio.sleep(0.05)
    return found


async def secretless_gateway(admin: MotoAdmin, secrets: Secrets, upstream: str,
                             gateway_url: str, *,
                             doctor_at_start: bool) -> tuple[dict[str, str], AppClient]:
    """A moto pool whose app client has a secret, the stand-in's copy of that client (to sign
    in at), and a gateway config for it that makes the mistake of leaving the secret out. Its
    endpoints come from the stand-in's discovery: GATEWAY_COGNITO_ISSUER is the caller's."""
    urls = {"CallbackURLs": [gateway_url + "/oauth2/callback"],
            "LogoutURLs": [gateway_url + "/oauth2/signed_out"]}
    built = await build(admin, secrets, client=urls, public_url=gateway_url)
    dev_client = AppClient(client_id=built.client_id, client_secret=built.client["ClientSecret"],
                           callback_urls=urls["CallbackURLs"], logout_urls=urls["LogoutURLs"])
    env = built.config | {"GATEWAY_UPSTREAM_URL": upstream,
                          "GATEWAY_SESSION_COOKIE_SECURE": "false",
                          "GATEWAY_COGNITO_DOCTOR_AT_START": str(doctor_at_start).lower()}
    env.pop("GATEWAY_COGNITO_DOMAIN")  # endpoints from the dev IdP's discovery
    env.pop("GATEWAY_COGNITO_CLIENT_SECRET")  # the mistake: the app client has a secret
    return env, dev_client


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("at_start", [True, False], ids=["doctor at start", "no doctor"])
async def test_doctor_at_start_logs_findings_and_confirms_a_sign_in_failures_cause(
        at_start: bool, admin: MotoAdmin, secrets: Secrets, upstream: str,
        gateway_socket: socket.socket, gateway_url: str, log_buffer: io.StringIO) -> None:
    """cognito.doctor_at_start: the app client's FAIL is logged at start, and the sign-in that
    then fails names that confirmed cause in its hint; without it, the inferred hint alone."""
    env, dev_client = await secretless_gateway(admin, secrets, upstream, gateway_url,
                                               doctor_at_start=at_start)
    async with DevIdp(UserPool(users=[ALICE], clients=[dev_client])) as idp:
        runner, gateway = await start_gateway(env | {"GATEWAY_COGNITO_ISSUER": idp.issuer},
                                              gateway_socket)
        try:
            if at_start:
                findings = await logged(log_buffer, "doctor_finding")
            async with ScriptedBrowser() as browser:
                page = await browser.sign_in(f"{gateway.url}/", ALICE.username, ALICE.password)
            (error,) = await logged(log_buffer, "token_endpoint_error")
        finally:
            await runner.cleanup()
    assert page.status == 400, page.text[:300]
    assert error["error"] == "invalid_client"
    if at_start:
        (secret_finding,) = [f for f in findings if f["check"] == "client secret"]
        assert secret_finding["status"] == "FAIL"
        assert secret_finding["level"] == "warning"
        assert "cognito.client_secret is empty" in secret_finding["detail"]
        assert error["cause_confirmed"] is True
        assert error["hint"].startswith("Confirmed by the app client's settings: ")
        assert "has a client secret but cognito.client_secret is empty" in error["hint"]
    else:
        assert not [e for e in log_events(log_buffer) if e["event"] == "doctor_finding"]
        assert "cause_confirmed" not in error
        assert not error["hint"].startswith("Confirmed")


@pytest.mark.usefixtures("aws_env")
async def test_a_reload_reads_the_app_client_again_and_its_fix_is_confirmed(
        admin: MotoAdmin, secrets: Secrets, upstream: str, gateway_socket: socket.socket,
        gateway_url: str, log_buffer: io.StringIO) -> None:
    """doctor_at_start, started without the client secret (a FAIL): a reload that brings the
    secret reads the app client again, whose finding now passes, and the sign-in works."""
    env, dev_client = await secretless_gateway(admin, secrets, upstream, gateway_url,
                                               doctor_at_start=True)
    secret = dev_client.client_secret
    assert secret is not None
    async with DevIdp(UserPool(users=[ALICE], clients=[dev_client])) as idp:
        env["GATEWAY_COGNITO_ISSUER"] = idp.issuer
        runner, gateway = await start_gateway(env, gateway_socket)
        try:
            at_start = await logged(log_buffer, "doctor_finding")
            gateway.app[RECONFIGURE](load_settings(
                environ=env | {"GATEWAY_COGNITO_CLIENT_SECRET": secret}))
            async with asyncio.timeout(10):
                while len(findings := [e for e in log_events(log_buffer)  # noqa: ASYNC110
                                       if e["event"] == "doctor_finding"]) < 2 * len(at_start):
                    await asyncio.sleep(0.05)
            async with ScriptedBrowser() as browser:
                page = await browser.sign_in(f"{gateway.url}/", ALICE.username, ALICE.password)
        finally:
            await runner.cleanup()
    secret_checks = [f["status"] for f in findings if f["check"] == "client secret"]
    assert secret_checks == ["FAIL", "PASS"]
    assert page.status == 200, page.text[:300]


@pytest.mark.usefixtures("aws_env")
class TestCognitoIdpClient:
    async def test_global_sign_out_of_a_user_and_of_an_unknown_one(self, admin: MotoAdmin
                                                                   ) -> None:
        """AdminUserGlobalSignOut succeeds for a user; an unknown user is ResourceNotFound."""
        pool_id = await admin.create_pool(unique("signout"))
        await admin.cognito.admin_create_user(UserPoolId=pool_id, Username="alice")
        async with open_cognito_idp(REGION) as idp:
            await idp.admin_user_global_sign_out(pool_id, "alice")
            with pytest.raises(ResourceNotFound) as raised:
                await idp.admin_user_global_sign_out(pool_id, "nobody")
        assert raised.value.action == "AdminUserGlobalSignOut"

    async def test_clients_are_listed_up_to_the_limit(self, admin: MotoAdmin) -> None:
        """ListUserPoolClients gives every client of the pool, or the first `limit`."""
        pool_id = await admin.create_pool(unique("many"))
        for n in range(5):
            await admin.create_client(pool_id, ClientName=f"c{n}")
        async with open_cognito_idp(REGION) as idp:
            every = await idp.list_user_pool_clients(pool_id, limit=60)
            some = await idp.list_user_pool_clients(pool_id, limit=3)
        assert sorted(c.client_name for c in every) == [f"c{n}" for n in range(5)]
        assert len(some) == 3
