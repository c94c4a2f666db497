"""The metrics contract: names and labels exported, and used correctly by dashboard and alerts."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_metrics_app
from gateway.devidp import UserPool
from tests.conftest import ALICE, BOB, RunningGateway, gateway_client, serve, sign_in_cookies

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "grafana" / "dashboard.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"
OBSERVABILITY_DOC = REPO / "docs" / "observability.md"
METRIC_NAME = re.compile(r"\bcognito_gateway_[a-z0-9_]+")

# DESIGN.md, "Metrics (contract)": every name and its labels. Add; never rename.
CONTRACT: dict[str, tuple[str, ...]] = {
    "cognito_gateway_http_requests_total": ("method", "code"),
    "cognito_gateway_http_request_duration_seconds": (),
    "cognito_gateway_upstream_request_duration_seconds": (),
    "cognito_gateway_upstream_errors_total": ("reason",),
    "cognito_gateway_auth_decisions_total": ("decision", "rule"),
    "cognito_gateway_token_requests_total": ("grant_type", "outcome"),
    "cognito_gateway_token_request_duration_seconds": ("grant_type",),
    "cognito_gateway_session_refreshes_total": ("outcome",),
    "cognito_gateway_jwks_fetches_total": ("outcome",),
    "cognito_gateway_token_validation_failures_total": ("reason",),
    "cognito_gateway_build_info": ("version",),
    "cognito_gateway_sign_ins_total": ("outcome",),
    "cognito_gateway_sign_outs_total": (),
    "cognito_gateway_ready": (),
}
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
            "histogram": ("", "_bucket", "_sum", "_count", "_created"), "summary": ("",)}


@pytest.fixture
def pool(gateway_url: str) -> UserPool:
    """Access tokens valid 60 s: inside the 120 s refresh window, so each request refreshes."""
    client = gateway_client(gateway_url, access_token_validity_seconds=60,
                            id_token_validity_seconds=60)
    return UserPool(users=[ALICE, BOB], clients=[client])


@pytest.fixture
async def scrape(gateway: RunningGateway) -> AsyncIterator[str]:
    """/metrics of the gateway's metrics listener, after traffic touching every metric."""
    runner, metrics_url = await serve(create_metrics_app(gateway.metrics))
    cookie = await sign_in_cookies(gateway.url)
    async with aiohttp.ClientSession() as http:
        for path, headers in [
            ("/page", {"Cookie": cookie}),                       # allowed + refresh
            ("/abort", {"Cookie": cookie}),                      # upstream reset
            ("/api", {"Authorization": "Bearer not.a.jwt"}),     # validation failure
            ("/ready", {}),                                      # readiness gauge
        ]:
            async with http.get(gateway.url + path, headers=headers,
                                allow_redirects=False) as resp:
                with contextlib.suppress(aiohttp.ClientPayloadError):
                    await resp.read()  # /abort drops the connection mid-body, on purpose
        async with http.get(f"{metrics_url}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
    yield text
    await runner.cleanup()


def exported(text: str) -> tuple[set[str], dict[str, set[frozenset[str]]]]:
    """Every series name the exposition allows, and the label-name sets seen per series."""
    names: set[str] = set()
    labels: dict[str, set[frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
        for sample in family.samples:
            labels.setdefault(sample.name, set()).add(
                frozenset(k for k in sample.labels if k != "le"))
    return names, labels


def dashboard_exprs() -> Iterator[str]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def alert_exprs() -> Iterator[str]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            yield rule["expr"]


class TestExported:
    def test_every_contract_metric_is_exported(self, scrape: str) -> None:
        """Each name in DESIGN.md's contract list is in the scraped exposition."""
        names, _ = exported(scrape)
        assert sorted(set(CONTRACT) - names) == []

    @pytest.mark.parametrize("name", sorted(CONTRACT))
    def test_contract_labels(self, scrape: str, name: str) -> None:
        """After traffic, each contract metric has samples carrying exactly its labels."""
        _, labels = exported(scrape)
        series = name + "_count" if name.endswith("_seconds") else name
        assert labels.get(series) == {frozenset(CONTRACT[name])}, labels.get(series)

    def test_traffic_reached_the_interesting_counters(self, scrape: str) -> None:
        """The sign-in, refresh, upstream reset and bad bearer token were all counted."""
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(scrape) for s in f.samples}

        def value(name: str, **labels: str) -> float:
            return samples.get((name, tuple(sorted(labels.items()))), 0.0)

        assert value("cognito_gateway_token_requests_total", grant_type="authorization_code",
                     outcome="ok") == 1
        assert value("cognito_gateway_sign_ins_total", outcome="ok") == 1
        assert value("cognito_gateway_session_refreshes_total", outcome="ok") >= 1
        assert value("cognito_gateway_upstream_errors_total", reason="reset") == 1
        assert value("cognito_gateway_jwks_fetches_total", outcome="ok") >= 1
        assert value("cognito_gateway_auth_decisions_total", decision="unauthorized",
                     rule="default") >= 1
        assert value("cognito_gateway_ready") == 1

    def test_every_exported_metric_is_documented(self, scrape: str) -> None:
        """docs/observability.md names every metric family the gateway exports."""
        doc = OBSERVABILITY_DOC.read_text(encoding="utf-8")
        families = {f.name for f in text_string_to_metric_families(scrape)
                    if not f.name.endswith("_created")}
        missing = [f for f in sorted(families) if f not in doc]
        assert missing == []


class TestDashboardsAndAlerts:
    @pytest.mark.parametrize(("source", "exprs"), [
        ("dashboard.json", list(dashboard_exprs())),
        ("alerts.yml", list(alert_exprs())),
    ])
    def test_expressions_use_exported_names(self, scrape: str, source: str,
                                            exprs: list[str]) -> None:
        """Every cognito_gateway_* name in the dashboard and the alerts exists as a series."""
        names, _ = exported(scrape)
        used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
        assert used, source
        assert sorted(used - names) == []

    def test_promtool_checks_the_rules(self) -> None:
        """`promtool check rules` accepts alerts.yml and its unit tests pass."""
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        assert Path(promtool).exists(), "promtool missing: run scripts/install-test-deps.sh"
        for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERT_TESTS)]):
            result = subprocess.run([promtool, *args], capture_output=True, text=True,
                                    timeout=60, check=False)
            assert result.returncode == 0, result.stdout + result.stderr

    def test_dashboard_covers_the_operations_view(self) -> None:
        """The dashboard has the panels an operator looks for first."""
        doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
        titles = " | ".join(p["title"] for p in doc["panels"]).lower()
        for words in ("sign-ins", "token endpoint errors", "refreshes", "request latency",
                      "upstream latency", "upstream errors", "auth decisions", "ready"):
            assert words in titles
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids))
