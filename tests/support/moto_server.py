"""A real moto server (the AWS API, Cognito user pools and IAM) as a subprocess on 127.0.0.1.

`start_moto_server` runs `python -m moto.server -p 0`: the OS picks a free port, and the
server's own "Running on http://127.0.0.1:<port>" line says which; readiness is a TCP connect
to it, polled against a deadline that fails loudly (with the server's output) if it passes or
the process exits. `MotoAdmin` is the tests' own SDK client for setting up pools and clients:
it shares no code with the gateway's `gateway.aws`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path

RUNNING = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")
DUMMY_ACCESS_KEY = "AKIADOCTORTESTS00000"


@functools.cache
def _session() -> Any:
    """One SDK session for every test: it caches the service models, which are slow to load."""
    return importlib.import_module("aiobotocore.session").get_session()


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Terminate the server (and wait for it); idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


def start_moto_server(log: Path, *, env: Mapping[str, str] | None = None,
                      within: float = 30.0) -> MotoServer:
    """Start moto in server mode on a port the OS picks; return once it accepts connections."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(env or {})
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=sink, stderr=subprocess.STDOUT, env=environment)
    server = MotoServer("", process, log)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto server exited with {process.returncode}:\n{_tail(log)}")
        found = RUNNING.search(log.read_text(encoding="utf-8", errors="replace"))
        if found:
            port = int(found.group(1))
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                        timeout=1):
                server.url = f"http://127.0.0.1:{port}"
                return server
        time.sleep(0.05)
    server.stop()
    pytest.fail(f"moto server did not come up within {within} s:\n{_tail(log)}")


def aws_environment(endpoint: str, secret_access_key: str, config_dir: Path,
                    access_key: str = DUMMY_ACCESS_KEY) -> dict[str, str]:
    """Variables that point the AWS SDK's default chain at `endpoint` with static keys only."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_access_key,
        "AWS_CONFIG_FILE": str(config_dir / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# Variables through which this machine's own AWS setup could reach the SDK's default chain.
AMBIENT_AWS_VARIABLES = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def use_aws_environment(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    """Make this process's SDK default chain see exactly `env`: every ambient AWS variable
    is removed first (nothing of this machine's AWS setup leaks into a test)."""
    for key in AMBIENT_AWS_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def no_credentials_environment(config_dir: Path) -> dict[str, str]:
    """Variables under which the SDK's default chain finds no credentials at all."""
    return {"AWS_CONFIG_FILE": str(config_dir / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true"}


class MotoAdmin:
    """Setting up user pools and app clients in moto through the SDK (aiobotocore)."""

    def __init__(self, cognito: Any, iam: Any) -> None:
        self.cognito = cognito
        self.iam = iam

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, endpoint: str, region: str, secret_access_key: str, *,
                      access_key: str = DUMMY_ACCESS_KEY, iam: bool = False
                      ) -> AsyncIterator[MotoAdmin]:
        """A cognito-idp client (and an IAM client when `iam`) for moto at `endpoint`."""
        # botocore logs whole response bodies (client secrets included) at DEBUG.
        for name in ("botocore", "aiobotocore"):
            logging.getLogger(name).setLevel(logging.INFO)
        session = _session()
        keys = {"endpoint_url": endpoint, "aws_access_key_id": access_key,
                "aws_secret_access_key": secret_access_key}
        async with contextlib.AsyncExitStack() as stack:
            cognito = await stack.enter_async_context(
                session.create_client("cognito-idp", region_name=region, **keys))
            iam_client = await stack.enter_async_context(
                session.create_client("iam", region_name="us-east-1", **keys)) if iam else None
            yield cls(cognito, iam_client)

    async def create_pool(self, name: str, **settings: Any) -> str:
        answer = await self.cognito.create_user_pool(PoolName=name, **settings)
        return str(answer["UserPool"]["Id"])

    async def create_client(self, pool_id: str, **settings: Any) -> dict[str, Any]:
        answer = await self.cognito.create_user_pool_client(UserPoolId=pool_id, **settings)
        return dict(answer["UserPoolClient"])

    async def create_domain(self, pool_id: str, domain: str) -> None:
        await self.cognito.create_user_pool_domain(UserPoolId=pool_id, Domain=domain)

    async def describe_client(self, pool_id: str, client_id: str) -> dict[str, Any]:
        answer = await self.cognito.describe_user_pool_client(UserPoolId=pool_id,
                                                              ClientId=client_id)
        return dict(answer["UserPoolClient"])

    async def update_client(self, **request: Any) -> None:
        await self.cognito.update_user_pool_client(**request)

    def service_model(self) -> Any:
        """botocore's model of the cognito-idp API (operation and parameter shapes)."""
        return self.cognito.meta.service_model
