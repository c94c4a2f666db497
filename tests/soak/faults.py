"""Injecting the scheduled faults and recording when each one really started and ended.

Token-endpoint windows are armed and cleared through the stand-in's `/_admin/faults` (it has
no timed faults, so the window is the time between the two calls); the key rotation is
`/_admin/rotate-keys`. The random-kid burst sends unauthenticated requests whose bearer tokens
have well-formed JWT headers with random kids and garbage signatures. The upstream and a gateway
worker are killed with SIGKILL; the upstream is started again at once on the same port.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.soak.processes import SoakError
from tests.soak.schedule import FaultKind, FaultStep
from tests.soak.stack import CLIENT_ID, Stack
from tests.soak.users import client_failure

BURST_CONCURRENCY = 50
WORKER_RESTART_WITHIN = 10.0


@dataclass(frozen=True)
class FaultWindow:
    """A fault as it happened: seconds from the start of traffic, and what it did."""

    kind: FaultKind
    start: float
    end: float
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "start": round(self.start, 3),
                "end": round(self.end, 3), **self.detail}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forged_access_token(rng: random.Random, issuer: str) -> str:
    """A Cognito-shaped access token with a random kid and a garbage signature."""
    header = {"kid": _b64(rng.randbytes(24)), "alg": "RS256", "typ": "JWT"}
    now = int(time.time())
    claims = {"sub": str(uuid.UUID(int=rng.getrandbits(128))), "iss": issuer,
              "client_id": CLIENT_ID, "token_use": "access", "scope": "openid",
              "auth_time": now, "iat": now, "exp": now + 3600, "username": "burst"}
    return ".".join(_b64(json.dumps(part).encode()) for part in (header, claims)) + "." + _b64(
        rng.randbytes(256))


class FaultInjector:
    """Runs a fault schedule against a stack; `windows` holds what happened, in start order."""

    def __init__(self, stack: Stack, http: aiohttp.ClientSession, *, kid_burst: int,
                 slow_delay: float, seed: int) -> None:
        self._stack = stack
        self._http = http
        self._kid_burst = kid_burst
        self._slow_delay = slow_delay
        self._rng = random.Random(seed)  # noqa: S311 - reproducible, not a secret
        self._start = 0.0
        self.windows: list[FaultWindow] = []

    async def run(self, schedule: list[FaultStep], start: float) -> None:
        """Inject every step at its time from monotonic `start` (overlapping steps run at once)."""
        self._start = start
        await asyncio.gather(*(self._at(step) for step in schedule))
        self.windows.sort(key=lambda window: window.start)

    def _now(self) -> float:
        return time.monotonic() - self._start

    async def _at(self, step: FaultStep) -> None:
        delay = step.at - self._now()
        if delay > 0:
            await asyncio.sleep(delay)
        if step.kind is FaultKind.TOKEN_503:
            await self._token_fault(step, {"endpoint": "token", "status": 503})
        elif step.kind is FaultKind.TOKEN_SLOW:
            await self._token_fault(step, {"endpoint": "token",
                                           "delay_seconds": self._slow_delay})
        elif step.kind is FaultKind.KEY_ROTATION:
            began = self._now()
            await self._admin("POST", "/_admin/rotate-keys")
            self.windows.append(FaultWindow(step.kind, began, self._now()))
        elif step.kind is FaultKind.KID_BURST:
            await self._burst(step)
        elif step.kind is FaultKind.UPSTREAM_KILL:
            began = self._now()
            await self._stack.upstream.kill()
            await self._stack.restart_upstream()
            self.windows.append(FaultWindow(step.kind, began, self._now()))
        else:
            await self._kill_worker(step)

    async def _admin(self, method: str, path: str, payload: dict[str, Any] | None = None) -> None:
        url = self._stack.idp_url + path
        async with self._http.request(method, url, json=payload) as response:
            if response.status != 200:
                raise SoakError(f"the stand-in refused {method} {path}: {response.status} "
                                f"{(await response.text())[:200]}")

    async def _token_fault(self, step: FaultStep, fault: dict[str, Any]) -> None:
        began = self._now()
        await self._admin("POST", "/_admin/faults", fault)
        await asyncio.sleep(step.seconds)
        await self._admin("DELETE", "/_admin/faults")
        detail = {k: v for k, v in fault.items() if k != "endpoint"}
        self.windows.append(FaultWindow(step.kind, began, self._now(), detail))

    async def _burst(self, step: FaultStep) -> None:
        """`kid_burst` unauthenticated API requests, BURST_CONCURRENCY at a time."""
        issuer = self._stack.issuer
        tokens = [forged_access_token(self._rng, issuer) for _ in range(self._kid_burst)]
        outcomes: Counter[str] = Counter()
        gate = asyncio.Semaphore(BURST_CONCURRENCY)
        url = f"{self._stack.gateway_url}/api/burst"

        async def one(token: str) -> None:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            async with gate:
                try:
                    async with self._http.get(url, headers=headers,
                                              allow_redirects=False) as response:
                        await response.read()
                        outcomes[str(response.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    outcomes[client_failure(exc)] += 1

        began = self._now()
        await asyncio.gather(*(one(token) for token in tokens))
        self.windows.append(FaultWindow(step.kind, began, self._now(), {
            "requests": len(tokens), "by_status": dict(sorted(outcomes.items()))}))

    async def _kill_worker(self, step: FaultStep) -> None:
        """SIGKILL one worker of the gateway; note whether a replacement appears."""
        workers = self._stack.gateway.descendants()
        if not workers:
            raise SoakError("worker_kill: the gateway has no worker processes to kill "
                            "(does `run --workers N` fork workers?)")
        began = self._now()
        os.kill(workers[0], signal.SIGKILL)
        restarted: float | None = None
        deadline = time.monotonic() + WORKER_RESTART_WITHIN
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            alive = self._stack.gateway.descendants()
            if workers[0] not in alive and len(alive) >= len(workers):
                restarted = self._now() - began
                break
        self.windows.append(FaultWindow(step.kind, began, began, {
            "workers": len(workers),
            "replaced_after_seconds": None if restarted is None else round(restarted, 3)}))
