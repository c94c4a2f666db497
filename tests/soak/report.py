"""The soak's report: every request sorted into a category, the guarantees checked, as JSON.

Categories of a user's request:
- `ok`: 2xx from the upstream, for the right user.
- `sign_in`: 302 to the IdP's sign-in, or 401. Every user's refresh token stays valid for the
  whole run (nothing revokes it, it lives a day), so each one means the gateway lost a session
  it could have kept: MUST be 0.
- `upstream_kill_inflight`: 502/504 of a request that overlapped the upstream being killed
  and restarted; `worker_kill_inflight`: no answer at all, for a request in flight when a
  gateway worker was killed. Expected, counted apart.
- `error_tokens_valid`: any other answer (5xx, 4xx, no answer, another user's identity) to a
  request sent while the user's tokens were valid: MUST be 0.
- `error_tokens_expired`: the same after the user's tokens had expired (allowed: with the IdP
  down, an expired session may answer 503).

RSS at the end must be within RSS_TOLERANCE of RSS after the warm-up. A refresh must not be
felt by users whose tokens are valid: their p99 while the token endpoint fails or is slow stays
within LATENCY_TOLERANCE of the p99 outside faults.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.soak.measure import latency_summary
from tests.soak.schedule import FaultKind

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tests.soak.faults import FaultWindow
    from tests.soak.plan import SoakPlan
    from tests.soak.users import RequestRecord

RSS_TOLERANCE = 0.20
# p99 of requests with valid tokens during token-endpoint faults, against p99 outside faults:
# at most this factor, unless within LATENCY_NOISE_MS. A refresh on the request path adds at
# least the retry pauses (750 ms) or the slow answer (2 s); a 2-core machine shared with other
# work adds up to a few hundred milliseconds to a p99 of a few thousand requests.
LATENCY_TOLERANCE = 2.0
LATENCY_NOISE_MS = 250.0
WORKER_KILL_SLACK = 0.5  # a keep-alive connection may only notice the dead worker on its next use
FAULT_SETTLE = 1.0  # latency "outside faults" also leaves out this long after each fault
MAX_SAMPLES = 20
MIB = 1024 * 1024


@dataclass(frozen=True)
class RunFacts:
    """Everything a finished run measured, as the report needs it."""

    plan: SoakPlan
    started_at: str
    wall_seconds: float
    signed_in: int
    records: list[RequestRecord]
    windows: list[FaultWindow]
    max_send_lag: float
    gateway_metrics: dict[str, dict[str, int]] | None
    idp_token_requests: dict[str, int]
    rss: dict[str, int]
    rss_peak: int
    rss_timeline: list[tuple[float, int]]
    gateway_exit_status: int | None
    heap_growth: dict[str, Any] | None = None


def _overlaps(record: RequestRecord, start: float, end: float) -> bool:
    return record.sent <= end and record.finished >= start


def category(record: RequestRecord, windows: Iterable[FaultWindow]) -> str:
    """The record's category (see the module docstring)."""
    if record.cause == "ok":
        return "ok"
    if record.cause == "sign_in_redirect" or record.status == 401:
        return "sign_in"
    for window in windows:
        if (window.kind is FaultKind.UPSTREAM_KILL and record.status in {502, 504}
                and _overlaps(record, window.start, window.end)):
            return "upstream_kill_inflight"
        if (window.kind is FaultKind.WORKER_KILL and record.status == 0
                and _overlaps(record, window.start, window.end + WORKER_KILL_SLACK)):
            return "worker_kill_inflight"
    return "error_tokens_valid" if record.tokens_valid else "error_tokens_expired"


def _phase(at: float, windows: list[FaultWindow]) -> str:
    """The last fault that started at or before `at`, or "warm-up"."""
    started = [w for w in windows if w.start <= at]
    return str(started[-1].kind) if started else "warm-up"


def _faults_between(windows: list[FaultWindow], start: float, end: float) -> list[str]:
    """`kind@start` of every fault that started in [start, end]."""
    return [f"{w.kind}@{w.start:.1f}s" for w in windows if start <= w.start <= end]


def _sample(record: RequestRecord) -> dict[str, Any]:
    return {"at": round(record.sent, 3), "user": record.user, "kind": record.kind,
            "status": record.status, "cause": record.cause, "request_id": record.request_id}


def _outside_faults(record: RequestRecord, windows: list[FaultWindow]) -> bool:
    return not any(_overlaps(record, w.start, w.end + FAULT_SETTLE) for w in windows)


TOKEN_FAULTS = frozenset({FaultKind.TOKEN_503, FaultKind.TOKEN_SLOW})


def during_token_faults(record: RequestRecord, windows: list[FaultWindow]) -> bool:
    """A request with valid tokens that overlapped the token endpoint failing or being slow
    (or the moment after), and no other fault: what a refresh in the background must keep
    from being felt. Requests whose tokens had expired wait for the refresh, by design."""
    overlapped = {w.kind for w in windows if _overlaps(record, w.start, w.end + FAULT_SETTLE)}
    return record.tokens_valid and bool(overlapped) and overlapped <= TOKEN_FAULTS


def _slowest(records: list[RequestRecord], windows: list[FaultWindow]) -> list[dict[str, Any]]:
    """The slowest requests, with the fault phase each was sent in."""
    ranked = sorted(records, key=lambda r: r.latency, reverse=True)[:MAX_SAMPLES // 2]
    return [_sample(r) | {"latency_ms": round(r.latency * 1000, 1),
                          "phase": _phase(r.sent, windows)} for r in ranked]


def _counts(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda item: (-item[1], item[0])))


def _sessions(facts: RunFacts, sign_ins: list[RequestRecord]) -> dict[str, Any]:
    """Sessions lost: a user's first 302-to-sign-in or 401 is when their session was lost."""
    first_loss: dict[int, float] = {}
    for record in sorted(sign_ins, key=lambda r: r.sent):
        first_loss.setdefault(record.user, record.sent)
    losses = sorted(first_loss.values())
    return {
        "users": facts.plan.users, "signed_in": facts.signed_in, "lost": len(losses),
        "sign_in_with_valid_refresh_token": len(sign_ins),
        "first_loss_seconds": round(losses[0], 3) if losses else None,
        "last_loss_seconds": round(losses[-1], 3) if losses else None,
        "losses_by_second": {str(s): n for s, n in sorted(Counter(int(at) for at in losses)
                                                          .items())},
        "faults_before_first_loss": _faults_between(
            facts.windows, losses[0] - facts.plan.token_seconds - 1, losses[0])
        if losses else [],
    }


def build_report(facts: RunFacts) -> dict[str, Any]:
    """The JSON report of a run, guarantees and violations included."""
    plan, records, windows = facts.plan, facts.records, facts.windows
    categories = [category(record, windows) for record in records]
    by_category = {name: 0 for name in ("ok", "sign_in", "error_tokens_valid",
                                        "error_tokens_expired", "upstream_kill_inflight",
                                        "worker_kill_inflight")}
    by_category |= Counter(categories)
    sign_ins = [r for r, c in zip(records, categories, strict=True) if c == "sign_in"]
    errors = [r for r, c in zip(records, categories, strict=True) if c == "error_tokens_valid"]
    expired = [r for r, c in zip(records, categories, strict=True)
               if c == "error_tokens_expired"]
    metrics = facts.gateway_metrics
    token_requests = (metrics or {}).get("token_requests_total", {})
    invalid_grant = token_requests.get("refresh_token:invalid_grant", 0)
    rss = {"start": facts.rss.get("start"), "after_warmup": facts.rss.get("after_warmup"),
           "peak": facts.rss_peak, "end": facts.rss.get("end")}
    warm, end = rss["after_warmup"], rss["end"]
    growth = (end - warm) / warm if warm and end else None
    outside = latency_summary([r.latency for r in records if _outside_faults(r, windows)])
    token_faults = latency_summary([r.latency for r in records
                                    if during_token_faults(r, windows)])
    slowdown = (token_faults["p99"] / outside["p99"]
                if token_faults["p99"] is not None and outside["p99"] else None)
    guarantees: dict[str, Any] = {
        "sign_ins_with_valid_refresh_token": len(sign_ins),
        "sessions_lost": len({r.user for r in sign_ins}),
        "errors_while_tokens_valid": len(errors),
        "identity_mismatches": sum(1 for r in records if r.cause == "identity_mismatch"),
        "rss_end_vs_warmup_percent": None if growth is None else round(growth * 100, 1),
        "p99_token_faults_vs_outside": None if slowdown is None else round(slowdown, 2),
    }
    report: dict[str, Any] = {
        "soak": {
            "started_at": facts.started_at, "wall_seconds": round(facts.wall_seconds, 1),
            "plan": plan.to_dict(),
            "latency_measured_from": "scheduled send time (open loop, no coordinated omission)",
            "max_send_lag_ms": round(facts.max_send_lag * 1000, 1),
            "gateway_exit_status": facts.gateway_exit_status,
        },
        "timeline": [window.to_dict() for window in windows],
        "requests": {
            "scheduled": int(plan.duration * plan.rate), "sent": len(records),
            "by_outcome": _counts(r.outcome for r in records),
            "by_category": by_category,
        },
        "sessions": _sessions(facts, sign_ins),
        "errors_while_tokens_valid": {
            "count": len(errors), "by_outcome": _counts(r.outcome for r in errors),
            "by_phase": _counts(_phase(r.sent, windows) for r in errors),
            "samples": [_sample(r) for r in errors[:MAX_SAMPLES]],
        },
        "errors_after_token_expiry": {
            "count": len(expired), "by_outcome": _counts(r.outcome for r in expired),
        },
        "refreshes": {
            "gateway": metrics,
            "idp_token_requests": facts.idp_token_requests,
            "invalid_grant": invalid_grant,
        },
        "latency_ms": {
            "overall": latency_summary([r.latency for r in records]),
            "outside_faults": outside,
            "during_token_endpoint_faults": token_faults,
            "tokens_expired": latency_summary([r.latency for r in records
                                               if not r.tokens_valid]),
            "slowest": _slowest(records, windows),
            "slowest_with_valid_tokens": _slowest([r for r in records if r.tokens_valid],
                                                  windows),
        },
        "rss_bytes": rss,
        "rss_timeline_mib": [[at, round(value / MIB, 1)] for at, value in facts.rss_timeline],
        "heap_growth": facts.heap_growth,
        "guarantees": guarantees,
    }
    guarantees["violations"] = violations(report)
    guarantees["passed"] = not guarantees["violations"]
    return report


def violations(report: dict[str, Any]) -> list[str]:
    """Each broken guarantee as one sentence with its numbers (empty when all hold)."""
    found = []
    g, sessions = report["guarantees"], report["sessions"]
    if g["sign_ins_with_valid_refresh_token"]:
        found.append(
            f"{sessions['lost']} of {sessions['signed_in']} sessions lost, between "
            f"{sessions['first_loss_seconds']:.1f} s and {sessions['last_loss_seconds']:.1f} s "
            f"into traffic (faults in the token lifetime before the first loss: "
            f"{', '.join(sessions['faults_before_first_loss']) or 'none'}): "
            f"{g['sign_ins_with_valid_refresh_token']} requests answered 302-to-sign-in or "
            "401 while every refresh token was still valid; the gateway's refresh grants got "
            f"invalid_grant {report['refreshes']['invalid_grant']} times (a rotated refresh "
            "token spent twice, or the new one lost)" + _gateway_said(report))
    if g["errors_while_tokens_valid"]:
        errors = report["errors_while_tokens_valid"]
        outcomes = ", ".join(f"{n} x {o}" for o, n in list(errors["by_outcome"].items())[:6])
        phases = ", ".join(f"{n} during/after {p}" for p, n in errors["by_phase"].items())
        found.append(f"{errors['count']} errors reached users whose tokens were valid: "
                     f"{outcomes} ({phases})")
    if g["identity_mismatches"]:
        found.append(f"{g['identity_mismatches']} answers carried another user's identity")
    growth = g["rss_end_vs_warmup_percent"]
    traced = report["soak"]["plan"]["tracemalloc"]  # heap snapshots inflate RSS: not judged
    if growth is None:
        found.append("gateway RSS could not be measured after warm-up and at the end")
    elif abs(growth) > RSS_TOLERANCE * 100 and not traced:
        rss = report["rss_bytes"]
        found.append(f"gateway RSS went from {rss['after_warmup'] / MIB:.1f} MiB after warm-up "
                     f"to {rss['end'] / MIB:.1f} MiB at the end ({growth:+.1f} %, allowed "
                     f"{RSS_TOLERANCE * 100:.0f} %)")
    slowdown = g["p99_token_faults_vs_outside"]
    latency = report["latency_ms"]
    if slowdown is not None and slowdown > LATENCY_TOLERANCE and (
            latency["during_token_endpoint_faults"]["p99"] - latency["outside_faults"]["p99"]
            > LATENCY_NOISE_MS):
        found.append(f"users with valid tokens felt the token endpoint's faults: p99 "
                     f"{latency['during_token_endpoint_faults']['p99']} ms during them, "
                     f"{latency['outside_faults']['p99']} ms outside faults ({slowdown:.1f}x, "
                     f"allowed {LATENCY_TOLERANCE:g}x)")
    if report["soak"]["gateway_exit_status"] is not None:
        found.append(f"the gateway exited during the run (status "
                     f"{report['soak']['gateway_exit_status']})")
    return found


def _render_counters(refreshes: dict[str, Any]) -> list[str]:
    """One line per gateway counter that grew, and one for the stand-in's token calls."""
    gateway = refreshes["gateway"]
    if gateway is None:
        lines = ["gateway metrics: unreadable at the end (did the gateway exit?)"]
    else:
        lines = [f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                 for name, counts in gateway.items() if counts]
    idp = refreshes["idp_token_requests"]
    lines.append("stand-in token calls: " + (", ".join(f"{k} {v}" for k, v in idp.items())
                                              or "none"))
    return ["  " + line for line in lines]


def _gateway_said(report: dict[str, Any]) -> str:
    """The gateway's own counts behind lost sessions: refresh outcomes, token rejections."""
    gateway = report["refreshes"]["gateway"] or {}
    said = [f"{name} {{{', '.join(f'{k}: {v}' for k, v in gateway[name].items())}}}"
            for name in ("session_refreshes_total", "token_validation_failures_total",
                         "jwks_fetches_total") if gateway.get(name)]
    return "; gateway counted " + ", ".join(said) if said else ""


def render(report: dict[str, Any]) -> str:
    """A short human-readable summary of a report."""
    plan, requests = report["soak"]["plan"], report["requests"]
    sessions, latency, rss = report["sessions"], report["latency_ms"], report["rss_bytes"]
    g = report["guarantees"]

    def mib(value: int | None) -> str:
        return "-" if value is None else f"{value / MIB:.1f}"

    lines = [
        f"soak: {plan['users']} users, {plan['duration_seconds']:g} s at "
        f"{plan['rate_per_second']:g} req/s, tokens {plan['token_seconds']} s, "
        f"{plan['workers']} worker(s), faults {'on' if plan['faults'] else 'off'} "
        f"({report['soak']['wall_seconds']:g} s wall)",
        "faults: " + (", ".join(f"{w['kind']}@{w['start']:.1f}s" for w in report["timeline"])
                      or "none"),
        f"requests: {requests['sent']} sent; " + ", ".join(
            f"{n} x {o}" for o, n in requests["by_outcome"].items()),
        "categories: " + ", ".join(f"{k} {v}" for k, v in requests["by_category"].items()),
        f"sessions: {sessions['lost']} of {sessions['signed_in']} lost",
        *_render_counters(report["refreshes"]),
        f"latency ms (from schedule): p50 {latency['overall']['p50']} p99 "
        f"{latency['overall']['p99']} max {latency['overall']['max']}; outside faults p50 "
        f"{latency['outside_faults']['p50']} p99 {latency['outside_faults']['p99']}; during "
        f"token-endpoint faults p50 {latency['during_token_endpoint_faults']['p50']} p99 "
        f"{latency['during_token_endpoint_faults']['p99']}; tokens expired (waiting for the "
        f"refresh) {latency['tokens_expired']['count']} requests, p99 "
        f"{latency['tokens_expired']['p99']}",
        f"gateway RSS MiB: start {mib(rss['start'])}, after warm-up {mib(rss['after_warmup'])}, "
        f"peak {mib(rss['peak'])}, end {mib(rss['end'])}",
        "guarantees: " + ("all hold" if g["passed"] else "BROKEN"),
    ]
    heap = report["heap_growth"]
    if heap is not None:
        lines.insert(-1, f"python heap growth after warm-up: {heap['total_kib']} KiB; most: "
                     + ", ".join(f"{site['where']} {site['kib']} KiB"
                                 for site in heap["top"][:5]))
    lines += [f"  - {violation}" for violation in g["violations"]]
    return "\n".join(lines)
