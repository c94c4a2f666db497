"""Reloading a serving gateway: `cognito-gateway run` as a real process, its configuration
changed on disk (a Kubernetes Secret updated in place) or by SIGHUP.

- A session key rotated by a file change under load: no request fails, old cookies keep
  working and are sealed again with the new key; once the old key is dropped they are refused.
- A client secret rotated at the IdP and then in the gateway's file: the next token call uses
  the new secret.
- A broken config file: refused with every problem logged, the running configuration serving.
- With `--workers 2`, the supervisor's SIGHUP reloads both workers, which keep serving.
- In-process: the rules, the identity providers and the ALB keys a reload changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from cryptography.fernet import Fernet, InvalidToken

from gateway.app import RECONFIGURE
from gateway.config import load_settings
from gateway.demo.stack import free_port
from tests.conftest import (
    CLIENT_SECRET,
    Secrets,
    gateway_env,
    sign_in_cookies,
    start_gateway,
)
from tests.support.processes import tail, wait_for_status

if TYPE_CHECKING:
    import socket

    from gateway.devidp import DevIdp

REPO = Path(__file__).resolve().parent.parent
KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()
NEW_CLIENT_SECRET = "rotated-client-secret-" + "z" * 24
COOKIE = "_cognito_gateway"
XHR = {"Accept": "application/json"}
RELOAD_WITHIN = 10.0  # the file watch polls every 2 s


@dataclass
class GatewayProcess:
    process: asyncio.subprocess.Process
    url: str
    metrics_url: str
    log: Path
    directory: Path

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return [event for event in (json.loads(line) for line in lines if line.startswith("{"))
                if event.get("event") == name]

    async def wait_for(self, name: str, count: int = 1) -> list[dict[str, Any]]:
        """The `name` log lines once there are `count` of them (fails after RELOAD_WITHIN)."""
        deadline = time.monotonic() + RELOAD_WITHIN
        while time.monotonic() < deadline:
            found = self.events(name)
            if len(found) >= count:
                return found
            assert self.process.returncode is None, tail(self.log)
            await asyncio.sleep(0.05)
        pytest.fail(f"no {count} x {name} within {RELOAD_WITHIN} s:\n{tail(self.log)}")

    async def reloads(self, outcome: str) -> float:
        async with aiohttp.ClientSession() as http, http.get(self.metrics_url) as resp:
            text = await resp.text()
        match = re.search(rf'^cognito_gateway_config_reloads_total{{outcome="{outcome}"}} (\S+)$',
                          text, re.M)
        return float(match.group(1)) if match else 0.0


Launch = Callable[..., contextlib.AbstractAsyncContextManager[GatewayProcess]]


@pytest.fixture
def launch(idp: DevIdp, upstream: str, gateway_url: str, gateway_socket: socket.socket,
           tmp_path: Path, secrets: Secrets) -> Launch:
    """Start `cognito-gateway run` (args appended) with its session key and client secret in
    files of `tmp_path`, every other setting from the environment, on the port of
    `gateway_url` (the fixture's socket is closed for it)."""
    secrets.add(KEY_A, KEY_B, NEW_CLIENT_SECRET)
    gateway_port = gateway_socket.getsockname()[1]
    gateway_socket.close()

    @contextlib.asynccontextmanager
    async def running(*args: str, keys: str = KEY_A, ready: bool = True,
                      **extra: str) -> AsyncIterator[GatewayProcess]:
        (tmp_path / "session-key").write_text(keys + "\n", encoding="utf-8")
        (tmp_path / "client-secret").write_text(CLIENT_SECRET, encoding="utf-8")
        metrics_port = free_port()
        env = gateway_env(idp, upstream, gateway_url,
                          GATEWAY_SERVER_LISTEN=f"127.0.0.1:{gateway_port}",
                          GATEWAY_SERVER_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
                          GATEWAY_SESSION_SECRET_FILE=str(tmp_path / "session-key"),
                          GATEWAY_COGNITO_CLIENT_SECRET_FILE=str(tmp_path / "client-secret"),
                          **extra)
        del env["GATEWAY_SESSION_SECRET"], env["GATEWAY_COGNITO_CLIENT_SECRET"]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        log = tmp_path / "gateway.log"
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "run", *args, cwd=REPO, env=clean | env,
                stdout=sink, stderr=asyncio.subprocess.STDOUT)
        running = GatewayProcess(process, gateway_url, f"http://127.0.0.1:{metrics_port}/metrics",
                                 log, tmp_path)
        try:
            if ready:
                await wait_for_status(f"{gateway_url}/ready", 200, process, log, within=20.0)
            yield running
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()
                    await process.wait()

    return running


async def get(url: str, cookie: str) -> tuple[int, str | None]:
    """An XHR carrying `cookie`: its status and the session cookie it sets (chunks joined)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http, \
            http.get(url, headers={"Cookie": cookie, **XHR}) as resp:
        jar: SimpleCookie = SimpleCookie()
        for header in resp.headers.getall("Set-Cookie", []):
            jar.load(header)
        chunks = sorted((name, morsel.value) for name, morsel in jar.items()
                        if name.startswith(COOKIE) and morsel.value)
        return resp.status, "".join(value for _, value in chunks) or None


def sealed(cookie: str) -> str:
    """The sealed session in a Cookie header (its chunks joined in order)."""
    pairs = dict(pair.strip().split("=", 1) for pair in cookie.split(";"))
    names = [COOKIE] + [f"{COOKIE}_{i}" for i in range(1, 10)]
    return "".join(pairs[name] for name in names if name in pairs)


def opens_with(key: str, token: str) -> bool:
    try:
        Fernet(key.encode()).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


async def test_a_session_key_rotated_by_a_file_change_under_load_fails_no_request(
        launch: Launch) -> None:
    """`B,A` written to the key file while 8 clients load the gateway with a cookie sealed with
    A: every request is answered 200, the old cookie is sealed again with B (once), and when
    the file says only `B` the old cookie is refused and the new one serves."""
    async with launch() as gateway:
        old_cookie = await sign_in_cookies(gateway.url)
        assert opens_with(KEY_A, sealed(old_cookie))
        statuses: list[int] = []
        stop = asyncio.Event()

        async def load() -> None:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
                while not stop.is_set():
                    async with http.get(f"{gateway.url}/load",
                                        headers={"Cookie": old_cookie, **XHR}) as resp:
                        statuses.append(resp.status)

        clients = [asyncio.create_task(load()) for _ in range(8)]
        await asyncio.sleep(0.3)
        (gateway.directory / "session-key").write_text(f"{KEY_B},{KEY_A}\n", encoding="utf-8")
        [reloaded] = await gateway.wait_for("config_reloaded")
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)

        assert (reloaded["trigger"], reloaded["keys"]) == ("file_change", ["session.secret"])
        assert len(statuses) > 50
        assert set(statuses) == {200}
        status, resealed = await get(f"{gateway.url}/x", old_cookie)
        assert status == 200
        assert resealed is not None
        assert opens_with(KEY_B, resealed)
        assert not opens_with(KEY_A, resealed)
        new_cookie = f"{COOKIE}={resealed}"
        assert await get(f"{gateway.url}/x", new_cookie) == (200, None)  # sealed once, not again

        (gateway.directory / "session-key").write_text(KEY_B, encoding="utf-8")
        await gateway.wait_for("config_reloaded", count=2)
        assert (await get(f"{gateway.url}/x", old_cookie))[0] == 401
        assert await get(f"{gateway.url}/x", new_cookie) == (200, None)
        assert await gateway.reloads("ok") == 2


async def test_a_client_secret_rotated_at_the_idp_then_reloaded_is_used_by_the_next_token_call(
        launch: Launch, idp: DevIdp) -> None:
    """The IdP's app client gets a new secret: sign-in fails with invalid_client until the
    gateway's file has it and SIGHUP reloads it; the next sign-in succeeds."""
    async with launch() as gateway:
        [client] = idp.pool.clients
        client.client_secret = NEW_CLIENT_SECRET
        with pytest.raises(AssertionError):
            await sign_in_cookies(gateway.url)
        [failure] = gateway.events("token_endpoint_error")
        assert failure["error"] == "invalid_client"

        (gateway.directory / "client-secret").write_text(NEW_CLIENT_SECRET, encoding="utf-8")
        gateway.process.send_signal(signal.SIGHUP)
        reloads = await gateway.wait_for("config_reloaded")

        assert reloads[0]["keys"] == ["cognito.client_secret"]
        cookie = await sign_in_cookies(gateway.url)
        assert (await get(f"{gateway.url}/x", cookie))[0] == 200
        assert len(gateway.events("token_endpoint_error")) == 1
        assert NEW_CLIENT_SECRET not in gateway.log.read_text(encoding="utf-8")


async def test_a_broken_config_file_is_refused_and_the_running_one_keeps_serving(
        launch: Launch, tmp_path: Path) -> None:
    """SIGHUP with an invalid file: each problem logged by key, nothing applied, `invalid`
    counted. A valid file that changes a listener limit: named as needing a restart; the gateway
    goes on serving, with the rules of the new file."""
    config = tmp_path / "gateway.toml"
    config.write_text('[auth]\npublic_paths = ["/open/*"]\n', encoding="utf-8")
    async with launch("--config", str(config)) as gateway:
        assert (await get(f"{gateway.url}/open/a", ""))[0] == 200
        assert (await get(f"{gateway.url}/closed", ""))[0] == 401
        config.write_text('[session]\nstore = "memcached"\nlifetime_seconds = "forever"\n',
                          encoding="utf-8")
        gateway.process.send_signal(signal.SIGHUP)
        [refused] = await gateway.wait_for("config_reload_refused")

        assert refused["trigger"] == "sighup"
        assert sorted(problem.split(":")[0] for problem in refused["problems"]) == [
            "session.lifetime_seconds", "session.store"]
        assert (await get(f"{gateway.url}/open/a", ""))[0] == 200
        assert await gateway.reloads("invalid") == 1

        config.write_text('[server]\nmax_connections = 50\n[auth]\npublic_paths = ["/*"]\n',
                          encoding="utf-8")
        gateway.process.send_signal(signal.SIGHUP)
        [restart] = await gateway.wait_for("config_reload_needs_restart")
        assert restart["keys"] == ["server.max_connections"]
        await gateway.wait_for("config_reloaded")
        assert (await get(f"{gateway.url}/closed", ""))[0] == 200
        assert gateway.process.returncode is None


async def test_sighup_to_the_supervisor_reloads_every_worker(launch: Launch) -> None:
    """`--workers 2`: the forwarded SIGHUP reloads each worker (two pids) and ends none.
    (A worker still starting gets the SIGHUP once it can reload, never dies of it.)"""
    async with launch("--workers", "2", GATEWAY_LOG_LEVEL="info") as gateway:
        await gateway.wait_for("idp_ready", count=2)  # both workers read the old file
        (gateway.directory / "client-secret").write_text(NEW_CLIENT_SECRET, encoding="utf-8")
        gateway.process.send_signal(signal.SIGHUP)
        reloads = await gateway.wait_for("config_reloaded", count=2)
        await asyncio.sleep(0.5)

        assert len({event["pid"] for event in reloads}) == 2
        assert gateway.process.returncode is None
        assert not gateway.events("worker_exited")
        assert await gateway.reloads("ok") == 2
        assert (await get(f"{gateway.url}/ready", ""))[0] == 200


async def test_a_sighup_while_workers_start_waits_for_them_instead_of_ending_them(
        launch: Launch) -> None:
    """SIGHUP as soon as the workers are spawned, long before they can reload: both start,
    serve, and none exits (SIGHUP's default action would have ended them)."""
    async with launch("--workers", "2", ready=False) as gateway:
        started = await gateway.wait_for("worker_started", count=2)
        gateway.process.send_signal(signal.SIGHUP)
        await gateway.wait_for("idp_ready", count=2)
        await gateway.wait_for("config_reload_unchanged", count=2)

        assert not gateway.events("worker_exited")
        assert {e["pid"] for e in gateway.events("listening")} == {e["pid"] for e in started}


# In-process: what `app[RECONFIGURE]` changes, request by request.


@pytest.fixture
async def in_process(idp: DevIdp, upstream: str, gateway_url: str,
                     gateway_socket: socket.socket, secrets: Secrets
                     ) -> AsyncIterator[tuple[dict[str, str], Any]]:
    env = gateway_env(idp, upstream, gateway_url, GATEWAY_SESSION_SECRET=KEY_A,
                      GATEWAY_AUTH_PUBLIC_PATHS="/docs/*")
    secrets.add(KEY_A, KEY_B)
    runner, gateway = await start_gateway(env, gateway_socket)
    yield env, gateway
    await runner.cleanup()


async def test_rules_identity_providers_and_alb_keys_change_with_a_reload(
        in_process: tuple[dict[str, str], Any], http: aiohttp.ClientSession) -> None:
    """Public paths, the identity-provider allow-list and the served ALB keys follow the
    reloaded settings; the session keys' public halves are served while both are configured."""
    env, gateway = in_process
    assert (await http.get(f"{gateway.url}/docs/a", headers=XHR)).status == 200
    before = await (await http.get(f"{gateway.url}/oauth2/jwks.json")).json()
    assert len(before["keys"]) == 1
    signed_in = await http.get(f"{gateway.url}/oauth2/sign_in?identity_provider=Okta",
                               allow_redirects=False)
    assert "identity_provider" not in signed_in.headers["Location"]

    gateway.app[RECONFIGURE](load_settings(environ=env | {
        "GATEWAY_SESSION_SECRET": f"{KEY_B},{KEY_A}", "GATEWAY_AUTH_PUBLIC_PATHS": "/news/*",
        "GATEWAY_COGNITO_IDENTITY_PROVIDERS": "Okta"}))

    assert (await http.get(f"{gateway.url}/docs/a", headers=XHR)).status == 401
    assert (await http.get(f"{gateway.url}/news/a", headers=XHR)).status == 200
    after = await (await http.get(f"{gateway.url}/oauth2/jwks.json")).json()
    assert len(after["keys"]) == 2
    assert before["keys"][0] == after["keys"][1]
    for key in after["keys"]:
        pem = await http.get(f"{gateway.url}/oauth2/public-keys/{key['kid']}")
        assert pem.status == 200
    signed_in = await http.get(f"{gateway.url}/oauth2/sign_in?identity_provider=Okta",
                               allow_redirects=False)
    assert "identity_provider=Okta" in signed_in.headers["Location"]

