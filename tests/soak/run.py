"""One soak run from start to report: stack up, users in, traffic with faults, stack down.

1. Start the stand-in, the upstream and the gateway (tests/soak/stack.py); RSS "start".
2. Sign every user in through the hosted UI, the starts spread over one refresh interval;
   zero the stand-in's stats; scrape /metrics.
3. Traffic for `duration` seconds with the fault schedule running alongside; RSS "after
   warm-up" when the warm-up ends, sampled for the peak throughout, "end" once every request
   has been answered. With `--tracemalloc`, a heap snapshot at both marks too.
4. Scrape /metrics and the stand-in's stats again (the report shows the growth during
   traffic), stop every process, build the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from tests.soak.faults import FaultInjector
from tests.soak.measure import (
    HeapSnapshots,
    RssSampler,
    Samples,
    counter_delta,
    heap_growth,
    idp_token_requests,
    reset_idp_stats,
    scrape_metrics,
)
from tests.soak.report import RunFacts, build_report
from tests.soak.schedule import fault_schedule
from tests.soak.stack import start_stack
from tests.soak.users import OpenLoad, open_users, sign_in_all

if TYPE_CHECKING:
    from pathlib import Path

    from tests.soak.plan import SoakPlan

GATEWAY_COUNTERS = {
    "session_refreshes_total": ("cognito_gateway_session_refreshes_total", ("outcome",)),
    "token_requests_total": ("cognito_gateway_token_requests_total",
                             ("grant_type", "outcome")),
    "jwks_fetches_total": ("cognito_gateway_jwks_fetches_total", ("outcome",)),
    "token_validation_failures_total": ("cognito_gateway_token_validation_failures_total",
                                        ("reason",)),
    "reauthentications_total": ("cognito_gateway_reauthentications_total", ("reason",)),
    "upstream_errors_total": ("cognito_gateway_upstream_errors_total", ("reason",)),
}


def gateway_growth(before: Samples | None,
                   after: Samples | None) -> dict[str, dict[str, int]] | None:
    """How the gateway's counters grew during traffic; None when /metrics was unreadable."""
    if before is None or after is None:
        return None
    return {key: counter_delta(before, after, name, labels)
            for key, (name, labels) in GATEWAY_COUNTERS.items()}


async def run_soak(plan: SoakPlan, run_dir: Path) -> dict[str, Any]:
    """Run the plan with process logs under `run_dir`; return the report."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    began = time.monotonic()
    stack = await start_stack(plan, run_dir)
    try:
        async with contextlib.AsyncExitStack() as exits:
            http = await exits.enter_async_context(
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=plan.request_timeout)))
            rss = RssSampler(stack.gateway)
            heap = HeapSnapshots(stack.gateway, stack.heap_dir) if stack.heap_dir else None
            rss.mark("start")
            users = await open_users(stack, exits, request_timeout=plan.request_timeout)
            await sign_in_all(stack, users, concurrency=plan.sign_in_concurrency,
                              spread=plan.sign_in_spread)
            await reset_idp_stats(http, stack.idp_url)
            before = await scrape_metrics(http, stack.metrics_url)
            load = OpenLoad(stack, users, plan.rate, plan.duration, plan.seed)
            injector = FaultInjector(stack, http, kid_burst=plan.kid_burst,
                                     slow_delay=plan.slow_delay, seed=plan.seed)
            start = time.monotonic()
            sampling = asyncio.create_task(rss.run(start))
            warm = asyncio.create_task(rss.mark_at(start + plan.warmup_seconds,
                                                   "after_warmup"))
            heap_warm = asyncio.create_task(heap.take_at(start + plan.warmup_seconds,
                                                         "after_warmup")) if heap else None
            try:
                await asyncio.gather(load.run(start), injector.run(fault_schedule(plan), start))
            finally:
                sampling.cancel()
                warm.cancel()
            rss.mark("end")
            growth = None
            if heap and heap_warm:
                await heap_warm
                await heap.take("end")
                growth = heap_growth(heap.paths["after_warmup"], heap.paths["end"])
            after = await scrape_metrics(http, stack.metrics_url)
            idp_counts = await idp_token_requests(http, stack.idp_url)
            exit_status = stack.gateway.exit_status
    finally:
        await stack.stop()
    return build_report(RunFacts(
        plan=plan, started_at=started_at, wall_seconds=time.monotonic() - began,
        signed_in=len(users), records=sorted(load.records, key=lambda r: r.scheduled),
        windows=injector.windows, max_send_lag=load.max_send_lag,
        gateway_metrics=gateway_growth(before, after), idp_token_requests=idp_counts,
        rss=rss.marks, rss_peak=rss.peak, rss_timeline=rss.timeline,
        gateway_exit_status=exit_status, heap_growth=growth))
