"""What one benchmark run does (`Options`), and where the project lives (`PROJECT`).

Shared by the command line (bench.cli builds the options) and the run (bench.run reads
them), so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Options:
    """What one run does."""

    scenarios: tuple[str, ...]
    duration: int
    rounds: int
    warmup: int
    connections: int
    quick: bool
    pin: bool
    profile: bool
    run_dir: Path
    results_dir: Path
