"""`python -m tests.soak [options]`: run the soak, print a summary, write the JSON report.

Exit status: 0 when every guarantee holds, 1 when one is broken (the summary says which, with
its numbers), 2 when the soak could not run (bad options, a process that did not start,
`--workers` on a gateway that cannot run workers yet).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.soak.plan import RUN_DIR, SoakPlan
from tests.soak.processes import SoakError
from tests.soak.report import render
from tests.soak.run import run_soak


def _parser() -> argparse.ArgumentParser:
    full = SoakPlan()
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak",
        description="A bounded load-with-faults run of the gateway against the local Cognito "
                    "stand-in, on 127.0.0.1.")
    parser.add_argument("--short", action="store_true",
                        help="the CI form: 40 users, 20 s, 6 s tokens, faults compressed "
                             "(other options still override it)")
    parser.add_argument("--users", type=int, help=f"signed-in users (default {full.users})")
    parser.add_argument("--duration", type=float,
                        help=f"seconds of traffic (default {full.duration:g})")
    parser.add_argument("--rate", type=float,
                        help=f"requests per second over all users (default {full.rate:g})")
    parser.add_argument("--token-seconds", type=int,
                        help=f"access/ID token lifetime (default {full.token_seconds})")
    parser.add_argument("--workers", type=int,
                        help="gateway worker processes; > 1 also kills one (default 1)")
    parser.add_argument("--store", choices=["cookie", "redis"],
                        help="session.store (default: redis with --workers > 1, else cookie); "
                             "redis runs a redis-server on 127.0.0.1 for the run")
    parser.add_argument("--seed", type=int, help="seed of the request mix and the forged kids")
    parser.add_argument("--no-faults", action="store_true",
                        help="traffic only: checks the harness itself")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="run the gateway under tracemalloc and report which source lines "
                             "grew its heap after the warm-up (slower: latency not comparable)")
    parser.add_argument("--out", type=Path,
                        help="JSON report path (default tests/soak/run/soak-<time>.json); the "
                             "process logs go next to it in <name>.logs/")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = (SoakPlan.short() if args.short else SoakPlan()).with_options(
        users=args.users, duration=args.duration, rate=args.rate,
        token_seconds=args.token_seconds, workers=args.workers, seed=args.seed,
        store=args.store,
        faults=False if args.no_faults else None, tracemalloc=args.tracemalloc or None)
    problems = plan.problems()
    if problems:
        print("soak: " + "; ".join(problems), file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out: Path = args.out or RUN_DIR / f"soak-{stamp}.json"
    logs = out.with_name(out.stem + ".logs")
    try:
        report = asyncio.run(run_soak(plan, logs))
    except SoakError as exc:
        print(f"soak: could not run: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(render(report))
    print(f"report: {out}\nprocess logs: {logs}/")
    return 0 if report["guarantees"]["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
