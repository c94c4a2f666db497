"""The gateway under test, configured the way a deployment would: GATEWAY_* variables only.

A run has up to three gateways, one per upstream and process model: in front of the nginx
upstream (the HTTP scenarios, sign-in and bearer), in front of the aiohttp app (WebSocket and
upload), and ``--workers 2`` in front of the nginx upstream. Every one uses the cookie session
store, the access log on (its lines go to the service's log file), and plain http cookies.
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.idp import CLIENT_ID, SESSION_COOKIE, IdpSite

if TYPE_CHECKING:
    from collections.abc import Sequence

WORKERS_FLAG = "--workers"


@dataclass(frozen=True)
class GatewaySite:
    """One gateway's listener, metrics port and upstream."""

    port: int
    metrics_port: int
    upstream_url: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def environment(site: GatewaySite, idp: IdpSite, session_secret: str) -> dict[str, str]:
    """The process environment: ours without any GATEWAY_* of the caller's, plus the config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({
        "GATEWAY_SERVER_LISTEN": f"127.0.0.1:{site.port}",
        "GATEWAY_SERVER_METRICS_LISTEN": f"127.0.0.1:{site.metrics_port}",
        "GATEWAY_SERVER_PUBLIC_URL": site.url,
        "GATEWAY_UPSTREAM_URL": site.upstream_url,
        "GATEWAY_COGNITO_ISSUER": idp.issuer,
        "GATEWAY_COGNITO_DOMAIN": idp.base_url,
        "GATEWAY_COGNITO_CLIENT_ID": CLIENT_ID,
        "GATEWAY_COGNITO_CLIENT_SECRET": idp.client_secret,
        "GATEWAY_SESSION_SECRET": session_secret,
        "GATEWAY_SESSION_COOKIE_NAME": SESSION_COOKIE,
        "GATEWAY_SESSION_COOKIE_SECURE": "false",
        "GATEWAY_LOG_ACCESS_LOG": "true",
    })
    return env


def new_session_secret() -> str:
    """A Fernet key (32 random bytes, url-safe base64), as `generate-secret` prints."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def command(gateway: Sequence[str], workers: int = 1) -> list[str]:
    """`cognito-gateway run`, with `--workers N` when more than one."""
    argv = [*gateway, "run"]
    return [*argv, WORKERS_FLAG, str(workers)] if workers > 1 else argv


def supports_workers(gateway: Sequence[str]) -> bool:
    """Whether this build's `cognito-gateway run` accepts --workers (from its --help)."""
    shown = subprocess.run([*gateway, "run", "--help"], capture_output=True,
                           text=True, check=False, timeout=60)
    return WORKERS_FLAG in shown.stdout


def version(gateway: Sequence[str]) -> str:
    """`cognito-gateway --version`, e.g. "cognito-gateway 0.1.0"."""
    shown = subprocess.run([*gateway, "--version"], capture_output=True,
                           text=True, check=False, timeout=60)
    return shown.stdout.strip() or shown.stderr.strip()
