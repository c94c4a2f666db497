"""`python -m bench --quick --only small`: the benchmark runs end to end and records every figure.

Speed is measured, never asserted: these tests check that a tiny real run (nginx, the stand-in
IdP, a real sign-in, the gateway, wrk) completes and that its JSON has the promised shape with
a finite number for every figure, and that the comparison with a previous run flags what it
should.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.results import Change, compare

PROJECT = Path(__file__).resolve().parent.parent
RESULT_NAME = re.compile(r"^\d{8}T\d{6}Z\.json$")
JWT_SHAPED = re.compile(r"eyJ[\w-]{10,}\.eyJ[\w-]{10,}")
HTTP_FIGURES = {"rate", "p50_ms", "p99_ms", "cpu_us", "path_cpu_us", "rss_mib", "requests",
                "errors", "bytes_per_response", "other_load_cores", "steal_cores"}
RUN_BUDGET_SECONDS = 60

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None or shutil.which("taskset") is None
    or (shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists()),
    reason="needs wrk, taskset and nginx (make bench installs wrk)")


@dataclass(frozen=True)
class QuickRun:
    """The finished smoke run: its exit status, output and the one result it wrote."""

    returncode: int
    output: str
    results: list[Path]

    @property
    def document(self) -> dict[str, Any]:
        assert len(self.results) == 1, self.output[-3000:]
        loaded: dict[str, Any] = json.loads(self.results[0].read_text(encoding="utf-8"))
        return loaded


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    """Run the quick small-response benchmark once for the whole module."""
    base = tmp_path_factory.mktemp("bench")
    results = base / "results"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "small",
         "--run-dir", str(base / "run"), "--results-dir", str(results)],
        cwd=PROJECT, capture_output=True, text=True, timeout=RUN_BUDGET_SECONDS, check=False)
    return QuickRun(done.returncode, done.stdout + done.stderr,
                    sorted(results.glob("*.json")) if results.is_dir() else [])


def test_quick_run_succeeds_and_writes_one_result_named_by_utc_time(quick_run: QuickRun) -> None:
    """A quick run exits 0 and writes exactly one <UTC time>.json."""
    assert quick_run.returncode == 0, quick_run.output[-3000:]
    assert [RESULT_NAME.match(p.name) is not None for p in quick_run.results] == [True]


def test_result_records_settings_interpreter_and_gateway(quick_run: QuickRun) -> None:
    """The result says how it ran, under which interpreter (PGO/LTO, CFLAGS) and which gateway."""
    document = quick_run.document
    assert document["settings"]["quick"] is True
    assert document["settings"]["scenarios"] == ["small"]
    for role in ("gateway", "harness"):
        facts = document["interpreter"][role]
        assert {"executable", "version", "pgo", "lto", "py_cflags", "config_args"} <= set(facts)
        assert isinstance(facts["pgo"], bool)
        assert isinstance(facts["lto"], bool)
    assert document["gateway"]["version"].startswith("cognito-gateway ")


@pytest.mark.parametrize("target", ["gateway", "nginx"], ids=["gateway", "nginx-reference"])
def test_every_figure_of_a_target_is_a_finite_number(quick_run: QuickRun, target: str) -> None:
    """Each target of "small" has every HTTP figure, in its median and in each round."""
    entry = quick_run.document["scenarios"]["small"]
    assert entry["status"] == "ok", entry
    figures = entry["targets"][target]
    assert set(figures["median"]) == HTTP_FIGURES
    assert len(figures["rounds"]) == 1
    for values in [figures["median"], *figures["rounds"]]:
        assert all(isinstance(v, int | float) and math.isfinite(v) for v in values.values())
    assert figures["median"]["requests"] > 0


def test_ratios_divide_the_gateway_by_nginx(quick_run: QuickRun) -> None:
    """"small" has its throughput and CPU ratios to the nginx reference proxy."""
    entry = quick_run.document["scenarios"]["small"]
    gateway, nginx = (entry["targets"][t]["median"] for t in ("gateway", "nginx"))
    assert entry["reference"] == "nginx"
    assert set(entry["ratios"]) == {"gateway"}
    ratios = entry["ratios"]["gateway"]
    assert ratios["rate"] == pytest.approx(gateway["rate"] / nginx["rate"])
    assert ratios["cpu_us"] == pytest.approx(gateway["cpu_us"] / nginx["cpu_us"])


def test_output_shows_the_table_and_no_credential(quick_run: QuickRun) -> None:
    """The printed table has both targets; neither it nor the JSON holds a token or cookie."""
    assert "| small | gateway |" in quick_run.output
    assert "| small | nginx |" in quick_run.output
    written = quick_run.results[0].read_text(encoding="utf-8")
    for text in (quick_run.output, written):
        assert not JWT_SHAPED.search(text)
        assert "_cognito_gateway=" not in text


def _document(rate: float, cpu_us: float) -> dict[str, Any]:
    return {"scenarios": {"small": {"status": "ok", "targets": {"gateway": {"median": {
        "rate": rate, "cpu_us": cpu_us, "errors": 0.0}}}}}}


@pytest.mark.parametrize(("metric", "before", "after", "regression"), [
    ("rate", 1000.0, 790.0, True),
    ("rate", 1000.0, 810.0, False),
    ("rate", 1000.0, 2000.0, False),
    ("cpu_us", 400.0, 490.0, True),
    ("cpu_us", 400.0, 470.0, False),
    ("cpu_us", 400.0, 100.0, False),
], ids=["throughput-down-21pc", "throughput-down-19pc", "throughput-up", "cpu-up-22pc",
        "cpu-up-17pc", "cpu-down"])
def test_a_change_over_20_percent_in_the_bad_direction_is_a_regression(
        metric: str, before: float, after: float, regression: bool) -> None:
    """Less throughput or more CPU by more than 20 % is flagged; the rest is not."""
    assert Change("small", "gateway", metric, before, after).regression is regression


def test_comparison_covers_judged_figures_present_in_both_runs() -> None:
    """Figures are compared when both runs have them; counts such as errors are not judged."""
    changes = compare(_document(800.0, 500.0), _document(1000.0, 400.0))
    assert {(c.metric, c.regression) for c in changes} == {("rate", False), ("cpu_us", True)}
