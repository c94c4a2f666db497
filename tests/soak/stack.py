"""The system under soak: the local Cognito stand-in, the upstream and the gateway, as processes.

All three listen on free ports of 127.0.0.1, and so does a redis-server when the plan's session
store is Redis. The stand-in serves a generated pool (one app client with refresh-token
rotation and a grace period of 0, `users` users with random passwords); the pool file is
deleted as soon as the stand-in has read it. The gateway is configured by GATEWAY_* variables
only, with the ALB header set on so the upstream can report each user's token expiry (see
tests/soak/upstream.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet

from gateway.demo.stack import free_port
from tests.soak.processes import Child, SoakError
from tests.support.redis_servers import RedisServer

if TYPE_CHECKING:
    from tests.soak.plan import SoakPlan

REPO = Path(__file__).resolve().parents[2]
POOL_ID = "local-1_SoakPool1"
CLIENT_ID = "soak-gateway"
READY_WITHIN = 30.0


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass
class Stack:
    """The three running processes and how to reach them."""

    plan: SoakPlan
    idp: Child
    upstream: Child
    gateway: Child
    idp_url: str
    upstream_url: str
    gateway_url: str
    metrics_url: str
    users: list[Credentials]
    heap_dir: Path | None = None  # where the traced gateway writes heap snapshots
    redis: RedisServer | None = None  # the session store, with `session.store = "redis"`

    @property
    def issuer(self) -> str:
        return f"{self.idp_url}/{POOL_ID}"

    @property
    def authorize_url(self) -> str:
        """Where the gateway sends a browser to sign in."""
        return f"{self.idp_url}/oauth2/authorize"

    async def restart_upstream(self) -> None:
        """Start the (killed) upstream again on its port and wait until it answers."""
        await self.upstream.start()
        await self.upstream.wait_until_answers(f"{self.upstream_url}/_soak/ready",
                                               within=READY_WITHIN)

    async def stop(self) -> None:
        """Stop every process (gateway first, so it does not log the others vanishing)."""
        await self.gateway.stop()
        await asyncio.gather(self.upstream.stop(), self.idp.stop())
        if self.redis is not None:
            self.redis.close()


def _toml(value: object) -> str:
    """A TOML value for strings, numbers, booleans and lists of strings (JSON spells them alike)."""
    return json.dumps(value)


def pool_toml(plan: SoakPlan, users: list[Credentials], client_secret: str,
              gateway_url: str) -> str:
    """The stand-in's pool file: one confidential code-flow client and the soak's users."""
    client = {
        "client_id": CLIENT_ID, "client_secret": client_secret, "allowed_flows": ["code"],
        "allowed_scopes": ["openid", "email", "profile"],
        "callback_urls": [f"{gateway_url}/oauth2/callback"],
        "logout_urls": [f"{gateway_url}/oauth2/signed_out"],
        "access_token_validity_seconds": plan.token_seconds,
        "id_token_validity_seconds": plan.token_seconds,
        "refresh_token_validity_seconds": 86400,
        "refresh_token_rotation": True, "rotation_grace_seconds": 0,
    }
    lines = [f"pool_id = {_toml(POOL_ID)}", 'region = "local-1"', "", "[[clients]]"]
    lines += [f"{key} = {_toml(value)}" for key, value in client.items()]
    for user in users:
        lines += ["", "[[users]]", f"username = {_toml(user.username)}",
                  f"password = {_toml(user.password)}",
                  f"email = {_toml(user.username + '@soak.example')}", "email_verified = true"]
    return "\n".join(lines) + "\n"


def write_pool_file(run_dir: Path, text: str) -> Path:
    """Write the pool file (readable by this user only) into `run_dir`, creating it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    pool_file = run_dir / "pool.toml"
    pool_file.touch(mode=0o600)
    pool_file.write_text(text, encoding="utf-8")
    return pool_file


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without GATEWAY_* variables, plus `extra`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")} | extra


def gateway_argv(workers: int, heap_dir: Path | None = None) -> list[str]:
    """`cognito-gateway run`, with `--workers N` only when more than one worker is asked for;
    with `heap_dir`, under tracemalloc (tests/soak/traced.py) writing snapshots there."""
    argv = [sys.executable, "-m", "gateway", "run"]
    if heap_dir is not None:
        argv = [sys.executable, "-m", "tests.soak.traced", str(heap_dir), "run"]
    return [*argv, "--workers", str(workers)] if workers > 1 else argv


async def gateway_supports_workers() -> bool:
    """Whether this checkout's `cognito-gateway run` has a `--workers` option."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "--help", cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return b"--workers" in out


async def start_stack(plan: SoakPlan, run_dir: Path) -> Stack:
    """Start the stand-in and the upstream, then the gateway; return once all answer.

    On any failure every process already started is stopped and SoakError is raised with the
    end of the failing process's log.
    """
    if plan.workers > 1 and not await gateway_supports_workers():
        raise SoakError(
            f"--workers {plan.workers}: this checkout's `cognito-gateway run` has no --workers "
            "option yet (multi-worker serving is being implemented); run the soak with "
            "--workers 1")
    idp_port, upstream_port, gateway_port, metrics_port = (free_port() for _ in range(4))
    idp_url = f"http://127.0.0.1:{idp_port}"
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    users = [Credentials(f"soak-{i:04d}", f"pw-{secrets.token_urlsafe(12)}")
             for i in range(1, plan.users + 1)]
    client_secret = secrets.token_urlsafe(32)
    pool_file = write_pool_file(run_dir, pool_toml(plan, users, client_secret, gateway_url))
    idp = Child("dev IdP", [sys.executable, "-m", "gateway", "dev-idp", "--port", str(idp_port),
                            "--config", str(pool_file)],
                env=_child_env({}), cwd=REPO, log=run_dir / "idp.log", quiet_stdout=True)
    upstream = Child("upstream", [sys.executable, "-m", "tests.soak.upstream", str(upstream_port)],
                     env=_child_env({}), cwd=REPO, log=run_dir / "upstream.log")
    heap_dir = run_dir / "heap" if plan.tracemalloc else None
    redis = RedisServer(run_dir / "redis") if plan.session_store == "redis" else None
    store_env = {"GATEWAY_SESSION_STORE": "redis", "GATEWAY_SESSION_REDIS_URL": redis.url()} \
        if redis else {}
    gateway = Child("gateway", gateway_argv(plan.workers, heap_dir), cwd=REPO,
                    log=run_dir / "gateway.log",
                    env=_child_env({
                        "GATEWAY_SERVER_LISTEN": f"127.0.0.1:{gateway_port}",
                        "GATEWAY_SERVER_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
                        "GATEWAY_SERVER_PUBLIC_URL": gateway_url,
                        "GATEWAY_SERVER_SHUTDOWN_TIMEOUT_SECONDS": "2",
                        "GATEWAY_UPSTREAM_URL": upstream_url,
                        "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "10",
                        "GATEWAY_COGNITO_ISSUER": f"{idp_url}/{POOL_ID}",
                        "GATEWAY_COGNITO_DOMAIN": idp_url,
                        "GATEWAY_COGNITO_CLIENT_ID": CLIENT_ID,
                        "GATEWAY_COGNITO_CLIENT_SECRET": client_secret,
                        "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
                        "GATEWAY_SESSION_COOKIE_SECURE": "false",
                        "GATEWAY_SESSION_REFRESH_BEFORE_EXPIRY_SECONDS":
                            str(plan.refresh_before_expiry),
                        "GATEWAY_HEADERS_SETS": "x-auth-request,alb",
                        "GATEWAY_LOG_ACCESS_LOG": "false",
                    } | store_env))
    stack = Stack(plan, idp, upstream, gateway, idp_url, upstream_url, gateway_url,
                  f"http://127.0.0.1:{metrics_port}/metrics", users, heap_dir, redis)
    try:
        if redis is not None:
            try:
                await asyncio.to_thread(redis.start)
            except AssertionError as exc:  # tests/support's servers fail as tests do
                raise SoakError(f"redis-server did not start: {exc}") from exc
        await asyncio.gather(idp.start(), upstream.start())
        await asyncio.gather(
            idp.wait_until_answers(f"{stack.issuer}/.well-known/openid-configuration",
                                   within=READY_WITHIN),
            upstream.wait_until_answers(f"{upstream_url}/_soak/ready", within=READY_WITHIN))
        pool_file.unlink()
        await gateway.start()
        await gateway.wait_until_answers(f"{gateway_url}/ready", within=READY_WITHIN)
    except BaseException:
        pool_file.unlink(missing_ok=True)
        await stack.stop()
        raise
    return stack
