"""One bounded wrk run, read back as numbers.

wrk is closed-loop: `connections` connections each send their next request when the previous
answer arrived, for `duration` whole seconds. A small Lua ``done`` hook prints wrk's own
summary and latency histogram (the figures ``wrk --latency`` shows) as one JSON line, so nothing
is scraped from its human-readable output. Non-2xx/3xx answers count as errors, and the bytes
per response expose a redirect or a re-issued cookie where the upstream body was expected.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.services import cpu_list

REPORT_SCRIPT = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


class WrkFailed(RuntimeError):
    """wrk exited with an error or printed no summary."""


@dataclass(frozen=True)
class WrkResult:
    """wrk's summary of one run."""

    requests: int
    seconds: float
    bytes: int
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def bytes_per_response(self) -> float:
        return self.bytes / self.requests if self.requests else 0.0


async def run_wrk(url: str, *, headers: Mapping[str, str], duration: int, connections: int,
                  cpus: set[int] | None, script: Path) -> WrkResult:
    """Load `url` for `duration` s (one wrk thread) with `script` (`REPORT_SCRIPT`)."""
    argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s",
            "--timeout", "5s", "--latency", "-s", str(script)]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    if cpus is not None:
        argv = ["taskset", "-c", cpu_list(cpus), *argv]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(duration + 30):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise WrkFailed(f"wrk did not finish within {duration + 30} s") from None
    line = next((line for line in out.decode().splitlines() if line.startswith("WRKJSON ")), None)
    if process.returncode != 0 or line is None:
        # wrk's own output never holds the header values, only the URL and its figures.
        raise WrkFailed(f"wrk exited with {process.returncode}: {err.decode()[-500:]}")
    data = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(requests=data["requests"], seconds=data["duration_us"] / 1e6,
                     bytes=data["bytes"], errors=data["errors"],
                     p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000)
