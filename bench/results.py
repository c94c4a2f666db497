"""A run's figures as one JSON document: medians, ratios, and the change since the last run.

Each run is written to ``<results>/<UTC timestamp>.json``. The previous comparable result (the
newest file of the same kind: the same scenarios, and ``--quick`` runs only with ``--quick``
runs) is read back and every median compared: a change of more than 20 % in the bad
direction (less throughput; more CPU, latency or memory) is flagged as a regression.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

REGRESSION = 0.20
HIGHER_IS_BETTER = frozenset({"rate", "mb_per_s"})
LOWER_IS_BETTER = frozenset({"p50_ms", "p99_ms", "cpu_us", "path_cpu_us", "rss_mib",
                             "peak_rss_mib", "idp_cpu_us"})
RATIO_METRICS = ("rate", "mb_per_s", "cpu_us", "path_cpu_us", "p50_ms", "rss_mib",
                 "peak_rss_mib")
SCHEMA = 1
ALT = "gateway-alt"


def median_values(rounds: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The median of each figure over the rounds that have it."""
    keys = {key for values in rounds for key in values}
    return {key: statistics.median(v[key] for v in rounds if key in v) for key in sorted(keys)}


def summarise_scenario(title: str, unit: str, reference: str | None,
                       runs: Mapping[str, Sequence[Mapping[str, float]]]) -> dict[str, Any]:
    """A scenario's entry: per target its rounds and medians, and the ratios to the reference.

    ``ratios[target]`` divides each other target's medians by the reference's (e.g. rate 0.08:
    the gateway serves 8 % of nginx's requests per second; cpu_us 12.5: it spends 12.5 times
    the CPU per request). With a BENCH_COMPARE_PYTHON gateway, ``interpreter_ratios`` divides
    its medians by the first gateway's.
    """
    medians = {name: median_values(rounds) for name, rounds in runs.items()}
    targets = {name: {"median": medians[name], "rounds": [dict(r) for r in rounds]}
               for name, rounds in runs.items()}
    entry: dict[str, Any] = {"status": "ok", "title": title, "unit": unit,
                             "reference": reference, "targets": targets}
    if reference is not None and reference in medians:
        entry["ratios"] = {name: _ratios(values, medians[reference])
                           for name, values in medians.items() if name != reference}
    names = list(runs)
    if ALT in medians and names and names[0] != ALT:
        entry["interpreter_ratios"] = _ratios(medians[ALT], medians[names[0]])
    return entry


def _ratios(ours: Mapping[str, float], theirs: Mapping[str, float]) -> dict[str, float]:
    return {key: ours[key] / theirs[key] for key in RATIO_METRICS
            if key in ours and theirs.get(key)}


def not_measured(title: str, status: str, reason: str) -> dict[str, Any]:
    """The entry of a scenario this build cannot run ("unsupported") or that "failed"."""
    return {"status": status, "title": title, "reason": reason}


def portable(value: Any, project: Path) -> Any:
    """`value` with this machine's paths made relative: the project as ".", home as "~"."""
    if isinstance(value, str):
        return value.replace(str(project), ".").replace(str(Path.home()), "~")
    if isinstance(value, dict):
        return {k: portable(v, project) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, project) for v in value]
    return value


def result_name(started: datetime) -> str:
    """The file name of a run started at `started`: its UTC time, sortable."""
    return started.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + ".json"


def write(directory: Path, started: datetime, document: Mapping[str, Any]) -> Path:
    """Write the document as `<directory>/<UTC timestamp>.json`; return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / result_name(started)
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


def latest(directory: Path, *, quick: bool,
           scenarios: Sequence[str]) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable result of the same kind, or None.

    The same kind: quick or not, and the same scenarios (what ran before a figure changes it:
    nginx's memory after a run of 100 MB transfers is not its memory after small requests).
    """
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob("*.json"), reverse=True):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        settings = document.get("settings", {}) if isinstance(document, dict) else {}
        if settings.get("quick") == quick and settings.get("scenarios") == list(scenarios):
            return path, document
    return None


@dataclass(frozen=True)
class Change:
    """One median compared with the previous run's."""

    scenario: str
    target: str
    metric: str
    previous: float
    current: float

    @property
    def relative(self) -> float:
        return (self.current - self.previous) / self.previous if self.previous else math.inf

    @property
    def regression(self) -> bool:
        """Worse by more than 20 %: less throughput, or more CPU, time or memory."""
        if self.metric in HIGHER_IS_BETTER:
            return self.relative < -REGRESSION
        return self.metric in LOWER_IS_BETTER and self.relative > REGRESSION

    def as_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "target": self.target, "metric": self.metric,
                "previous": self.previous, "current": self.current,
                "change": self.relative, "regression": self.regression}


def compare(current: Mapping[str, Any], previous: Mapping[str, Any]) -> list[Change]:
    """Every median of a judged figure present in both documents, compared."""
    changes = []
    judged = HIGHER_IS_BETTER | LOWER_IS_BETTER
    for scenario, entry in current.get("scenarios", {}).items():
        before = previous.get("scenarios", {}).get(scenario, {})
        if entry.get("status") != "ok" or before.get("status") != "ok":
            continue
        for target, figures in entry["targets"].items():
            old = before.get("targets", {}).get(target, {}).get("median", {})
            for metric, value in figures["median"].items():
                if metric in judged and isinstance(old.get(metric), int | float):
                    changes.append(Change(scenario, target, metric, float(old[metric]), value))
    return changes
