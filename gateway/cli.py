"""The `cognito-gateway` command: run, demo, dev-idp, doctor (and `python -m gateway`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet

from gateway import __version__
from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.observability.logging import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cognito-gateway", description=(
        "An authentication reverse proxy that puts Amazon Cognito sign-in in front of any app."))
    parser.add_argument("--version", action="version", version=f"cognito-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve: proxy and /oauth2/* endpoints")
    run.add_argument("--config", type=Path, help="TOML file; GATEWAY_* variables override it")
    commands.add_parser("generate-secret", help="print a new session key (Fernet)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args.config)
    if args.command == "demo":
        return _demo()
    if args.command == "doctor":
        return _doctor(args.config, as_json=args.json)
    if args.command == "generate-secret":
        print(Fernet.generate_key().decode())
        return 0
    from gateway.devidp.cli import serve_forever  # noqa: PLC0415 - only this command needs it

    serve_forever(args.host, args.port, args.config)
    return 0


def _run(config: Path | None) -> int:
    from gateway.server import new_event_loop, serve  # noqa: PLC0415

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"cognito-gateway: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log.level)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(settings))
    return 0


def _doctor(config: Path | None, *, as_json: bool = False) -> int:
    from gateway.doctor import main as doctor_main  # noqa: PLC0415

    # The probes' own token_endpoint_error lines would repeat the findings: errors only.
    configure_logging("error", stream=sys.stderr)
    return doctor_main(config, as_json=as_json)


def _demo() -> int:
    from gateway.demo.stack import DEMO_PASSWORD, DEMO_USER, start_demo  # noqa: PLC0415

    configure_logging("warning")

    async def demo() -> None:
        stack = await start_demo()
        print(f"""
cognito-gateway demo is running (everything on 127.0.0.1, no AWS account needed):

  Open        {stack.gateway_url}/
  User        {DEMO_USER}
  Password    {DEMO_PASSWORD}

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
