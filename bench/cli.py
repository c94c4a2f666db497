"""`python -m bench`: the options, and the exit status."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.options import PROJECT, Options
from bench.scenarios import SCENARIOS

if TYPE_CHECKING:
    from collections.abc import Sequence

QUICK_DURATION = 1


def _scenario_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(SCENARIOS)}")
    return tuple(n for n in SCENARIOS if n in names)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def parse(argv: Sequence[str] | None = None) -> Options:
    """Options from the command line; --quick shrinks what was not given explicitly."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The gateway's own bounded benchmark, next to nginx, on 127.0.0.1.")
    parser.add_argument("--only", type=_scenario_list, default=tuple(SCENARIOS),
                        help=f"comma-separated scenarios (default: all of {','.join(SCENARIOS)})")
    parser.add_argument("--duration", type=_positive, help="seconds per run (default 10)")
    parser.add_argument("--rounds", type=_positive, help="interleaved rounds (default 3)")
    parser.add_argument("--warmup", type=int, help="warm-up seconds per target (default 2)")
    parser.add_argument("--connections", type=_positive, default=32,
                        help="concurrent connections of wrk and of the WebSocket load")
    parser.add_argument("--quick", action="store_true",
                        help="1-second runs, one round, no warm-up: a smoke test, not a measure")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin servers to CPU 0 and the load to CPU 1")
    parser.add_argument("--profile", action="store_true",
                        help="after the rounds, profile the gateway under the small-response "
                             "load with py-spy (needs root); output under the run directory")
    parser.add_argument("--run-dir", type=Path, default=PROJECT / "bench" / "run",
                        help="configs, logs and venvs of the run (default bench/run)")
    parser.add_argument("--results-dir", type=Path, default=PROJECT / "bench" / "results",
                        help="where the JSON result goes (default bench/results)")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    return Options(
        scenarios=args.only,
        duration=args.duration or (QUICK_DURATION if quick else 10),
        rounds=args.rounds or (1 if quick else 3),
        warmup=args.warmup if args.warmup is not None else (0 if quick else 2),
        connections=args.connections, quick=quick, pin=not args.no_pin,
        profile=bool(args.profile), run_dir=args.run_dir.resolve(),
        results_dir=args.results_dir.resolve())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran, 1 when it could not (with the reason on stderr)."""
    from bench.run import BenchFailed, run  # noqa: PLC0415 - keeps --help fast

    options = parse(argv)
    try:
        run(options)
    except BenchFailed as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; every service was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    os.chdir(PROJECT)
    sys.exit(main())
