"""Everything a run measures, started on 127.0.0.1 and stopped together.

Services and the CPUs they run on (with pinning; ``--no-pin`` or one CPU leaves all unpinned):

| service | what | CPUs |
|---|---|---|
| upstream | nginx: 100-byte, 64 KiB and 100 MB answers | server |
| proxy | nginx reference proxy ("nginx" in the tables) | server |
| app | aiohttp WebSocket echo and upload sink | server |
| idp | ``cognito-gateway dev-idp`` | load |
| gateway | the gateway in front of the nginx upstream | server |
| gateway-app | the gateway in front of the app | server |
| gateway-workers | ``run --workers 2`` in front of the nginx upstream | all |
| gateway-alt | the gateway under BENCH_COMPARE_PYTHON, in front of the nginx upstream | server |

The harness itself and its load generators run on the load CPUs, so that the server CPU holds
only the path being measured, as in the peers harness. Only the services the chosen scenarios
need are started.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench import gateway, idp, nginx
from bench.gateway import GatewaySite
from bench.idp import IdpSite
from bench.nginx import NginxPorts
from bench.services import Service, Services
from gateway.demo.stack import free_port

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

APP_PATHS = frozenset({"/ws", "/upload"})
GATEWAYS = ("gateway", "gateway-app", "gateway-workers", "gateway-alt")


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the servers and the load generators get; None: no pinning."""

    server: set[int] | None
    load: set[int] | None
    machine: frozenset[int] = frozenset()

    @classmethod
    def choose(cls, *, pin: bool) -> Pinning:
        """Servers on CPU 0 and load on CPU 1 when asked and there are two CPUs to use."""
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < 2:
            return cls(None, None, frozenset(cpus))
        return cls({cpus[0]}, {cpus[1]}, frozenset(cpus))

    @property
    def pinned(self) -> bool:
        return self.server is not None

    @property
    def everywhere(self) -> set[int] | None:
        """All CPUs (to undo the harness's own pinning in a child); None when unpinned."""
        return set(self.machine) if self.pinned else None


class Stack:
    """The run's services, their URLs, and the process trees to measure for each target."""

    def __init__(self, run_dir: Path, pinning: Pinning, gateway_argv: Sequence[str],
                 alt_gateway_argv: Sequence[str] | None = None) -> None:
        self.run_dir = run_dir
        self.pinning = pinning
        self.gateway_argv = list(gateway_argv)
        self.alt_gateway_argv = list(alt_gateway_argv or gateway_argv)
        self.services = Services(run_dir / "logs")
        self.by_name: dict[str, Service] = {}
        self.ports = NginxPorts(free_port(), free_port(), free_port())
        self.gateway_sites = {
            "gateway": GatewaySite(free_port(), free_port(), self.upstream_url),
            "gateway-app": GatewaySite(free_port(), free_port(), self.app_url),
            "gateway-workers": GatewaySite(free_port(), free_port(), self.upstream_url),
            "gateway-alt": GatewaySite(free_port(), free_port(), self.upstream_url),
        }
        self.idp_site = IdpSite(free_port(), "")
        self._bearer: str | None = None

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.upstream}"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.app}"

    @property
    def token_callback(self) -> str:
        return f"{self.upstream_url}/bench-callback"

    def url(self, target: str) -> str:
        """The base URL of a target: "nginx" (the reference proxy) or one of the gateways."""
        if target == "nginx":
            return f"http://127.0.0.1:{self.ports.proxy}"
        return self.gateway_sites[target].url

    def pid(self, name: str) -> int:
        """The root pid of a running service."""
        return self.by_name[name].pid

    def upstream_of(self, target: str, path: str) -> str:
        """The service that answers `path` behind `target`: its CPU counts in the path's cost.

        The app answers everything behind gateway-app, and /ws and /upload behind nginx; the
        nginx upstream answers the rest.
        """
        if target == "gateway-app" or (target == "nginx" and path in APP_PATHS):
            return "app"
        return "upstream"

    async def start(self, needed: Collection[str]) -> None:
        """Start the needed services (and what they depend on) and wait until each answers."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        server, load = self.pinning.server, self.pinning.load
        upstream_argv, proxy_argv = nginx.prepare(self.run_dir, self.ports)
        self._start("upstream", upstream_argv, server)
        ready = [self.by_name["upstream"].wait_until_answers(self.upstream_url + "/")]
        if "nginx" in needed:
            self._start("proxy", proxy_argv, server)
            ready.append(self.by_name["proxy"].wait_until_answers(self.url("nginx") + "/"))
        if "app" in needed or "gateway-app" in needed:
            self._start("app", [sys.executable, "-m", "bench.app_upstream",
                                "--port", str(self.ports.app)], server)
            ready.append(self.by_name["app"].wait_until_answers(self.app_url + "/upload",
                                                                status=405))
        gateways = [g for g in GATEWAYS if g in needed]
        pool = self.run_dir / "pool.toml"
        site = idp.write_pool(pool, [self.gateway_sites[g].url for g in GATEWAYS],
                              self.token_callback)
        self.idp_site = IdpSite(self.idp_site.port, site.client_secret)
        self._start("idp", idp.command(pool, self.idp_site.port), load)
        await self.by_name["idp"].wait_until_answers(self.idp_site.discovery_url)
        secret = gateway.new_session_secret()
        for name in gateways:
            workers = 2 if name == "gateway-workers" else 1
            cpus = self.pinning.everywhere if workers > 1 else server
            env = gateway.environment(self.gateway_sites[name], self.idp_site, secret)
            argv = self.alt_gateway_argv if name == "gateway-alt" else self.gateway_argv
            self._start(name, gateway.command(argv, workers), cpus, env)
            ready.append(self.by_name[name].wait_until_answers(
                self.gateway_sites[name].url + "/ready"))
        await asyncio.gather(*ready)

    def _start(self, name: str, argv: Sequence[str], cpus: set[int] | None,
               env: dict[str, str] | None = None) -> None:
        self.by_name[name] = self.services.start(name, argv, cpus=cpus, env=env,
                                                 cwd=Path.cwd())

    def stop(self) -> None:
        """Stop every service of the run."""
        self.services.stop_all()
        self.by_name.clear()

    async def credentials(self, target: str, *, bearer: bool = False) -> dict[str, str]:
        """Request headers that authenticate at `target`: a fresh session, or a bearer token.

        The reference proxy needs none; it gets the same headers as the gateway would, so
        both parse the same request.
        """
        if bearer:
            if self._bearer is None:
                self._bearer = await idp.access_token(self.idp_site, self.token_callback)
            return {"Authorization": f"Bearer {self._bearer}"}
        if target == "nginx":
            return {}
        return {"Cookie": await idp.sign_in(self.url(target))}

    def truncate_logs(self, limit_bytes: int = 64 << 20) -> None:
        """Empty service logs grown past `limit_bytes` (access lines add up under load)."""
        for service in self.by_name.values():
            if service.log.exists() and service.log.stat().st_size > limit_bytes:
                with service.log.open("r+b") as f:
                    f.truncate(0)
