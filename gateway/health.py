"""Liveness and readiness: `GET /ping` and `GET /ready`.

`/ping` answers 200 whenever the process answers. `/ready` answers 200 once the IdP's metadata
and keys are loaded and the session store answers, and 503 otherwise, or once shutdown has
begun (so a load balancer stops routing here before the listeners close); it sets
`cognito_gateway_ready`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.pages import json_response
from gateway.routing import Endpoint

if TYPE_CHECKING:
    from gateway.cognito.provider import IdentityProvider
    from gateway.observability.metrics import Metrics
    from gateway.sessions.store import SessionStore


class Health:
    """/ping (the process answers) and /ready (the IdP and session store are usable).

    /ready answers 503, naming the failing check, while the IdP is not ready, the session store
    does not answer, or `shutting_down` is set (so a balancer drains the worker first).
    """

    def __init__(self, provider: IdentityProvider, store: SessionStore, metrics: Metrics) -> None:
        self._provider = provider
        self._store = store
        self._ready = metrics.ready
        self.shutting_down = False

    def endpoints(self) -> dict[str, Endpoint]:
        return {"/ping": Endpoint({"GET": self.ping}), "/ready": Endpoint({"GET": self.ready})}

    async def ping(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def ready(self, _request: web.Request) -> web.StreamResponse:
        checks = {"idp": self._provider.ready, "session_store": await self._store.ping(),
                  "accepting": not self.shutting_down}
        ok = all(checks.values())
        self._ready.set(1 if ok else 0)
        return json_response(200 if ok else 503, {"ready": ok, "checks": checks})


HEALTH = web.AppKey("health", Health)
