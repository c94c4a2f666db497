"""The run as a Markdown table on stdout, and its change since the previous run.

One row per scenario and target, medians over the rounds. Throughput is in the scenario's
unit per second (req/s, MB/s, msg/s, sign-ins/s); CPU is microseconds of the target's process
tree per unit, "path" adding its upstream's; RSS is the tree's resident memory after the run
(for transfers, its peak during it). "x ref" divides the gateway's figure by the reference's
(nginx; for --workers 2, the single worker), so 0.10 throughput means a tenth of nginx's and
10.0 CPU means ten times its CPU per unit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bench.results import Change

NOISY_CORES = 0.3  # other work above this skews the figures
HEADER = ("| scenario | target | throughput | p50 ms | p99 ms | CPU us/unit | path CPU us/unit "
          "| RSS MiB | x ref throughput | x ref CPU |")
RULE = "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"


def _number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def table(document: Mapping[str, Any]) -> str:
    """The results as a Markdown table (unsupported scenarios as a row saying why)."""
    lines = [HEADER, RULE]
    for name, entry in document["scenarios"].items():
        if entry["status"] != "ok":
            lines.append(f"| {name} | - | {entry['status']}: {entry['reason']} | | | | | | | |")
            continue
        unit = entry["unit"]
        for target, figures in entry["targets"].items():
            m = figures["median"]
            transfer = "mb_per_s" in m
            rate = m.get("mb_per_s") if transfer else m.get("rate")
            rate_unit = "MB/s" if transfer else f"{unit}/s"
            rss = m.get("peak_rss_mib") if transfer else m.get("rss_mib")
            rss_text = _number(rss) + (" peak" if transfer else "")
            ratios = entry.get("ratios", {}).get(target, {})
            rate_ratio = ratios.get("mb_per_s" if transfer else "rate")
            cpu_ratio = ratios.get("cpu_us")
            lines.append(
                f"| {name} | {target} | {_number(rate)} {rate_unit} "
                f"| {_number(m.get('p50_ms'), 2)} "
                f"| {_number(m.get('p99_ms'), 2)} | {_number(m.get('cpu_us'))} "
                f"| {_number(m.get('path_cpu_us'))} | {rss_text} "
                f"| {_number(rate_ratio, 3) if rate_ratio is not None else ''} "
                f"| {_number(cpu_ratio, 2) if cpu_ratio is not None else ''} |")
    return "\n".join(lines)


def _build(facts: Mapping[str, Any]) -> str:
    optimised = "PGO" if facts["pgo"] else "no PGO"
    optimised += "+LTO" if facts["lto"] else ", no LTO"
    if facts.get("build_note"):
        optimised = facts["build_note"]
    return f"Python {facts['version']} ({facts['executable']}; {optimised})"


def notes(document: Mapping[str, Any]) -> list[str]:
    """One-line facts under the table: settings, interpreter, noise, errors."""
    s = document["settings"]
    gw = document["interpreter"]["gateway"]
    lines = [
        f"{s['rounds']} round(s) x {s['duration_s']} s per run, {s['connections']} connections, "
        f"warm-up {s['warmup_s']} s; servers on CPUs {s['server_cpus']}, load on "
        f"CPUs {s['load_cpus']}; wall time {document['wall_seconds']:.0f} s",
        f"gateway: {document['gateway']['version']} under {_build(gw)}",
    ]
    alt = document["interpreter"].get("gateway-alt")
    if alt is not None:
        other = document.get("gateway-alt", {}).get("build") == "other"
        what = "another build (BENCH_COMPARE_GATEWAY)" if other else "the same gateway"
        lines.append(f"gateway-alt: {what} under {_build(alt)}")
        for name, entry in document["scenarios"].items():
            ratios = entry.get("interpreter_ratios")
            if ratios:
                lines.append(f"  {name}: gateway-alt / gateway: throughput "
                             f"x{ratios.get('rate', float('nan')):.3f}, CPU per unit "
                             f"x{ratios.get('cpu_us', float('nan')):.3f}")
    worst = max((r.get("other_load_cores", 0.0) for e in document["scenarios"].values()
                 if e["status"] == "ok" for t in e["targets"].values() for r in t["rounds"]),
                default=0.0)
    errors = sum(r.get("errors", 0.0) for e in document["scenarios"].values()
                 if e["status"] == "ok" for t in e["targets"].values() for r in t["rounds"])
    steal = max((r.get("steal_cores", 0.0) for e in document["scenarios"].values()
                 if e["status"] == "ok" for t in e["targets"].values() for r in t["rounds"]),
                default=0.0)
    lines.append(f"other load (CPU not used by the bench) up to {worst:.2f} cores; hypervisor "
                 f"steal up to {steal:.2f} cores; HTTP errors: {errors:.0f}")
    if worst > NOISY_CORES:
        lines.append(f"WARNING: other work used up to {worst:.2f} cores during the runs: the "
                     "figures are skewed; rerun on a quiet machine")
    signin = document["scenarios"].get("signin")
    if signin and signin["status"] == "ok":
        m = signin["targets"]["gateway"]["median"]
        lines.append(f"sign-in: the stand-in IdP used {_number(m.get('idp_cpu_us'))} us "
                     "CPU per sign-in besides the gateway's")
    return lines


def _interpreter(document: Mapping[str, Any]) -> str:
    facts = document.get("interpreter", {}).get("gateway", {})
    return f"Python {facts.get('version', '?')} ({facts.get('executable', '?')})"


def changes(previous_name: str, previous: Mapping[str, Any], current: Mapping[str, Any],
            found: Sequence[Change]) -> list[str]:
    """The comparison with the previous result: the regressions, then a verdict.

    When the two runs ran the gateway under different interpreters, that is said first: the
    changes are then the interpreters' as much as the code's.
    """
    lines = [f"compared with {previous_name}:"]
    if _interpreter(previous) != _interpreter(current):
        lines.append(f"  (that run's gateway ran under {_interpreter(previous)}, "
                     f"this one under {_interpreter(current)})")
    flagged = [c for c in found if c.regression]
    for change in flagged:
        lines.append(f"  REGRESSION {change.scenario}/{change.target} {change.metric}: "
                     f"{change.previous:.1f} -> {change.current:.1f} ({change.relative:+.0%})")
    headline = [c for c in found if c.metric in {"rate", "mb_per_s", "cpu_us"}
                and c.target.startswith("gateway") and not c.regression]
    for change in headline:
        lines.append(f"  {change.scenario}/{change.target} {change.metric}: "
                     f"{change.previous:.1f} -> {change.current:.1f} ({change.relative:+.0%})")
    lines.append(f"  {len(flagged)} regression(s) over 20 %" if flagged
                 else "  no regression over 20 %")
    return lines


def profile(summary: Mapping[str, Any]) -> list[str]:
    """The profile's top entries, each a share of the samples."""
    lines = [f"profile: {summary['samples']} working samples of the gateway under the "
             f"small-response load ({summary['waiting_samples_left_out']} waiting in the poll "
             f"left out); stacks in {summary.get('collapsed_stacks', '')}"]
    for title, key in (("by package (innermost Python frame)", "by_package"),
                       ("by Python file (innermost Python frame)", "by_python_file"),
                       ("by function, self", "by_function_self"),
                       ("gateway functions, inclusive", "gateway_inclusive")):
        lines.append(f"  {title}:")
        lines += [f"    {share:5.1f} %  {name}" for name, share in summary[key][:12]]
    return lines
