"""Where the gateway's CPU goes: py-spy under the small-response load, summarised.

``--profile`` samples the gateway with ``py-spy record --native`` (500 Hz, needs root or
ptrace rights) while wrk loads it as in the "small" scenario, after the measured rounds so the
sampling does not skew them. The collapsed stacks (one ``frame;frame;... count`` line per
stack, the input of flamegraph.pl, inferno and speedscope.app) are kept under the run
directory, and summarised four ways, each as a share of the working samples:

* by function, self: the innermost frame, Python or native;
* by Python file, self: each sample charged to its innermost Python frame, native code it
  called included (so time in a C parser counts to the Python file that called it);
* by package: the same, rolled up to the first path component (``aiohttp``, ``gateway``);
* the gateway's own functions, inclusive of what they call.

Samples with no Python frame inside the event loop's own (uvloop is native) are charged to
"event loop: <library>" of their innermost frame: polling and socket syscalls, mostly.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.services import cpu_list

if TYPE_CHECKING:
    from collections.abc import Iterable

SAMPLE_RATE = 500
TOP = 20
# With uvloop the loop itself is native: a sample whose innermost Python frame is the runner's
# is time in the loop (polling, socket syscalls, transport code) outside any Python callback.
EVENT_LOOP_FILES = frozenset({"asyncio/runners.py", "asyncio/base_events.py"})
# py-spy counts some samples of a thread blocked in the loop's poll as active (an idle uvloop
# program shows ~13 % of its time there): samples ending in these are waiting, left out.
WAITING = frozenset({"epoll_pwait", "epoll_wait", "poll", "ppoll", "select", "pselect6"})
OWN_CODE = "gateway/"
ENTRY_POINT = "gateway/cli.py"  # on every stack: says nothing
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<where>[^()]*)\)$")
_LINE = re.compile(r":\d+$")


class ProfileFailed(RuntimeError):
    """py-spy is missing or could not sample the gateway."""


@dataclass(frozen=True)
class Frame:
    """One stack frame as py-spy names it: function and file (or shared library)."""

    name: str
    where: str

    @classmethod
    def parse(cls, text: str) -> Frame:
        match = _FRAME.match(text)
        if match is None:
            return cls(text, "?")
        return cls(match["name"], _LINE.sub("", match["where"]))

    @property
    def python(self) -> bool:
        return self.where.endswith(".py")

    @property
    def label(self) -> str:
        name = "(native)" if self.name.startswith("0x") else self.name
        return f"{name} ({self.where})"


def _package(where: str) -> str:
    if where.startswith("event loop: "):
        return "event loop (native)"
    if where.endswith(".py"):
        parts = where.split("/")
        return parts[0] if len(parts) > 1 else where.removesuffix(".py")
    return f"native: {where}"


def summarise(collapsed: Iterable[str]) -> dict[str, Any]:
    """Shares of the working samples by function (self), Python file, package, and own code.

    ``gateway_inclusive`` charges each sample to every gateway function on its stack (once
    each), so a function's share includes whatever it called: where in the gateway's own code
    the time is spent.
    """
    by_function: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = waiting = 0
    for line in collapsed:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [Frame.parse(f) for f in stack.split(";")]
        if frames[-1].name in WAITING:
            waiting += count
            continue
        total += count
        for label in {f.label for f in frames
                      if f.where.startswith(OWN_CODE) and f.where != ENTRY_POINT}:
            inclusive[label] += count
        by_function[frames[-1].label] += count
        owner = next((f.where for f in reversed(frames) if f.python), frames[-1].where)
        if owner in EVENT_LOOP_FILES:
            owner = f"event loop: {frames[-1].where}"
        by_file[owner] += count
        by_package[_package(owner)] += count

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[key, round(100 * n / total, 1)] for key, n in counter.most_common(TOP)]

    return {"samples": total, "waiting_samples_left_out": waiting,
            "by_package": shares(by_package), "by_python_file": shares(by_file),
            "by_function_self": shares(by_function), "gateway_inclusive": shares(inclusive)}


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise ProfileFailed("py-spy is not installed (it is in the project's test extra)")
    return found


def _read(out: Path) -> dict[str, Any]:
    if not out.exists():
        raise ProfileFailed(f"py-spy wrote no {out}")
    with out.open(encoding="utf-8", errors="replace") as f:
        return summarise(f)


async def record(pid: int, seconds: int, out: Path, cpus: set[int] | None) -> dict[str, Any]:
    """Sample `pid` for `seconds` into `out` (collapsed stacks); return the summary.

    `out`'s directory must exist.
    """
    argv = [_py_spy(), "record", "--native", "-r", str(SAMPLE_RATE), "-d", str(seconds),
            "--format", "raw", "-o", str(out), "--pid", str(pid)]
    if cpus is not None:
        argv = ["taskset", "-c", cpu_list(cpus), *argv]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(seconds + 60):
        output, _ = await process.communicate()
    if process.returncode != 0:
        raise ProfileFailed(f"py-spy failed ({process.returncode}): {output.decode()[-800:]}")
    return await asyncio.to_thread(_read, out)
