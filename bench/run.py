"""One benchmark run, start to finish: start, warm up, interleaved rounds, report, stop.

Every target of every chosen scenario is measured once per round, the targets' order rotated
from round to round, so slow drifts of the machine touch all of them alike. Whatever happens
(an error, Ctrl-C, SIGTERM), every service started is stopped before the run returns.
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bench import clients, gateway, interpreter, nginx, profiling, report, results
from bench.deps import MissingDependency, ensure_load_tools
from bench.idp import SignInFailed
from bench.options import PROJECT, Options
from bench.procfs import MachineLoad
from bench.scenarios import SCENARIOS, CheckFailed, RunSettings, Scenario, Values
from bench.services import ServiceError
from bench.stack import Pinning, Stack
from bench.wrk import WrkFailed, run_wrk

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import FrameType

EXPECTED_FAILURES = (ServiceError, CheckFailed, WrkFailed, clients.TransferFailed, SignInFailed,
                     profiling.ProfileFailed, nginx.NginxConfigError, TimeoutError, OSError)
WORKERS_UNSUPPORTED = "not supported by this build: `cognito-gateway run` has no --workers"


class BenchFailed(RuntimeError):
    """The run could not be done; the message says why."""


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop  # noqa: PLC0415 - optional, from the `speed` extra
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(options: Options) -> Path:
    """Run the benchmark as `options` say; write and print the result; return its path."""
    started, clock = datetime.now(UTC), time.monotonic()
    try:
        ensure_load_tools()
        gateway_argv, gateway_python = interpreter.gateway_command(options.run_dir, PROJECT)
        alt = interpreter.comparison_gateway(options.run_dir, PROJECT)
    except (MissingDependency, FileNotFoundError, subprocess.CalledProcessError) as exc:
        raise BenchFailed(str(exc)) from exc
    pinning = Pinning.choose(pin=options.pin)
    if pinning.load is not None:
        os.sched_setaffinity(0, pinning.load)
    chosen = [SCENARIOS[name] for name in options.scenarios]
    if alt is not None:
        chosen = [scenario.with_comparison() for scenario in chosen]
    skipped: dict[str, str] = {}
    if "workers" in options.scenarios and not gateway.supports_workers(gateway_argv):
        skipped["workers"] = WORKERS_UNSUPPORTED
    runnable = [s for s in chosen if s.name not in skipped]
    stack = Stack(options.run_dir, pinning, gateway_argv, alt[0] if alt else None)
    options.run_dir.mkdir(parents=True, exist_ok=True)
    (options.run_dir / "profile").mkdir(exist_ok=True)
    scratch = options.run_dir / "scratch"
    scratch.mkdir(mode=0o700, exist_ok=True)
    settings = RunSettings(options.duration, options.connections, pinning.load,
                           pinning.everywhere, scratch)
    busy_before = _busy_cores(1.0)
    if busy_before > report.NOISY_CORES:
        print(f"bench: WARNING: {busy_before:.2f} CPU cores are busy with other work before "
              "the run; the figures will be skewed", flush=True)
    print(f"bench: {len(runnable)} scenario(s), {options.rounds} round(s) of "
          f"{options.duration} s per target; servers on CPUs {_cpus(pinning.server)}, "
          f"load on CPUs {_cpus(pinning.load)}; logs in {options.run_dir / 'logs'}", flush=True)
    previous_handler = signal.signal(signal.SIGTERM, _terminate)
    measured: dict[str, dict[str, list[Values]]] = {}
    failed: dict[str, str] = {}
    profile: dict[str, Any] | None = None
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            needed = set().union(*(s.services() for s in runnable)) if runnable else set()
            try:
                runner.run(stack.start(needed))
            except EXPECTED_FAILURES as exc:
                raise BenchFailed(f"could not start the services: {exc}") from exc
            runner.run(_warm_up(stack, runnable, settings, options.warmup, failed))
            for number in range(options.rounds):
                runner.run(_round(stack, runnable, settings, number=number, options=options,
                                  measured=measured, failed=failed))
            if options.profile:
                profile = runner.run(_profile(stack, settings, options))
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous_handler)
    document = _document(options, started=started, seconds=time.monotonic() - clock,
                         chosen=chosen, measured=measured, skipped=skipped, failed=failed,
                         gateway_argv=gateway_argv, gateway_python=gateway_python,
                         pinning=pinning, profile=profile, busy_before=busy_before,
                         alt=alt)
    return _publish(options, started, document)


def _busy_cores(seconds: float) -> float:
    """Cores the machine kept busy over `seconds` (before anything of the bench runs)."""
    before = MachineLoad.now()
    time.sleep(seconds)
    return MachineLoad.now().busy_cores_since(before)


def _cpus(cpus: set[int] | None) -> str:
    return ",".join(map(str, sorted(cpus))) if cpus is not None else "any"


async def _warm_up(stack: Stack, scenarios: list[Scenario], settings: RunSettings,
                   seconds: int, failed: dict[str, str]) -> None:
    if seconds <= 0:
        return
    short = RunSettings(seconds, settings.connections, settings.load_cpus, settings.all_cpus,
                        settings.scratch)
    for scenario in scenarios:
        for target in scenario.targets:
            try:
                await scenario.measure(stack, target, short)
            except EXPECTED_FAILURES as exc:
                failed.setdefault(scenario.name, f"warm-up through {target}: {exc}")


async def _round(stack: Stack, scenarios: list[Scenario], settings: RunSettings, *,
                 number: int, options: Options, measured: dict[str, dict[str, list[Values]]],
                 failed: dict[str, str]) -> None:
    for scenario in scenarios:
        if scenario.name in failed:
            continue
        shift = number % len(scenario.targets)
        for target in scenario.targets[shift:] + scenario.targets[:shift]:
            try:
                values = await scenario.measure(stack, target, settings)
            except EXPECTED_FAILURES as exc:
                failed[scenario.name] = f"round {number + 1} through {target}: {exc}"
                print(f"  {scenario.name}: FAILED {failed[scenario.name]}", flush=True)
                break
            measured.setdefault(scenario.name, {}).setdefault(target, []).append(values)
            print(f"  round {number + 1}/{options.rounds} {scenario.name:<9} {target:<15} "
                  f"{_progress(scenario, values)}", flush=True)
            stack.truncate_logs()


def _progress(scenario: Scenario, values: Values) -> str:
    if "mb_per_s" in values:
        return (f"{values['mb_per_s']:8.1f} MB/s  CPU {values['cpu_us']:7.1f} us/MB  "
                f"peak RSS {values['peak_rss_mib']:.1f} MiB")
    unit = scenario.unit
    text = f"{values['rate']:9.1f} {unit}/s  CPU {values['cpu_us']:8.1f} us/{unit}"
    if "p50_ms" in values:
        text += f"  p50 {values['p50_ms']:.2f} ms  p99 {values['p99_ms']:.2f} ms"
    if values.get("errors"):
        text += f"  ERRORS {values['errors']:.0f}"
    return text


async def _profile(stack: Stack, settings: RunSettings, options: Options) -> dict[str, Any]:
    """py-spy on the gateway while wrk loads it as in "small" (not part of the figures)."""
    headers = await stack.credentials("gateway")
    out = options.run_dir / "profile" / "gateway-small.collapsed.txt"
    print(f"bench: profiling the gateway for {options.duration} s with py-spy", flush=True)
    load = asyncio.create_task(run_wrk(
        stack.url("gateway") + "/", headers=headers, duration=options.duration + 2,
        connections=settings.connections, cpus=settings.load_cpus,
        script_dir=settings.scratch))
    try:
        await asyncio.sleep(1)
        summary = await profiling.record(stack.pid("gateway"), options.duration, out,
                                         settings.load_cpus)
    finally:
        await load
    summary["collapsed_stacks"] = str(out.relative_to(PROJECT)) if out.is_relative_to(
        PROJECT) else out.name
    return summary


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True,
                          cwd=PROJECT, check=False, timeout=30)
    return done.stdout.strip() if done.returncode == 0 else ""


def _document(  # noqa: PLR0913 - one run's record: each part of it, by keyword
        options: Options, *, started: datetime, seconds: float, chosen: list[Scenario],
        measured: dict[str, dict[str, list[Values]]], skipped: dict[str, str],
        failed: dict[str, str], gateway_argv: list[str], gateway_python: str,
        pinning: Pinning, profile: dict[str, Any] | None,
        busy_before: float,
        alt: tuple[list[str], str] | None) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    for scenario in chosen:
        if scenario.name in skipped:
            scenarios[scenario.name] = results.not_measured(
                scenario.title, "unsupported", skipped[scenario.name])
        elif scenario.name in failed:
            scenarios[scenario.name] = results.not_measured(
                scenario.title, "failed", failed[scenario.name])
        else:
            runs = {t: measured[scenario.name][t] for t in scenario.targets}
            scenarios[scenario.name] = results.summarise_scenario(
                scenario.title, scenario.unit, scenario.reference, runs)
    document: dict[str, Any] = {
        "schema": results.SCHEMA,
        "started_utc": started.isoformat(timespec="seconds"),
        "wall_seconds": round(seconds, 1),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "settings": {
            "scenarios": list(options.scenarios), "duration_s": options.duration,
            "rounds": options.rounds, "warmup_s": options.warmup,
            "connections": options.connections, "quick": options.quick,
            "pinned": pinning.pinned, "server_cpus": _cpus(pinning.server),
            "load_cpus": _cpus(pinning.load), "transfer_bytes": nginx.DOWNLOAD_BYTES,
        },
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "nginx": nginx.version(), "wrk": _wrk_version(),
                    "busy_cores_before": round(busy_before, 3)},
        "interpreter": {"gateway": interpreter.facts(gateway_python),
                        "harness": interpreter.facts(sys.executable)},
        "gateway": {"version": gateway.version(gateway_argv), "commit": _git(
            "rev-parse", "--short", "HEAD"), "uncommitted_changes": bool(_git(
                "status", "--porcelain", "--", "gateway", "pyproject.toml"))},
        "scenarios": scenarios,
    }
    if alt is not None:
        document["interpreter"]["gateway-alt"] = interpreter.facts(alt[1])
        document["gateway-alt"] = {
            "version": gateway.version(alt[0]),
            "build": "other" if os.environ.get("BENCH_COMPARE_GATEWAY", "").strip() else "same"}
    if profile is not None:
        document["profile"] = profile
    portable: dict[str, Any] = results.portable(document, PROJECT)
    return portable


def _wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True,
                          check=False, timeout=30)
    return (done.stdout or done.stderr).split("[", 1)[0].strip().removeprefix("wrk ")


def _publish(options: Options, started: datetime, document: dict[str, Any]) -> Path:
    previous = results.latest(options.results_dir, quick=options.quick,
                              scenarios=options.scenarios)
    lines = ["", report.table(document), "", *report.notes(document)]
    if "profile" in document:
        lines += ["", *report.profile(document["profile"])]
    if previous is not None:
        found = results.compare(document, previous[1])
        document["previous"] = {"file": previous[0].name,
                                "changes": [c.as_json() for c in found],
                                "regressions": sum(c.regression for c in found)}
        lines += ["", *report.changes(previous[0].name, previous[1], document, found)]
    path = results.write(options.results_dir, started, document)
    print("\n".join(lines), flush=True)
    print(f"\nbench: result written to {path}", flush=True)
    return path
