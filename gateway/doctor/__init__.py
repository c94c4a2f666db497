"""`cognito-gateway doctor`: check a configuration against the real IdP and say what to fix.

`run_doctor` loads the configuration (every problem listed, exit 2), then runs the checks of
`gateway.doctor.checks` and prints one PASS/WARN/FAIL line per finding with its fix; the exit
code is 1 when anything failed, else 0. It probes the token endpoint only with a made-up
authorization code, so running it changes nothing at the IdP, and it never prints a secret.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import aiohttp

from gateway.config import Settings, load_settings
from gateway.doctor.checks import run_checks
from gateway.doctor.report import Finding, Status, exit_code, render
from gateway.errors import ConfigError

CONFIG_ERROR_EXIT = 2

__all__ = ["Finding", "Status", "main", "run_doctor"]


def _config_finding(settings: Settings, source: str) -> Finding:
    c = settings.cognito
    kind = ("confidential client (client_secret set)" if c.client_secret
            else "public client (no client_secret, PKCE)")
    return Finding.ok("config", f"{source}: issuer {settings.issuer}, client_id {c.client_id}, "
                      f"{kind}")


async def run_doctor(config: Path | None, *, out: TextIO,
                     environ: Mapping[str, str] | None = None) -> int:
    """Check the configuration in `config` (and GATEWAY_* in `environ`); write the report."""
    source = str(config) if config else "environment"
    out.write(f"cognito-gateway doctor: checking {source}\n\n")
    try:
        settings = load_settings(config, environ)
    except ConfigError as exc:
        findings = [Finding.fail("config", str(problem), "Correct this setting in the file or "
                                 "its GATEWAY_* environment variable.")
                    for problem in exc.problems]
        out.write(render(findings))
        return CONFIG_ERROR_EXIT
    findings = [_config_finding(settings, source)]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                     headers={"User-Agent": "cognito-gateway-doctor"}) as http:
        findings.extend(await run_checks(settings, http))
    out.write(render(findings))
    return exit_code(findings)


def main(config: Path | None) -> int:
    """The command line entry: run the doctor on stdout and return its exit code."""
    return asyncio.run(run_doctor(config, out=sys.stdout))
