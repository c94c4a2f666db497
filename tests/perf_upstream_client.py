"""Micro-benchmark: CPU per small GET, gateway.upstream.client vs aiohttp.ClientSession.

Run with `python -m tests.perf_upstream_client [--requests N]`. Both clients fetch the same
small response from a local nginx (started here on a free 127.0.0.1 port, stopped at the end),
with the headers a proxied request carries, over kept-alive connections: sequentially, then
from 16 concurrent tasks, on asyncio's loop and on uvloop when installed. The figure is this
process's CPU time (time.process_time: nginx's work is not in it) divided by the request
count, in microseconds. The two clients take turns `--repeat` times and the best and the median
run of each are printed (the machine is shared: the best run is the least disturbed one).
Not collected by pytest (the name does not start with test_).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp

from gateway.upstream.client import UpstreamClient
from tests.support.nginx import start_nginx

BODY = "x" * 512
CONCURRENCY = 16
HEADERS = [
    ("Host", "app.internal"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-GB,en;q=0.9"),
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "app.example.com"),
    ("X-Request-Id", "0f8c2b1e6d4a4f0e9b7c3a2d1e0f9a8b"),
    ("X-Auth-Request-User", "alice"),
    ("X-Auth-Request-Email", "alice@example.com"),
]

Fetch = Callable[[], Awaitable[int]]


async def _measure(fetch: Fetch, requests: int, concurrency: int) -> float:
    """Microseconds of this process's CPU per request."""
    for _ in range(200):  # warm the pool and the code paths
        await fetch()
    per_task = requests // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            assert await fetch() == len(BODY)

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - started) / (per_task * concurrency) * 1e6


async def _ours(url: str, requests: int) -> dict[str, float]:
    async with UpstreamClient(url, read_timeout=10) as client:
        async def fetch() -> int:
            response = await client.request("GET", "/small?q=1", HEADERS)
            return len(await response.read())

        return {"sequential": await _measure(fetch, requests, 1),
                f"{CONCURRENCY} concurrent": await _measure(fetch, requests, CONCURRENCY)}


async def _aiohttp(url: str, requests: int) -> dict[str, float]:
    # Configured as gateway/proxy.py configures its session.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=4.0),
        cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=10),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"))
    target = f"{url}/small?q=1"
    async with session:
        async def fetch() -> int:
            async with session.get(target, headers=HEADERS, allow_redirects=False) as response:
                return len(await response.read())

        return {"sequential": await _measure(fetch, requests, 1),
                f"{CONCURRENCY} concurrent": await _measure(fetch, requests, CONCURRENCY)}


def _run(main: Coroutine[Any, Any, dict[str, float]], loop_name: str) -> dict[str, float]:
    if loop_name == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="turns per client")
    args = parser.parse_args()
    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401

        loops.append("uvloop")
    except ImportError:
        pass
    nginx = start_nginx(f"location = /small {{ return 200 '{BODY}'; }}")
    try:
        print(f"us of client CPU per small GET ({len(BODY)}-byte body, {len(HEADERS)} headers, "
              f"{args.requests} requests per run, best / median of {args.repeat} runs)")
        print(f"{'loop':8} {'mode':14} {'upstream.client':>16} {'aiohttp':>16} {'ratio':>6}")
        for loop_name in loops:
            ours: dict[str, list[float]] = {}
            theirs: dict[str, list[float]] = {}
            for _ in range(args.repeat):
                for mode, value in _run(_ours(nginx.url, args.requests), loop_name).items():
                    ours.setdefault(mode, []).append(value)
                for mode, value in _run(_aiohttp(nginx.url, args.requests), loop_name).items():
                    theirs.setdefault(mode, []).append(value)
            for mode, mine in ours.items():
                other = theirs[mode]
                print(f"{loop_name:8} {mode:14} {min(mine):7.1f} / {statistics.median(mine):6.1f} "
                      f"{min(other):7.1f} / {statistics.median(other):6.1f} "
                      f"{min(other) / min(mine):5.2f}x")
        print(f"nginx accepted {nginx.accepts()} connections in all")
    finally:
        nginx.stop()


if __name__ == "__main__":
    main()
