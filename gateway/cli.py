"""The `cognito-gateway` command line (also `python -m gateway`): one function per command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet

from gateway import __version__
from gateway.auth import explain
from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.observability.logging import configure_logging

if TYPE_CHECKING:
    from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cognito-gateway", description=(
        "An authentication reverse proxy that puts Amazon Cognito sign-in in front of any app."))
    parser.add_argument("--version", action="version", version=f"cognito-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve: proxy and /oauth2/* endpoints")
    run.add_argument("--config", type=Path, help="TOML file; GATEWAY_* variables override it")
    run.add_argument("--workers", type=_worker_count, metavar="N",
                     help="processes serving on one port (overrides server.workers)")
    run.add_argument("--lifeline-fd", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    commands.add_parser("generate-secret", help="print a new session key (Fernet)")
    config = commands.add_parser("config", help="work with the configuration offline")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser(
        "check", help="validate the config without contacting anything (exit 2 with every problem)")
    check.add_argument("--config", type=Path, help="TOML file; GATEWAY_* variables override it")
    commands.add_parser("demo", help="dev IdP + demo app + gateway on 127.0.0.1, no AWS needed")
    idp = commands.add_parser("dev-idp", help="the local Cognito stand-in alone")
    idp.add_argument("--port", type=int, default=4181)
    idp.add_argument("--host", default="127.0.0.1")
    idp.add_argument("--config", type=Path, help="user pool TOML (default: the demo pool)")
    doctor = commands.add_parser(
        "doctor", help="check a config against the IdP and print each finding with its fix")
    doctor.add_argument("--config", type=Path, help="TOML file; GATEWAY_* variables override it")
    doctor.add_argument("--json", action="store_true",
                        help="print the findings as one JSON document (for CI)")
    explain.add_arguments(commands.add_parser(
        "explain", help="which rule decides a request and why, without starting anything"))
    _sessions_parser(commands)
    return parser


def _sessions_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sessions = commands.add_parser("sessions", help="a user's sessions: list, or revoke them "
                                   "on every replica")
    actions = sessions.add_subparsers(dest="action", required=True)
    for action, text in (("list", "list the user's sessions (Redis store)"),
                         ("revoke", "end every session of the user, on every replica")):
        parser = actions.add_parser(action, help=text)
        parser.add_argument("--sub", required=True, help="the user's `sub` (X-Auth-Request-Sub)")
        parser.add_argument("--config", type=Path,
                            help="TOML file; GATEWAY_* variables override it")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `cognito-gateway` subcommand `argv` names; returns the process exit status."""
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args.config, args.workers, args.lifeline_fd)
    if args.command == "demo":
        return _demo()
    if args.command == "doctor":
        return _doctor(args.config, as_json=args.json)
    if args.command == "config":
        return _config_check(args.config)
    if args.command == "explain":
        return explain.main(args)
    if args.command == "sessions":
        return _sessions(args.action, args.sub, args.config)
    if args.command == "generate-secret":
        print(Fernet.generate_key().decode())
        return 0
    from gateway.devidp.cli import serve_forever  # noqa: PLC0415 - only this command needs it

    serve_forever(args.host, args.port, args.config)
    return 0


def _worker_count(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {value!r}")
    return int(value)


def _run(config: Path | None, workers: int | None = None, lifeline_fd: int | None = None) -> int:
    from gateway.server import new_event_loop, serve  # noqa: PLC0415

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"cognito-gateway: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log.level)
    if lifeline_fd is not None or (workers or settings.server.workers) > 1:
        from gateway.workers import run_supervisor, run_worker  # noqa: PLC0415

        if lifeline_fd is not None:
            return run_worker(settings, lifeline_fd, config)
        return run_supervisor(settings, workers or settings.server.workers, config)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(settings, config=config))
    return 0


def _config_check(config: Path | None) -> int:
    """Load the settings exactly as `run` would; print a summary without any secret."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"cognito-gateway: {exc}", file=sys.stderr)
        return 2
    client = "confidential" if settings.cognito.client_secret else "public (PKCE only)"
    print(f"""config OK
  public_url      {settings.server.public_url}
  issuer          {settings.issuer}
  app client      {client}
  session store   {settings.session.store}
  workers         {settings.server.workers}""")
    return 0


def _doctor(config: Path | None, *, as_json: bool = False) -> int:
    from gateway.doctor import main as doctor_main  # noqa: PLC0415

    # The probes' own token_endpoint_error lines would repeat the findings: errors only.
    configure_logging("error", stream=sys.stderr)
    return doctor_main(config, as_json=as_json)


def _sessions(action: str, sub: str, config: Path | None) -> int:
    from gateway.sessions.admin import run  # noqa: PLC0415

    configure_logging("info", stream=sys.stderr)  # stdout is the operator's report
    return run(action, sub, config, out=sys.stdout, err=sys.stderr)


def _demo() -> int:
    from gateway.demo.stack import (  # noqa: PLC0415 - only this command needs it
        DEMO_PASSWORD,
        DEMO_USER,
        PARTNER_PASSWORD,
        PARTNER_USER,
        start_demo,
    )

    configure_logging("warning")

    async def demo() -> None:
        stack = await start_demo()
        print(f"""
cognito-gateway demo is running on this machine, no AWS account needed:

  Open        {stack.gateway_url}/
  User        {DEMO_USER}  /  {DEMO_PASSWORD}
  Partner     {PARTNER_USER}  /  {PARTNER_PASSWORD}
              ("Sign in with PartnerSAML" on the sign-in page: a federated sign-in)

  Dev IdP     {stack.idp.base_url}  (issuer {stack.idp.issuer})
  Sign out    {stack.gateway_url}/oauth2/sign_out

Press Ctrl-C to stop.""", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await stack.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(demo())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
