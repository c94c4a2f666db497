"""`cognito-gateway doctor`: check a configuration against the real IdP and say what to fix.

`run_doctor` loads the configuration (every problem listed, exit 2), then runs two sets of
checks side by side and prints one PASS/WARN/FAIL (or INFO) line per finding with its fix; the
exit code is 1 when anything failed, else 0. `--json` prints the same findings as one JSON
document (`gateway.doctor.jsonout`). Nothing printed ever includes a secret or a token.

- Probes (`gateway.doctor.checks`): discovery, JWKS, /authorize and the token endpoint with a
  made-up authorization code, so running them changes nothing at the IdP.
- API checks (`gateway.doctor.apichecks`), for a Cognito user pool and with AWS credentials
  from the SDK's default chain (the `aws` extra): the app client, user pool and domain as
  DescribeUserPoolClient, DescribeUserPool and DescribeUserPoolDomain describe them, compared
  with the configuration; each FAIL on an app client setting carries an
  `aws cognito-idp update-user-pool-client` command that keeps every other setting. Without
  the SDK, credentials or permission: one WARN with the IAM policy to grant.

The gateway's own use of the same facts (`cognito.doctor_at_start`), without any printing:

    facts, findings = await check_app_client(settings)   # at start; log each finding
    # facts is None without the SDK, credentials, permission or a Cognito user pool
    ...
    cause = confirmed_cause(facts, outcome=err.outcome, grant_type=err.grant_type,
                            error_description=err.error_description) if facts else None
    # a sentence naming the CONFIRMED cause of a token-endpoint error, or None

`read_app_client(settings)` gives the facts alone (None when they cannot be read), and
`app_client_findings(facts)` the findings for facts read earlier. Facts are a snapshot of both
the app client and the configuration: read them again after a reload.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, TextIO

import aiohttp

from gateway.config import Settings, load_settings
from gateway.doctor.apichecks import api_findings, app_client_findings, check_app_client
from gateway.doctor.causes import confirmed_cause
from gateway.doctor.checks import run_checks
from gateway.doctor.facts import AppClientFacts, read_app_client, read_facts
from gateway.doctor.jsonout import render_json
from gateway.doctor.report import Finding, Status, exit_code, render
from gateway.doctor.verdicts import CLIENT
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

CONFIG_ERROR_EXIT = 2

__all__ = ["AppClientFacts", "Finding", "Status", "app_client_findings", "check_app_client",
           "confirmed_cause", "main", "read_app_client", "run_doctor"]


def _config_finding(settings: Settings, source: str) -> Finding:
    c = settings.cognito
    kind = ("confidential client (client_secret set)" if c.client_secret
            else "public client (no client_secret, PKCE)")
    return Finding.ok("config", f"{source}: issuer {settings.issuer}, client_id {c.client_id}, "
                      f"{kind}")


async def _findings(settings: Settings, source: str) -> list[Finding]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                     headers={"User-Agent": "cognito-gateway-doctor"}) as http:
        probed, read = await asyncio.gather(run_checks(settings, http), read_facts(settings))
    accepted = any(f.check == CLIENT and f.status is Status.PASS for f in probed)
    return [_config_finding(settings, source), *probed,
            *api_findings(read, secret_accepted=accepted)]


async def run_doctor(config: Path | None, *, out: TextIO,
                     environ: Mapping[str, str] | None = None, as_json: bool = False) -> int:
    """Check the configuration in `config` (and GATEWAY_* in `environ`); write the report."""
    source = str(config) if config else "environment"
    if not as_json:
        out.write(f"cognito-gateway doctor: checking {source}\n\n")
    try:
        settings = load_settings(config, environ)
    except ConfigError as exc:
        findings = [Finding.fail("config", str(problem), "Correct this setting in the file or "
                                 "its GATEWAY_* environment variable.")
                    for problem in exc.problems]
        code = CONFIG_ERROR_EXIT
    else:
        findings = await _findings(settings, source)
        code = exit_code(findings)
    out.write(render_json(findings, source=source, exit_code=code) if as_json
              else render(findings))
    return code


def main(config: Path | None, *, as_json: bool = False) -> int:
    """The command line entry: run the doctor on stdout and return its exit code."""
    return asyncio.run(run_doctor(config, out=sys.stdout, as_json=as_json))
