"""`cognito-gateway sessions list|revoke --sub`: one user thrown out of every replica.

Two gateway replicas share their keys (and, with the Redis store, one real redis-server); the
dev IdP is the Cognito stand-in for both the OAuth side and the user pools API. Time is a
ManualClock shared by the gateways and the IdP, so "a minute later" is said, not waited for.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from gateway.app import session_store
from gateway.config import load_settings
from gateway.identity import Identity
from gateway.sessions.admin import EXIT_CONFIG, EXIT_FAILED, list_sessions, revoke_sessions, run
from gateway.sessions.cipher import Cipher
from gateway.sessions.cookies import CookiePolicy
from gateway.sessions.model import Session
from gateway.sessions.redis_store import RedisSessionStore
from tests.conftest import (
    ALICE,
    BOB,
    CLIENT_ID,
    CLIENT_SECRET,
    JWT_SHAPED,
    RunningGateway,
    Secrets,
    gateway_env,
    log_events,
    sign_in_cookies,
    start_gateway,
)
from tests.support.clock import ManualClock
from tests.support.moto_server import (
    MotoAdmin,
    MotoServer,
    aws_environment,
    no_credentials_environment,
    start_moto_server,
    use_aws_environment,
)
from tests.support.ports import listening_socket, refusing_port
from tests.support.redis_servers import RedisServer

if TYPE_CHECKING:
    import socket
    from pathlib import Path

    from gateway.devidp import DevIdp

pytestmark = pytest.mark.redis
REVALIDATE = 60
AWS_SECRET = "sessions-cli-tests-dummy-secret-access-key"
CLI_WITHIN = 60.0  # the CLI subprocess must finish by then
Replicas = tuple[RunningGateway, RunningGateway]


@dataclass(frozen=True)
class Fleet:
    """Two replicas of one config, and that config as GATEWAY_* variables (for the CLI)."""

    replicas: Replicas
    env: dict[str, str]


MakeFleet = Callable[..., Awaitable[Fleet]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def make_fleet(idp: DevIdp, upstream: str, gateway_url: str,
                     gateway_socket: socket.socket, secrets: Secrets, clock: ManualClock
                     ) -> AsyncIterator[MakeFleet]:
    """Two gateways with one config (the second on its own port); GATEWAY_* overrides apply."""
    runners: list[web.AppRunner] = []
    with listening_socket() as second:

        async def make(**env: str) -> Fleet:
            full = gateway_env(idp, upstream, gateway_url, **env)
            secrets.add(full["GATEWAY_SESSION_SECRET"])
            started = []
            for sock in (gateway_socket, second):
                runner, gateway = await start_gateway(full, sock, clock=clock)
                runners.append(runner)
                started.append(gateway)
            return Fleet((started[0], started[1]), full)

        yield make
        for runner in runners:
            await runner.cleanup()


async def status(url: str, cookie: str) -> int:
    """The status an XHR with `cookie` gets (401, not a redirect, once signed out)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http, http.get(
            url, headers={"Cookie": cookie, "Accept": "application/json"}) as resp:
        return resp.status


async def statuses(replicas: Replicas, cookie: str) -> list[int]:
    return [await status(f"{gateway.url}/x", cookie) for gateway in replicas]


async def refresh_status(idp: DevIdp, refresh_token: str) -> int:
    """What the IdP's token endpoint answers to a refresh with `refresh_token`."""
    async with aiohttp.ClientSession() as http, http.post(
            f"{idp.base_url}/oauth2/token",
            headers={"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, CLIENT_SECRET)},
            data={"grant_type": "refresh_token", "refresh_token": refresh_token}) as resp:
        return resp.status


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """The real `python -m gateway` in a subprocess (the event loop keeps serving the IdP and
    the gateways meanwhile): exit status, stdout, stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "AWS_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, env=clean | env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(CLI_WITHIN):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"the CLI did not finish within {CLI_WITHIN} s")
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def sub_hash(sub: str) -> str:
    return hashlib.sha256(sub.encode()).hexdigest()[:16]


async def test_revoke_ends_a_users_redis_sessions_on_every_replica_at_once(
        make_fleet: MakeFleet, idp: DevIdp, redis_server: RedisServer,
        secrets: Secrets) -> None:
    """The real CLI: alice's sessions (one signed in on each replica) get 401 on both at the
    next request and her refresh tokens are dead at the IdP; bob's session is untouched."""
    fleet = await make_fleet(GATEWAY_SESSION_STORE="redis",
                             GATEWAY_SESSION_REDIS_URL=redis_server.url())
    first, second = fleet.replicas
    alice = [await sign_in_cookies(first.url), await sign_in_cookies(second.url)]
    bob = await sign_in_cookies(first.url, BOB.username, BOB.password)
    assert isinstance(first.store, RedisSessionStore)
    stored = await first.store.sessions_of(ALICE.subject)
    tokens = [s.session.refresh_token for s in stored if s.session and s.session.refresh_token]
    assert len(tokens) == 2
    secrets.add(*tokens)
    for cookie in (*alice, bob):
        assert await statuses((first, second), cookie) == [200, 200]

    code, out, err = await run_cli("sessions", "revoke", "--sub", ALICE.subject,
                                   env=fleet.env)

    assert code == 0, err
    plan, done = out.strip().splitlines()
    assert plan.startswith("Store redis (standalone): every session of this user is deleted")
    assert done == ("Ended 2 session(s) of this user on every replica; revoked 2 of 2 refresh "
                    "token(s) at the identity provider.")
    for cookie in alice:
        assert await statuses((first, second), cookie) == [401, 401]
    assert await statuses((first, second), bob) == [200, 200]
    assert [await refresh_status(idp, token) for token in tokens] == [400, 400]
    (line,) = [json.loads(x) for x in err.splitlines() if '"sessions_revoked"' in x]
    assert (line["sub_hash"], line["count"], line["store"]) == (sub_hash(ALICE.subject), 2,
                                                               "redis")
    for leak in (ALICE.subject, *tokens, *secrets.values):
        assert leak not in out + err
    assert not JWT_SHAPED.search(out + err)


async def test_list_shows_each_session_by_a_short_hash_and_never_a_token(
        make_fleet: MakeFleet, redis_server: RedisServer, clock: ManualClock) -> None:
    """One line per live session: 12 characters of its id's hash, when it started and ends."""
    fleet = await make_fleet(GATEWAY_SESSION_STORE="redis",
                             GATEWAY_SESSION_REDIS_URL=redis_server.url())
    first, second = fleet.replicas
    await sign_in_cookies(first.url)
    await sign_in_cookies(second.url)
    assert isinstance(first.store, RedisSessionStore)
    stored = await first.store.sessions_of(ALICE.subject)
    out, err = io.StringIO(), io.StringIO()

    code = await list_sessions(first.settings, ALICE.subject, out=out, err=err, clock=clock)

    assert code == 0, err.getvalue()
    header, columns, *rows = out.getvalue().splitlines()
    assert header == "2 live session(s) of this user in Redis (standalone):"
    assert columns.split() == ["session", "started", "ends"]
    assert [row.split()[0] for row in rows] == [s.digest[:12] for s in stored]
    for found in stored:
        assert found.session is not None
        for value in (found.session.sid, found.session.refresh_token, found.digest):
            assert value is not None
            assert value not in out.getvalue()


async def test_revoke_with_the_cookie_store_ends_sessions_everywhere_within_the_window(
        make_fleet: MakeFleet, idp: DevIdp, clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secrets: Secrets,
        log_buffer: io.StringIO) -> None:
    """A global sign-out at the stand-in through the real SDK (AWS_ENDPOINT_URL): both
    replicas keep serving alice's cookie until its re-check is due, then refuse it; bob's
    session is re-checked and goes on."""
    secrets.add(AWS_SECRET)
    use_aws_environment(monkeypatch, aws_environment(idp.base_url, AWS_SECRET, tmp_path))
    replicas = (await make_fleet(GATEWAY_SESSION_REVALIDATE_SECONDS=str(REVALIDATE),
                                 GATEWAY_COGNITO_USER_POOL_ID=idp.pool.pool_id)).replicas
    alice = await sign_in_cookies(replicas[0].url)
    bob = await sign_in_cookies(replicas[1].url, BOB.username, BOB.password)
    await clock.advance(REVALIDATE / 2)
    out, err = io.StringIO(), io.StringIO()

    code = await revoke_sessions(replicas[0].settings, ALICE.subject, out=out, err=err)

    assert code == 0, err.getvalue()
    plan, done = out.getvalue().strip().splitlines()
    assert plan.startswith("Store cookie: sessions live in the browsers and cannot be deleted. "
                           f"The user is signed out globally at Cognito (AdminUserGlobalSignOut, "
                           f"user pool {idp.pool.pool_id})")
    assert f"within {REVALIDATE} s (session.revalidate_seconds)" in plan
    assert done.startswith("Signed out alice globally at Cognito")
    (line,) = [e for e in log_events(log_buffer) if e["event"] == "sessions_revoked"]
    assert (line["sub_hash"], line["count"], line["store"]) == (sub_hash(ALICE.subject), 1,
                                                               "cookie")
    await clock.advance(REVALIDATE / 2 - 1)
    assert await statuses(replicas, alice) == [200, 200]
    await clock.advance(1)
    assert await statuses(replicas, alice) == [401, 401]
    assert await statuses(replicas, bob) == [200, 200]
    assert [gateway.metrics.registry.get_sample_value(
        "cognito_gateway_reauthentications_total", {"reason": "revalidation_failed"})
        for gateway in replicas] == [1, 1]


async def test_sessions_end_even_when_the_idp_cannot_revoke_their_refresh_tokens(
        redis_server: RedisServer, secrets: Secrets, clock: ManualClock) -> None:
    """The IdP is unreachable: the sessions are deleted all the same (ending them comes first);
    the command exits 1 and says how many refresh tokens are left, naming no address."""
    with refusing_port() as port:
        settings = load_settings(environ={
            "GATEWAY_SERVER_PUBLIC_URL": "https://app.example.com",
            "GATEWAY_COGNITO_ISSUER": f"http://127.0.0.1:{port}/pool",
            "GATEWAY_COGNITO_CLIENT_ID": "c", "GATEWAY_SESSION_STORE": "redis",
            "GATEWAY_SESSION_REDIS_URL": redis_server.url(),
            "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode()})
        secrets.add(settings.session.secret[0], "refresh-token-of-the-only-session")
        store = session_store(settings, CookiePolicy("_gw", False, "lax"),
                              Cipher(settings.session.secret, clock=clock), clock)
        now = clock.time()
        await store.persist(Session(
            sid="only-session", identity=Identity(sub=ALICE.subject, username="alice"),
            created_at=now, expires_at=now + 3600, tokens_expire_at=now + 300,
            refresh_token="refresh-token-of-the-only-session"))
        await store.close()
        out, err = io.StringIO(), io.StringIO()

        code = await revoke_sessions(settings, ALICE.subject, out=out, err=err, clock=clock)

    assert code == EXIT_FAILED
    assert "Ended 1 session(s) of this user on every replica; revoked 0 of 1" in out.getvalue()
    assert "1 refresh token(s) could not be revoked (the identity provider could not be " \
           "reached: connect)" in " ".join(err.getvalue().split())
    assert "127.0.0.1" not in err.getvalue()
    assert "refresh-token-of-the-only-session" not in out.getvalue() + err.getvalue()
    with redis_server.admin() as admin:
        assert admin.keys("*") == []


async def request(url: str, cookie: str) -> tuple[int, str]:
    """An XHR with `cookie`: its status, and the cookie the browser holds afterwards."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http, http.get(
            url, headers={"Cookie": cookie, "Accept": "application/json"}) as resp:
        jar = SimpleCookie()
        for header in resp.headers.getall("Set-Cookie", []):
            jar.load(header)
        written = "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items()
                            if morsel.value)
        return resp.status, written or cookie


async def test_a_revoke_just_after_a_re_check_still_ends_the_session_within_the_window(
        make_fleet: MakeFleet, idp: DevIdp, clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secrets: Secrets) -> None:
    """revalidate_seconds = 30: re-checked at 30 s, revoked at 35 s, refused at 60 s."""
    secrets.add(AWS_SECRET)
    use_aws_environment(monkeypatch, aws_environment(idp.base_url, AWS_SECRET, tmp_path))
    (gateway, _) = (await make_fleet(GATEWAY_SESSION_REVALIDATE_SECONDS="30",
                                     GATEWAY_COGNITO_USER_POOL_ID=idp.pool.pool_id)).replicas
    cookie = await sign_in_cookies(gateway.url)
    await clock.advance(30)
    answer, cookie = await request(f"{gateway.url}/x", cookie)
    assert answer == 200
    await clock.advance(5)
    assert await revoke_sessions(gateway.settings, ALICE.subject, out=io.StringIO(),
                                 err=io.StringIO()) == 0
    await clock.advance(25)
    answer, _ = await request(f"{gateway.url}/x", cookie)
    assert answer == 401


CONFIG = """
[server]
public_url = "http://127.0.0.1:4180"
[cognito]
issuer = "http://127.0.0.1:9/pool"
client_id = "c"
{cognito}
[session]
secret = "{key}"
{session}
"""


@pytest.mark.parametrize(("action", "cognito", "session", "expected", "says"), [
    pytest.param("revoke", "", 'store = "memcached"', EXIT_CONFIG, "session.store",
                 id="bad-config"),
    pytest.param("revoke", "", "", EXIT_CONFIG, "cognito.user_pool_id: required by",
                 id="cookie-store-without-user-pool"),
    pytest.param("revoke", 'user_pool_id = "eu-west-1_Abc123"', "", EXIT_FAILED,
                 "the user was not signed out: no AWS credentials", id="no-aws-credentials"),
    pytest.param("list", "", "", EXIT_FAILED, "there is no list to read",
                 id="list-with-the-cookie-store"),
    pytest.param("revoke", "", 'store = "redis"\nredis_url = "{wrong_password}"', EXIT_FAILED,
                 "nothing was revoked: the session store (Redis) is unavailable: auth",
                 id="redis-refuses-the-password"),
])
def test_a_command_that_cannot_act_says_why_and_exits_non_zero(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, action: str, cognito: str,
        session: str, expected: int, says: str) -> None:
    """Exit 2 for a bad config, 1 when the store, AWS or Redis cannot do it; in words, with no
    address and no secret."""
    server = RedisServer(tmp_path / "redis", password="the-right-password-0123")
    server.start()
    try:
        for name in [k for k in os.environ if k.startswith("GATEWAY_")]:
            monkeypatch.delenv(name)
        use_aws_environment(monkeypatch, no_credentials_environment(tmp_path))
        wrong = f"redis://:not-the-password-4567@127.0.0.1:{server.port}/0"
        config = tmp_path / "gateway.toml"
        config.write_text(CONFIG.format(cognito=cognito, key=Fernet.generate_key().decode(),
                                        session=session.format(wrong_password=wrong)))
        out, err = io.StringIO(), io.StringIO()
        assert run(action, ALICE.subject, config, out=out, err=err) == expected
    finally:
        server.close()
    assert says in " ".join(err.getvalue().split())
    for leak in ("127.0.0.1", str(server.port), "not-the-password", "the-right-password"):
        assert leak not in err.getvalue()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto_server(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


async def test_the_cookie_store_revoke_finds_and_signs_out_the_user_in_moto_too(
        moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secrets: Secrets,
        log_buffer: io.StringIO) -> None:
    """A second implementation of the API (moto): the user is found by sub whatever their
    username, signed out (exit 0); a sub no user has is a failure in words (exit 1)."""
    secrets.add(AWS_SECRET)
    use_aws_environment(monkeypatch, aws_environment(moto.url, AWS_SECRET, tmp_path))
    async with MotoAdmin.connect(moto.url, "eu-west-1", AWS_SECRET) as admin:
        pool_id = await admin.create_pool("sessions-cli", UsernameAttributes=["email"])
        await admin.cognito.admin_create_user(UserPoolId=pool_id, Username="carol@example.com")
        user = await admin.cognito.admin_get_user(UserPoolId=pool_id,
                                                  Username="carol@example.com")
    sub = next(a["Value"] for a in user["UserAttributes"] if a["Name"] == "sub")
    assert user["Username"] != "carol@example.com"  # an email pool names users by their sub
    settings = load_settings(environ={
        "GATEWAY_SERVER_PUBLIC_URL": "https://app.example.com",
        "GATEWAY_COGNITO_USER_POOL_ID": pool_id, "GATEWAY_COGNITO_CLIENT_ID": "c",
        "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode()})
    results: list[tuple[int, str, str]] = []
    for wanted in (sub, "no-user-has-this-sub"):
        out, err = io.StringIO(), io.StringIO()
        code = await revoke_sessions(settings, wanted, out=out, err=err)
        results.append((code, out.getvalue(), err.getvalue()))
    (found, found_out, _), (missing, _, missing_err) = results
    assert found == 0
    assert f"Signed out {user['Username']} globally" in found_out
    assert missing == EXIT_FAILED
    assert "no user of user pool" in missing_err
    assert [e["count"] for e in log_events(log_buffer) if e["event"] == "sessions_revoked"] == [1]

