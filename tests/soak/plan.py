"""What a soak run does: how many users, how long, how fast, how short-lived the tokens are.

`SoakPlan()` is the full run of `make soak`; `SoakPlan.short()` is the compressed form CI runs
(same fault kinds, fewer users, shorter tokens, a faster fault clock).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

RUN_DIR = Path(__file__).resolve().parent / "run"
"""Where runs write their report and process logs by default (gitignored)."""


@dataclass(frozen=True)
class SoakPlan:
    """Every knob of one run; the defaults are the full `make soak` run.

    `fault_scale` compresses the fault clock: 1.0 means a 3 s token-endpoint outage every 10 s,
    0.4 means a 1.2 s outage every 4 s (the slow token endpoint's delay stays `slow_delay`).
    """

    users: int = 200
    duration: float = 60.0
    rate: float = 200.0
    token_seconds: int = 20
    workers: int = 1
    seed: int = 1
    faults: bool = True
    fault_scale: float = 1.0
    slow_delay: float = 2.0
    kid_burst: int = 500
    sign_in_concurrency: int = 20
    request_timeout: float = 15.0
    tracemalloc: bool = False
    store: str = "auto"

    @property
    def session_store(self) -> str:
        """`session.store`: as asked, else Redis with several workers (each worker is a
        replica: with rotation and no grace period, README's advice is the Redis store) and the
        cookie store with one."""
        if self.store != "auto":
            return self.store
        return "redis" if self.workers > 1 else "cookie"

    @classmethod
    def short(cls) -> SoakPlan:
        """The CI form: 40 users for 20 s, 6 s tokens, every fault kind once or twice."""
        return cls(users=40, duration=20.0, rate=40.0, token_seconds=6, fault_scale=0.4,
                   kid_burst=200)

    def with_options(self, **changes: Any) -> SoakPlan:
        """This plan with the given fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def refresh_before_expiry(self) -> int:
        """`session.refresh_before_expiry_seconds`: half the token lifetime, at most 5 s."""
        return min(5, max(1, self.token_seconds // 2))

    @property
    def sign_in_spread(self) -> float:
        """Sign-ins start evenly over one refresh interval (token lifetime minus the refresh
        margin), so sessions refresh at every moment of the run, not in one wave."""
        return float(self.token_seconds - self.refresh_before_expiry)

    @property
    def warmup_seconds(self) -> float:
        """The calm start of traffic: until every session has refreshed once, but at most a
        third of the run."""
        return min(self.sign_in_spread + 1, self.duration / 3)

    def problems(self) -> list[str]:
        """Everything wrong with the plan, by option name (empty when it can run)."""
        found = []
        if self.users < 1:
            found.append("--users: must be at least 1")
        if self.duration <= 0:
            found.append("--duration: must be positive")
        if self.rate <= 0:
            found.append("--rate: must be positive")
        if self.token_seconds < 2:
            found.append("--token-seconds: must be at least 2")
        if self.workers < 1:
            found.append("--workers: must be at least 1")
        if self.store not in {"auto", "cookie", "redis"}:
            found.append("--store: must be cookie or redis")
        if self.tracemalloc and self.workers > 1:
            found.append("--tracemalloc: needs --workers 1 (it traces the one gateway process)")
        return found

    def to_dict(self) -> dict[str, Any]:
        """The plan as it goes into the report."""
        return {
            "users": self.users, "duration_seconds": self.duration, "rate_per_second": self.rate,
            "token_seconds": self.token_seconds, "workers": self.workers, "seed": self.seed,
            "faults": self.faults, "warmup_seconds": self.warmup_seconds,
            "fault_scale": self.fault_scale,
            "refresh_before_expiry_seconds": self.refresh_before_expiry,
            "sign_in_spread_seconds": self.sign_in_spread,
            "refresh_token_rotation": True, "rotation_grace_seconds": 0,
            "kid_burst_requests": self.kid_burst if self.faults else 0,
            "tracemalloc": self.tracemalloc, "session_store": self.session_store,
        }
