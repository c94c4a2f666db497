"""The pool model, load_pool's TOML format, demo_pool and the CLI entry point."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from pathlib import Path

import pytest

from gateway.devidp import AppClient, DevIdp, User, UserPool, demo_pool, load_pool
from gateway.devidp.cli import describe

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "dev-idp.example.toml"


def test_user_sub_defaults_to_a_stable_uuid():
    """A user without sub gets the same UUID every time, derived from the username."""
    first, again = User("carol", "pw"), User("carol", "pw")
    assert first.sub == again.sub == first.subject
    assert uuid.UUID(first.subject)
    assert User("dave", "pw").sub != first.sub


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"allowed_flows": ["password"]}, "allowed_flows: unknown"),
        ({"allowed_flows": ["client_credentials"]}, "requires a client_secret"),
        (
            {"client_secret": "s", "allowed_flows": ["code", "client_credentials"]},
            "cannot be combined",
        ),
        ({"allowed_flows": ["code"]}, "callback_urls: the code and implicit flows"),
        ({"client_secret": ""}, "client_secret: must not be empty"),
        ({"rotation_grace_seconds": 61, "callback_urls": ["http://x/"]}, "rotation_grace_seconds"),
        ({"auth_code_validity_seconds": 0, "callback_urls": ["http://x/"]}, "auth_code_validity"),
    ],
)
def test_app_client_rejects_what_cognito_rejects(kwargs, problem):
    """An AppClient breaking a Cognito configuration rule raises ValueError naming the field."""
    with pytest.raises(ValueError, match=problem):
        AppClient("c", **kwargs)


def test_pool_rejects_unknown_scopes_and_duplicates():
    """A pool lists every problem: duplicate users, unknown custom scopes."""
    client = AppClient("c", callback_urls=["http://x/"], allowed_scopes=["openid", "api/read"])
    with pytest.raises(ValueError, match=r"defined twice.*api/read") as info:
        UserPool(users=[User("a", "p"), User("A", "p")], clients=[client])
    assert "users[1].username" in str(info.value)


def test_demo_pool_has_the_demo_user_and_client():
    """demo_pool: user demo/demo-password-1, client demo-client offering PartnerSAML too."""
    pool = demo_pool("http://gw/cb", "http://gw/out")
    user = pool.user("demo")
    assert (user.password, user.email, user.groups) == (
        "demo-password-1",
        "demo@example.com",
        ["demo-users", "admins"],
    )
    client = pool.client("demo-client")
    assert client.client_secret
    assert client.allowed_flows == ["code"]
    assert (client.callback_urls, client.logout_urls) == (["http://gw/cb"], ["http://gw/out"])
    assert (client.client_name, client.supported_identity_providers) == (
        "Demo app", ["COGNITO", "PartnerSAML"])
    assert pool.provider("PartnerSAML").user("carol@partner.example") is not None


def test_example_config_loads():
    """config/dev-idp.example.toml is a valid pool."""
    pool = load_pool(EXAMPLE)
    assert [u.username for u in pool.users] == ["demo", "federated-bob"]
    assert pool.client("spa-client").client_secret is None
    assert pool.client("worker-client").allowed_flows == ["client_credentials"]
    assert pool.users[0].attributes["custom:tenant"] == "acme"


def test_load_pool_names_every_bad_key_at_once(tmp_path):
    """Unknown keys, missing keys and wrongly typed values are all reported in one error."""
    path = tmp_path / "pool.toml"
    path.write_text(
        """
colour = "blue"
[[users]]
username = "a"
pasword = "x"
[[clients]]
client_id = "c"
allowed_flows = "code"
enabled = "yes"
access_token_validity_seconds = 1.5
"""
    )
    with pytest.raises(ValueError, match="problem") as info:
        load_pool(path)
    message = str(info.value)
    for expected in (
        "colour: unknown key",
        "users[0].pasword: unknown key",
        "users[0].password: required",
        "clients[0].allowed_flows: must be a list of strings",
        "clients[0].enabled: must be true or false",
        "clients[0].access_token_validity_seconds: must be an integer",
    ):
        assert expected in message


def test_load_pool_reports_rule_violations_by_key(tmp_path):
    """Values of the right type that break a client rule are named by their key too."""
    path = tmp_path / "pool.toml"
    path.write_text('[[clients]]\nclient_id = "c"\nallowed_flows = ["client_credentials"]\n')
    with pytest.raises(ValueError, match=r"clients\[0\]\.allowed_flows: client_credentials"):
        load_pool(path)


def test_load_pool_rejects_invalid_toml(tmp_path):
    """A file that is not TOML is a ValueError too."""
    path = tmp_path / "pool.toml"
    path.write_text("users = [")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_pool(path)


async def test_describe_lists_issuer_clients_and_users():
    """The CLI banner names the issuer, each client's secret and each user's password."""
    async with DevIdp(demo_pool("http://gw/cb", "http://gw/out")) as idp:
        text = describe(idp)
    assert idp.issuer in text
    assert "demo-client  secret: demo-client-secret" in text
    assert "user demo  password: demo-password-1" in text


async def test_serve_forever_runs_until_sigint():
    """serve_forever prints the issuer, serves, and exits cleanly on SIGINT."""
    code = "from gateway.devidp.cli import serve_forever; serve_forever('127.0.0.1', 0, None)"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    try:
        first = await asyncio.wait_for(process.stdout.readline(), 10)
        assert b"dev IdP for user pool local-1_DevPool01" in first
        process.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert b"demo-client-secret" in rest
