"""Run npm's ``oidc-provider`` (pinned in ``tests/oidc_provider``) as a real OpenID provider.

``async with start_oidc_provider(clients=[...], users=[...]) as op:`` starts
``node tests/oidc_provider/provider.mjs`` on a free ``127.0.0.1`` port, waits for its ready
line and yields a :class:`RunningProvider` whose ``issuer`` is ``http://127.0.0.1:PORT``; on exit
the process gets SIGTERM (then SIGKILL after 5 s). What the provider does (claims, consent,
refresh tokens, PKCE, logout) is described at the top of ``provider.mjs``.

The Node packages are installed by ``scripts/install-test-deps.sh``; tests should skip with
:data:`NODE_SKIP_REASON` when :func:`node_available` is false.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = [
    "NODE_SKIP_REASON",
    "PROVIDER_DIR",
    "OidcClient",
    "OidcProviderError",
    "OidcUser",
    "RunningProvider",
    "node_available",
    "start_oidc_provider",
]

PROVIDER_DIR: Final[Path] = Path(__file__).resolve().parent.parent / "oidc_provider"
"""Folder holding ``provider.mjs``, ``package.json`` and (once installed) ``node_modules``."""

NODE_SKIP_REASON: Final[str] = (
    "npm oidc-provider is not installed: run scripts/install-test-deps.sh "
    "(needs node on PATH and tests/oidc_provider/node_modules)"
)
"""The skip reason to give when :func:`node_available` is false."""

READY_TIMEOUT: Final[float] = 20.0
STOP_TIMEOUT: Final[float] = 5.0


class OidcProviderError(RuntimeError):
    """Raised when the provider process exits or stays silent instead of becoming ready."""


@dataclass(frozen=True)
class OidcClient:
    """A client registered at the provider.

    ``client_secret=None`` makes a public client (``token_endpoint_auth_method`` ``none``, PKCE
    required); otherwise the client authenticates with ``token_endpoint_auth_method``, by
    default ``client_secret_basic`` (``client_secret_post`` is the other useful value). Every
    client may use the ``authorization_code`` and ``refresh_token`` grants.
    """

    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    token_endpoint_auth_method: str | None = None

    def to_json(self) -> dict[str, object]:
        """Return the client as ``provider.mjs`` reads it."""
        data: dict[str, object] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
        }
        if self.token_endpoint_auth_method is not None:
            data["token_endpoint_auth_method"] = self.token_endpoint_auth_method
        return data


@dataclass(frozen=True)
class OidcUser:
    """A user who can sign in with ``username``/``password``; ``sub`` is the subject claim.

    ID tokens and userinfo carry ``groups`` (always), ``preferred_username`` and ``name``
    (scope ``profile``, both the username) and ``email``/``email_verified`` (scope ``email``,
    only when ``email`` is set).
    """

    username: str
    password: str
    sub: str
    email: str | None = None
    groups: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """Return the user as ``provider.mjs`` reads it."""
        return {
            "username": self.username,
            "password": self.password,
            "sub": self.sub,
            "email": self.email,
            "groups": list(self.groups),
        }


@dataclass
class RunningProvider:
    """A started provider: ``issuer`` (no trailing slash) and its ``node`` process.

    ``output`` collects the process's stdout and stderr lines read so far (oidc-provider's
    warnings included), useful in failure messages.
    """

    issuer: str
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)

    @property
    def discovery_url(self) -> str:
        """The ``/.well-known/openid-configuration`` URL."""
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def authorization_endpoint(self) -> str:
        """``/auth``, oidc-provider's authorization endpoint."""
        return f"{self.issuer}/auth"

    @property
    def token_endpoint(self) -> str:
        """``/token``, oidc-provider's token endpoint."""
        return f"{self.issuer}/token"

    @property
    def end_session_endpoint(self) -> str:
        """``/session/end``, oidc-provider's RP-initiated logout endpoint."""
        return f"{self.issuer}/session/end"


def node_available() -> bool:
    """Whether ``node`` is on PATH and ``tests/oidc_provider/node_modules`` has oidc-provider."""
    return (
        shutil.which("node") is not None
        and (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").is_file()
    )


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def start_oidc_provider(
    *,
    clients: list[OidcClient],
    users: list[OidcUser],
    access_token_ttl: int = 3600,
    id_token_ttl: int = 3600,
    refresh_token_ttl: int = 86400,
    consent: Literal["auto", "form"] = "auto",
    port: int | None = None,
) -> AsyncIterator[RunningProvider]:
    """Run ``provider.mjs`` on ``127.0.0.1`` and yield it once it is listening.

    ``port`` defaults to a free loopback port, chosen by the node process when it binds (so no
    other process can take it in between); the ready line reports it. TTLs are in seconds.
    ``consent="form"`` makes the provider show a consent page (which
    :meth:`ScriptedBrowser.sign_in` submits) instead of granting consent silently. Raises
    :class:`OidcProviderError`, with the process output, when node is missing, the process
    exits early or no ready line comes within 20 s. On exit the process is sent SIGTERM and
    killed if it has not stopped within 5 s.
    """
    node = shutil.which("node")
    if node is None:
        raise OidcProviderError("node is not on PATH; " + NODE_SKIP_REASON)
    config = {
        "host": "127.0.0.1",
        "port": port if port is not None else 0,  # 0: node binds a free port itself, race-free
        "clients": [c.to_json() for c in clients],
        "users": [u.to_json() for u in users],
        "access_token_ttl": access_token_ttl,
        "id_token_ttl": id_token_ttl,
        "refresh_token_ttl": refresh_token_ttl,
        "consent": consent,
        "signing_key": _signing_jwk(),
    }
    process = await asyncio.create_subprocess_exec(
        node,
        str(PROVIDER_DIR / "provider.mjs"),
        json.dumps(config),
        cwd=PROVIDER_DIR,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    output: list[str] = []
    drains: list[asyncio.Task[None]] = []
    try:
        issuer = await _wait_ready(process, output, drains)
        yield RunningProvider(issuer=issuer, process=process, output=output)
    finally:
        await _stop(process)
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)


async def _wait_ready(
    process: asyncio.subprocess.Process,
    output: list[str],
    drains: list[asyncio.Task[None]],
) -> str:
    """Read stdout until the ready line; keep draining both pipes into ``output`` afterwards."""
    assert process.stdout is not None
    assert process.stderr is not None
    drains.append(asyncio.create_task(_drain(process.stderr, output, "stderr")))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise OidcProviderError(_failure("no ready line within 20 s", process, output))
        try:
            raw = await asyncio.wait_for(process.stdout.readline(), remaining)
        except TimeoutError:
            continue
        if not raw:
            with contextlib.suppress(TimeoutError):  # let it exit and stderr drain, then report
                await asyncio.wait_for(process.wait(), 2.0)
            await asyncio.sleep(0.05)
            raise OidcProviderError(
                _failure("provider.mjs exited before it was ready", process, output)
            )
        line = raw.decode("utf-8", "replace").rstrip()
        output.append(f"stdout: {line}")
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("ready") is True:
            drains.append(asyncio.create_task(_drain(process.stdout, output, "stdout")))
            return str(message["issuer"])


async def _drain(stream: asyncio.StreamReader, output: list[str], label: str) -> None:
    """Append every line of ``stream`` to ``output`` until EOF."""
    while raw := await stream.readline():
        output.append(f"{label}: {raw.decode('utf-8', 'replace').rstrip()}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the process, SIGKILL it after 5 s, and reap it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _failure(reason: str, process: asyncio.subprocess.Process, output: list[str]) -> str:
    """Build an error message with the exit status and everything the process printed."""
    status = "still running" if process.returncode is None else f"exit {process.returncode}"
    printed = "\n".join(output) or "(no output)"
    return f"{reason} ({status}); output:\n{printed}"


def _signing_jwk() -> dict[str, str]:
    """A fresh private RS256 JWK for the provider (generated here: fast, and never committed)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, str] = json.loads(RSAAlgorithm.to_jwk(key))
    jwk.pop("key_ops", None)  # ["sign"] would stop the provider verifying its own id_token_hint
    return jwk | {"kid": "oidc-provider-tests-" + secrets.token_hex(4), "alg": "RS256",
                  "use": "sig"}
