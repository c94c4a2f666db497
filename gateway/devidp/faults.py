"""Injected faults: make the next calls to an endpoint slow, fail, or answer garbage."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ENDPOINTS = ("token", "revoke", "userInfo", "jwks", "discovery", "cognito-api")


@dataclass
class Fault:
    """What the next `remaining` calls get (None = until cleared).

    With `status` None the fault only delays, then the endpoint answers normally.
    """

    status: int | None = None
    delay_seconds: float = 0.0
    body: str = ""
    content_type: str = "text/html"
    remaining: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.status is not None and not 100 <= self.status <= 599:
            problems.append("status: must be an HTTP status 100-599")
        if self.delay_seconds < 0:
            problems.append("delay_seconds: must not be negative")
        if self.remaining is not None and self.remaining < 1:
            problems.append("count: must be at least 1")
        if problems:
            raise ValueError("; ".join(problems))


class FaultBook:
    """One pending fault per endpoint; adding a fault replaces the endpoint's previous one."""

    def __init__(self) -> None:
        self._faults: dict[str, Fault] = {}

    def add(self, endpoint: str, fault: Fault) -> None:
        """Arm a fault for an endpoint named in ENDPOINTS."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint: must be one of {list(ENDPOINTS)}")
        self._faults[endpoint] = fault

    def clear(self) -> None:
        """Disarm every fault."""
        self._faults.clear()

    def take(self, endpoint: str) -> Fault | None:
        """The fault for this call, counting it against the fault's remaining calls."""
        fault = self._faults.get(endpoint)
        if fault is None:
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self._faults[endpoint]
        return fault


def faultable(endpoint: str, book: Callable[[web.Request], FaultBook], handler: Handler) -> Handler:
    """Wrap a handler so that an armed fault for `endpoint` answers (or delays) first."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        fault = book(request).take(endpoint)
        if fault is None:
            return await handler(request)
        if fault.delay_seconds:
            await asyncio.sleep(fault.delay_seconds)
        if fault.status is None:
            return await handler(request)
        return web.Response(
            status=fault.status,
            body=fault.body.encode(),
            headers={"Content-Type": fault.content_type},
        )

    return wrapped
