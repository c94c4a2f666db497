"""`python -m tests.soak.traced DIR run [options]`: `cognito-gateway` with tracemalloc on.

Each SIGUSR2 writes a snapshot of the gateway's Python heap to `DIR/heap-<n>.tracemalloc`
(n = 1, 2, ...), under a temporary name first and then renamed, so a reader never sees half a
file. The soak's `--tracemalloc` takes one after the warm-up and one at the end and reports
which source lines grew in between. Tracing costs CPU: latency figures of such a run are not
comparable with a run without it. One worker only (a forked worker would not inherit the
handler's meaning).
"""

from __future__ import annotations

import signal
import sys
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType

FRAMES = 1  # the allocating line only: deeper tracebacks slow the gateway down too much


def snapshot_path(directory: Path, number: int) -> Path:
    return directory / f"heap-{number}.tracemalloc"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m tests.soak.traced DIR run [options]", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    directory.mkdir(parents=True, exist_ok=True)
    taken = 0

    def dump(_signum: int, _frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        partial = directory / f".heap-{taken}.partial"
        tracemalloc.take_snapshot().dump(str(partial))
        partial.rename(snapshot_path(directory, taken))

    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR2, dump)
    from gateway.cli import main as gateway

    return gateway(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
