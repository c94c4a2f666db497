"""Which handler answers a request target: one of the gateway's own endpoints, or the app.

Routing reads the normalised `RequestTarget`, never the raw target, so the path that picks the
handler is the path the guard decides on and the proxy forwards. The gateway's endpoints are
exact paths (plus the `/oauth2/public-keys/<kid>` family); everything under `/oauth2/` that is
not one of them answers 404, a known endpoint called with another method 405, and neither is
ever proxied. Every other path goes to the fallback: the guard and the proxy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.errors import MethodNotAllowed, UnknownEndpoint

if TYPE_CHECKING:
    from gateway.target import RequestTarget

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OWN_PREFIX = "/oauth2/"


@dataclass(frozen=True)
class Endpoint:
    """A gateway endpoint: its handler by method (HEAD follows GET), and its route label for
    traces (the path, or the path pattern of a family); set by the Router."""

    methods: Mapping[str, Handler]
    route: str = ""

    def handler(self, method: str) -> Handler:
        found = self.methods.get(method) or (self.methods.get("GET") if method == "HEAD"
                                             else None)
        if found is None:
            allowed = tuple(sorted({*self.methods, *(("HEAD",) if "GET" in self.methods
                                                     else ())}))
            raise MethodNotAllowed(allowed)
        return found


class Router:
    """Maps a normalised path to an endpoint, or to the proxied app (`None`)."""

    def __init__(self, exact: Mapping[str, Endpoint], prefixes: Mapping[str, Endpoint]) -> None:
        self._exact = {path: replace(e, route=path) for path, e in exact.items()}
        self._prefixes = tuple((prefix, replace(e, route=prefix + "{id}"))
                               for prefix, e in prefixes.items())

    @property
    def paths(self) -> Mapping[str, Endpoint]:
        """The gateway's endpoints by exact path."""
        return self._exact

    def endpoint(self, target: RequestTarget) -> Endpoint | None:
        """The gateway endpoint for this path; None for the app; UnknownEndpoint under /oauth2/."""
        path = target.path
        found = self._exact.get(path)
        if found is not None:
            return found
        if path.startswith(OWN_PREFIX) or path == OWN_PREFIX.rstrip("/"):
            for prefix, endpoint in self._prefixes:
                if path.startswith(prefix) and "/" not in path[len(prefix):]:
                    return endpoint
            raise UnknownEndpoint("path", "no such endpoint of the gateway")
        return None


ROUTER = web.AppKey("router", Router)
