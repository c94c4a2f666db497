"""The fault schedule: which fault starts when, and for how long, during the traffic.

Times are seconds from the start of traffic. Nothing happens during the warm-up (so the RSS
"after warm-up" is a calm baseline) nor during the calm tail (so the run ends recovered).
The warm-up lasts until every session has refreshed once (`SoakPlan.warmup_seconds`: 16 s
with 20 s tokens). On the full clock (`fault_scale` 1.0), counting from the end of the warm-up:

| at (s)          | fault                                                         |
|-----------------|---------------------------------------------------------------|
| 0, 10, 20, ...  | token endpoint answers 503 for 3 s                            |
| 4               | token endpoint slow (`slow_delay` per call) for 4 s           |
| 14              | burst of bearer tokens with random kids (unauthenticated)     |
| 17              | signing-key rotation at the IdP (new kids)                    |
| 25              | upstream killed (SIGKILL) and restarted on its port           |
| 35              | one gateway worker killed (SIGKILL), only with --workers > 1  |

The rotation comes 3 s after the burst on purpose: a JWKS cache that backs off after an
unknown kid must still accept the new kid of tokens straight from the token endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.soak.plan import SoakPlan

OUTAGE_PERIOD = 10.0
OUTAGE_SECONDS = 3.0
SLOW_AT, SLOW_SECONDS = 4.0, 4.0
BURST_AT = 14.0
ROTATION_AT = 17.0
UPSTREAM_KILL_AT = 25.0
WORKER_KILL_AT = 35.0
CALM_TAIL = 5.0


class FaultKind(StrEnum):
    """The kinds of fault a soak injects."""

    TOKEN_503 = "token_503"
    TOKEN_SLOW = "token_slow"
    KID_BURST = "kid_burst"
    KEY_ROTATION = "key_rotation"
    UPSTREAM_KILL = "upstream_kill"
    WORKER_KILL = "worker_kill"


@dataclass(frozen=True)
class FaultStep:
    """One fault: starts `at` seconds into the traffic and lasts `seconds` (0: an instant)."""

    at: float
    kind: FaultKind
    seconds: float = 0.0


def fault_schedule(plan: SoakPlan) -> list[FaultStep]:
    """The plan's faults in start order; empty without faults.

    A fault that would not end before the calm tail is left out, so a short `--duration`
    runs fewer faults rather than faults that never finish.
    """
    if not plan.faults:
        return []
    scale = plan.fault_scale
    base = plan.warmup_seconds
    last_end = plan.duration - CALM_TAIL * scale
    steps = [
        FaultStep(base + SLOW_AT * scale, FaultKind.TOKEN_SLOW, SLOW_SECONDS * scale),
        FaultStep(base + BURST_AT * scale, FaultKind.KID_BURST),
        FaultStep(base + ROTATION_AT * scale, FaultKind.KEY_ROTATION),
        FaultStep(base + UPSTREAM_KILL_AT * scale, FaultKind.UPSTREAM_KILL),
    ]
    if plan.workers > 1:
        steps.append(FaultStep(base + WORKER_KILL_AT * scale, FaultKind.WORKER_KILL))
    at = base
    while at + OUTAGE_SECONDS * scale <= last_end:
        steps.append(FaultStep(at, FaultKind.TOKEN_503, OUTAGE_SECONDS * scale))
        at += OUTAGE_PERIOD * scale
    kept = [step for step in steps if step.at + step.seconds <= last_end]
    return sorted(kept, key=lambda step: step.at)
