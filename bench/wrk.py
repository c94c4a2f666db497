"""One bounded wrk run, read back as numbers.

wrk is closed-loop: `connections` connections each send their next request when the previous
answer arrived, for `duration` whole seconds. A small Lua ``done`` hook prints wrk's own
summary and latency histogram (the figures ``wrk --latency`` shows) as one JSON line, so
nothing is scraped from its human-readable output; the same script sets the request headers.
Non-2xx/3xx answers count as errors, and the bytes per response expose a redirect or a
re-issued cookie where the upstream body was expected.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.services import cpu_list

if TYPE_CHECKING:
    from collections.abc import Mapping

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


def _lua_string(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError("a header value cannot hold CR, LF or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_script(directory: Path, headers: Mapping[str, str]) -> Path:
    """A private (0600) Lua script: `REPORT_SCRIPT` plus the request headers.

    Headers go into the script rather than onto wrk's command line, where every user of the
    machine could read a session cookie or a bearer token (``ps``).
    """
    fd, name = tempfile.mkstemp(prefix="wrk-", suffix=".lua", dir=directory)
    lines = [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join([*lines, REPORT_SCRIPT]))
    return Path(name)


async def run_wrk(url: str, *, headers: Mapping[str, str], duration: int, connections: int,
                  cpus: set[int] | None, script_dir: Path) -> WrkResult:
    """Load `url` for `duration` s (one wrk thread) sending `headers` with every request."""
    script = write_script(script_dir, headers)
    argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s",
            "--timeout", "5s", "--latency", "-s", str(script), url]
    if cpus is not None:
        argv = ["taskset", "-c", cpu_list(cpus), *argv]
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(duration + 30):
                out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise WrkFailed(f"wrk did not finish within {duration + 30} s") from None
    finally:
        script.unlink(missing_ok=True)
    line = next((line for line in out.decode().splitlines() if line.startswith("WRKJSON ")), None)
    if process.returncode != 0 or line is None:
        # wrk's own output never holds the header values, only the URL and its figures.
        raise WrkFailed(f"wrk exited with {process.returncode}: {err.decode()[-500:]}")
    data = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(requests=data["requests"], seconds=data["duration_us"] / 1e6,
                     bytes=data["bytes"], errors=data["errors"],
                     p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000)
