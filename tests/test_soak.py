"""The soak (tests/soak), run as `python -m tests.soak` exactly as `make soak` runs it.

A calm, tiny run (no faults, the gateway under tracemalloc) proves the harness itself: every
report field is there, heap growth included, and every request succeeds. The short run is the CI
form of the soak: 40 users for 20 s with 6 s tokens, refresh-token rotation with a grace period
of 0, and the faults compressed (token endpoint 503 and slow, a random-kid bearer burst then a
signing-key rotation, the upstream killed and restarted). Its guarantees are asserted one by
one, and a failure names the numbers. Both runs take about 40 s together. The pure pieces that
decide what counts as a failure (categories, outcome causes, the fault schedule, metric deltas,
which requests judge refresh latency) have table-driven tests of their own.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from tests.soak.faults import FaultWindow
from tests.soak.measure import REPO as SOAK_REPO
from tests.soak.measure import counter_delta, parse_metrics, percentile, source_name
from tests.soak.plan import SoakPlan
from tests.soak.report import category, during_token_faults
from tests.soak.schedule import FaultKind, fault_schedule
from tests.soak.upstream import assertion_exp
from tests.soak.users import RequestRecord, classify
from tests.support.browser import Page

REPO = Path(__file__).resolve().parent.parent
CALM_ARGS = ("--users", "5", "--duration", "5", "--rate", "20", "--token-seconds", "4",
             "--no-faults", "--tracemalloc")
RUN_BOUND_SECONDS = 120


def run_soak(out: Path, *args: str) -> dict[str, Any]:
    """Run `python -m tests.soak ARGS --out OUT` and return its JSON report.

    Exit 1 (a broken guarantee) still yields a report; any other failure to produce one fails
    the test with the soak's output.
    """
    result = subprocess.run([sys.executable, "-m", "tests.soak", *args, "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, check=False,
                            timeout=RUN_BOUND_SECONDS)
    if result.returncode not in {0, 1} or not out.exists():
        pytest.fail(f"the soak did not run (exit {result.returncode}):\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report


@pytest.fixture(scope="module")
def calm_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_soak(tmp_path_factory.mktemp("soak-calm") / "report.json", *CALM_ARGS)


@pytest.fixture(scope="module")
def short_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_soak(tmp_path_factory.mktemp("soak-short") / "report.json", "--short")


REPORT_FIELDS = [
    "soak.plan.users", "soak.plan.token_seconds", "soak.plan.rate_per_second",
    "soak.latency_measured_from", "soak.max_send_lag_ms", "timeline",
    "requests.scheduled", "requests.sent", "requests.by_outcome", "requests.by_category.ok",
    "requests.by_category.sign_in", "requests.by_category.error_tokens_valid",
    "requests.by_category.upstream_kill_inflight", "requests.by_category.worker_kill_inflight",
    "sessions.signed_in", "sessions.lost", "sessions.sign_in_with_valid_refresh_token",
    "errors_while_tokens_valid.count", "errors_while_tokens_valid.samples",
    "errors_after_token_expiry.count",
    "refreshes.gateway.session_refreshes_total", "refreshes.gateway.token_requests_total",
    "refreshes.idp_token_requests", "refreshes.invalid_grant",
    "latency_ms.overall.p50", "latency_ms.overall.p99", "latency_ms.outside_faults.p99",
    "latency_ms.during_token_endpoint_faults.count", "latency_ms.tokens_expired.count",
    "latency_ms.slowest",
    "rss_bytes.start", "rss_bytes.after_warmup", "rss_bytes.peak", "rss_bytes.end",
    "heap_growth.total_kib", "heap_growth.top", "soak.plan.session_store",
    "guarantees.sign_ins_with_valid_refresh_token", "guarantees.errors_while_tokens_valid",
    "guarantees.rss_end_vs_warmup_percent", "guarantees.violations", "guarantees.passed",
]


def field(report: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of the report; KeyError naming the path if absent."""
    value: Any = report
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"report has no {path!r} (stopped at {key!r})")
        value = value[key]
    return value


class TestCalmRun:
    @pytest.mark.parametrize("path", REPORT_FIELDS, ids=REPORT_FIELDS)
    def test_report_has_field(self, calm_report: dict[str, Any], path: str) -> None:
        """Every field the soak promises is in its JSON report, measured (not null)."""
        assert field(calm_report, path) is not None

    def test_every_request_succeeds(self, calm_report: dict[str, Any]) -> None:
        """Without faults, every scheduled request reaches the upstream as its own user."""
        requests = calm_report["requests"]
        assert requests["sent"] == requests["scheduled"] == 100
        assert requests["by_outcome"] == {"200 ok": 100}, calm_report["guarantees"]
        assert calm_report["guarantees"]["passed"], calm_report["guarantees"]["violations"]

    def test_refreshes_are_counted_on_both_sides(self, calm_report: dict[str, Any]) -> None:
        """4 s tokens refresh during 5 s of traffic; the gateway and the stand-in count alike."""
        refreshes = calm_report["refreshes"]
        gateway_ok = refreshes["gateway"]["token_requests_total"].get("refresh_token:ok", 0)
        assert gateway_ok >= 5
        assert refreshes["idp_token_requests"].get("refresh_token") == gateway_ok


GUARANTEES = [
    pytest.param("sign_ins_with_valid_refresh_token", id="no-sign-in-while-refresh-token-valid"),
    pytest.param("errors_while_tokens_valid", id="no-error-while-tokens-valid"),
    pytest.param("identity_mismatches", id="no-answer-with-another-users-identity"),
]


class TestShortRun:
    def test_every_fault_kind_happened(self, short_report: dict[str, Any]) -> None:
        """The short run really injects each fault kind, so its zeros mean something."""
        kinds = {window["kind"] for window in short_report["timeline"]}
        assert kinds == {"token_503", "token_slow", "kid_burst", "key_rotation", "upstream_kill"}
        burst = next(w for w in short_report["timeline"] if w["kind"] == "kid_burst")
        assert burst["by_status"] == {"401": burst["requests"]}

    @pytest.mark.parametrize("count", GUARANTEES)
    def test_guarantee_holds_under_faults(self, short_report: dict[str, Any],
                                          count: str) -> None:
        """Through every fault, this count of broken promises to signed-in users stays 0."""
        guarantees = short_report["guarantees"]
        assert guarantees[count] == 0, "\n".join(guarantees["violations"])

    def test_rss_ends_within_20_percent_of_warm_up(self, short_report: dict[str, Any]) -> None:
        """The gateway's memory at the end is within 20 % of its memory after warm-up."""
        growth = short_report["guarantees"]["rss_end_vs_warmup_percent"]
        assert growth is not None
        assert abs(growth) <= 20, short_report["rss_bytes"]

    def test_a_refresh_is_not_felt_while_tokens_are_valid(
            self, short_report: dict[str, Any]) -> None:
        """Users with valid tokens see the same p99 while the token endpoint fails or is slow
        as outside faults (within 2x, or 250 ms of scheduling noise; a refresh in their way
        would add 750 ms to 2 s): refreshes run aside."""
        latency = short_report["latency_ms"]
        during, outside = (latency["during_token_endpoint_faults"]["p99"],
                           latency["outside_faults"]["p99"])
        assert latency["during_token_endpoint_faults"]["count"] > 0
        assert during <= max(2 * outside, outside + 250), latency
        assert not any("felt the token endpoint" in v
                       for v in short_report["guarantees"]["violations"])

    def test_no_session_was_refreshed_with_a_spent_token(
            self, short_report: dict[str, Any]) -> None:
        """Through the rotation after the forged-kid burst, no refresh got invalid_grant."""
        assert short_report["refreshes"]["invalid_grant"] == 0
        jwks = short_report["refreshes"]["gateway"]["jwks_fetches_total"]
        assert jwks == {"ok": 2}, "one fetch for the burst, one for the rotated key"


AUTHORIZE = "http://127.0.0.1:9/oauth2/authorize"
KILLS = [FaultWindow(FaultKind.UPSTREAM_KILL, 10.0, 10.5),
         FaultWindow(FaultKind.WORKER_KILL, 20.0, 20.0)]


def record(status: int, cause: str, *, sent: float = 5.0, took: float = 0.01,
           tokens_valid: bool = True) -> RequestRecord:
    return RequestRecord(user=0, kind="api", scheduled=sent, sent=sent, finished=sent + took,
                         status=status, cause=cause, request_id="-", tokens_valid=tokens_valid)


class TestCategory:
    @pytest.mark.parametrize(("rec", "expected"), [
        pytest.param(record(200, "ok"), "ok", id="ok"),
        pytest.param(record(302, "sign_in_redirect"), "sign_in", id="redirect-to-sign-in"),
        pytest.param(record(401, "unauthorized"), "sign_in", id="401"),
        pytest.param(record(502, "upstream_connect", sent=10.2), "upstream_kill_inflight",
                     id="502-while-upstream-down"),
        pytest.param(record(504, "upstream_timeout", sent=9.0, took=2.0),
                     "upstream_kill_inflight", id="504-in-flight-at-kill"),
        pytest.param(record(502, "upstream_connect", sent=11.0), "error_tokens_valid",
                     id="502-after-restart"),
        pytest.param(record(503, "idp_unavailable"), "error_tokens_valid",
                     id="503-with-valid-tokens"),
        pytest.param(record(503, "idp_unavailable", tokens_valid=False),
                     "error_tokens_expired", id="503-after-expiry"),
        pytest.param(record(0, "client_disconnected", sent=19.9, took=0.2),
                     "worker_kill_inflight", id="reset-in-flight-at-worker-kill"),
        pytest.param(record(0, "client_disconnected", sent=30.0), "error_tokens_valid",
                     id="reset-without-kill"),
        pytest.param(record(502, "upstream_reset", sent=20.0), "error_tokens_valid",
                     id="502-at-worker-kill"),
        pytest.param(record(200, "identity_mismatch"), "error_tokens_valid",
                     id="another-users-identity"),
    ])
    def test_category(self, rec: RequestRecord, expected: str) -> None:
        """Each answer lands in the category the guarantees are counted from."""
        assert category(rec, KILLS) == expected


TOKEN_WINDOWS = [FaultWindow(FaultKind.TOKEN_503, 4.0, 5.0),
                 FaultWindow(FaultKind.TOKEN_SLOW, 8.0, 9.0),
                 FaultWindow(FaultKind.KID_BURST, 9.5, 9.6)]


class TestRefreshLatencyWindow:
    @pytest.mark.parametrize(("rec", "judged"), [
        pytest.param(record(200, "ok", sent=4.5), True, id="during-a-503-window"),
        pytest.param(record(200, "ok", sent=5.5), True, id="in-the-settle-second"),
        pytest.param(record(200, "ok", sent=3.0, took=1.5), True, id="still-waiting-at-start"),
        pytest.param(record(200, "ok", sent=2.0), False, id="before"),
        pytest.param(record(200, "ok", sent=6.5), False, id="after-settling"),
        pytest.param(record(200, "ok", sent=4.5, tokens_valid=False), False,
                     id="expired-tokens-wait-by-design"),
        pytest.param(record(200, "ok", sent=9.55), False, id="overlaps-another-fault"),
    ])
    def test_which_requests_judge_refresh_latency(self, rec: RequestRecord,
                                                  judged: bool) -> None:
        """Only requests with valid tokens during token-endpoint faults (and no other fault)
        judge whether a refresh was felt."""
        assert during_token_faults(rec, TOKEN_WINDOWS) is judged


class TestPlan:
    @pytest.mark.parametrize(("plan", "store"), [
        pytest.param(SoakPlan(), "cookie", id="one-worker"),
        pytest.param(SoakPlan(workers=2), "redis", id="workers-share-redis"),
        pytest.param(SoakPlan(workers=2, store="cookie"), "cookie", id="asked-for"),
    ])
    def test_session_store(self, plan: SoakPlan, store: str) -> None:
        """Several workers are replicas: without a choice they share the Redis store."""
        assert plan.session_store == store

    @pytest.mark.parametrize(("plan", "problem"), [
        pytest.param(SoakPlan(store="memcached"), "--store", id="unknown-store"),
        pytest.param(SoakPlan(workers=2, tracemalloc=True), "--tracemalloc",
                     id="tracing-one-process-only"),
    ])
    def test_problems_name_the_option(self, plan: SoakPlan, problem: str) -> None:
        """A plan that cannot run says which option is wrong."""
        assert [p.split(":")[0] for p in plan.problems()] == [problem]


class TestHeapSites:
    @pytest.mark.parametrize(("filename", "shown"), [
        pytest.param(str(SOAK_REPO / "gateway" / "cache.py"), "gateway/cache.py",
                     id="the-checkout"),
        pytest.param("/opt/venv/lib/python3.11/site-packages/aiohttp/web_protocol.py",
                     "aiohttp/web_protocol.py", id="site-packages"),
        pytest.param(str(SOAK_REPO / ".venv" / "lib" / "python3.11" / "site-packages" / "yarl"
                         / "_url.py"), "yarl/_url.py", id="venv-in-the-checkout"),
        pytest.param("/usr/lib/python3.11/json/decoder.py", "json/decoder.py", id="stdlib"),
        pytest.param("<frozen abc>", "<frozen abc>", id="no-path"),
    ])
    def test_sites_name_no_path_of_this_machine(self, filename: str, shown: str) -> None:
        """Heap growth sites are named relative to the checkout or the library directory."""
        assert source_name(filename) == shown


def page(status: int, text: str = "", **headers: str) -> Page:
    return Page("http://127.0.0.1:9/app", status,
                CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v
                                              for k, v in headers.items()})), text)


class TestClassify:
    @pytest.mark.parametrize(("answer", "expected"), [
        pytest.param(page(200, X_Soak_User="soak-0001"), "ok", id="own-identity"),
        pytest.param(page(200, X_Soak_User="soak-0002"), "identity_mismatch",
                     id="another-identity"),
        pytest.param(page(302, Location=AUTHORIZE + "?state=x"), "sign_in_redirect",
                     id="to-sign-in"),
        pytest.param(page(302, Location="/elsewhere"), "redirect", id="other-redirect"),
        pytest.param(page(401, '{"error": "unauthorized", "message": "x"}'), "unauthorized",
                     id="json-401"),
        pytest.param(page(503, "<p>Error: <code>idp_unavailable</code></p>"),
                     "idp_unavailable", id="html-503"),
        pytest.param(page(502, '{"error": "upstream_connect"}'), "upstream_connect",
                     id="json-502"),
        pytest.param(page(500, "Internal Server Error"), "-", id="no-code"),
    ])
    def test_cause(self, answer: Page, expected: str) -> None:
        """An answer's cause comes from the upstream's identity or the gateway's error code."""
        assert classify(answer, "soak-0001", AUTHORIZE) == expected


def steps(plan: SoakPlan) -> list[tuple[float, str]]:
    return [(round(step.at, 1), str(step.kind)) for step in fault_schedule(plan)]


class TestFaultSchedule:
    @pytest.mark.parametrize(("plan", "expected"), [
        pytest.param(SoakPlan(), [
            (16, "token_503"), (20, "token_slow"), (26, "token_503"), (30, "kid_burst"),
            (33, "key_rotation"), (36, "token_503"), (41, "upstream_kill"), (46, "token_503"),
        ], id="full"),
        pytest.param(SoakPlan(workers=2), [
            (16, "token_503"), (20, "token_slow"), (26, "token_503"), (30, "kid_burst"),
            (33, "key_rotation"), (36, "token_503"), (41, "upstream_kill"), (46, "token_503"),
            (51, "worker_kill"),
        ], id="full-with-workers"),
        pytest.param(SoakPlan(duration=30), [
            (10, "token_503"), (14, "token_slow"), (20, "token_503"), (24, "kid_burst"),
        ], id="too-short-for-every-fault"),
        pytest.param(SoakPlan(faults=False), [], id="no-faults"),
        pytest.param(SoakPlan.short(), [
            (4, "token_503"), (5.6, "token_slow"), (8, "token_503"), (9.6, "kid_burst"),
            (10.8, "key_rotation"), (12, "token_503"), (14, "upstream_kill"),
            (16, "token_503"),
        ], id="short"),
    ])
    def test_schedule(self, plan: SoakPlan, expected: list[tuple[float, str]]) -> None:
        """Faults follow the warm-up, end before the calm tail, never overlap on /token."""
        assert steps(plan) == expected
        token = [s for s in fault_schedule(plan) if s.kind in {"token_503", "token_slow"}]
        assert all(a.at + a.seconds < b.at for a, b in itertools.pairwise(token))


METRICS = """# TYPE cognito_gateway_session_refreshes_total counter
cognito_gateway_session_refreshes_total{outcome="ok"} 7.0
cognito_gateway_session_refreshes_total{outcome="rejected"} 2.0
# TYPE cognito_gateway_token_requests_total counter
cognito_gateway_token_requests_total{grant_type="refresh_token",outcome="ok"} 9.0
cognito_gateway_token_requests_total{grant_type="refresh_token",outcome="invalid_grant"} 2.0
"""
EARLIER = """# TYPE cognito_gateway_session_refreshes_total counter
cognito_gateway_session_refreshes_total{outcome="ok"} 3.0
# TYPE cognito_gateway_token_requests_total counter
cognito_gateway_token_requests_total{grant_type="refresh_token",outcome="ok"} 4.0
"""


class TestMeasurements:
    @pytest.mark.parametrize(("name", "labels", "expected"), [
        pytest.param("cognito_gateway_session_refreshes_total", ("outcome",),
                     {"ok": 4, "rejected": 2}, id="by-outcome"),
        pytest.param("cognito_gateway_token_requests_total", ("grant_type", "outcome"),
                     {"refresh_token:invalid_grant": 2, "refresh_token:ok": 5},
                     id="by-grant-and-outcome"),
        pytest.param("cognito_gateway_jwks_fetches_total", ("outcome",), {}, id="absent"),
    ])
    def test_counter_growth(self, name: str, labels: tuple[str, ...],
                            expected: dict[str, int]) -> None:
        """The report shows how much each counter grew between two scrapes, by label."""
        assert counter_delta(parse_metrics(EARLIER), parse_metrics(METRICS), name,
                             labels) == expected

    @pytest.mark.parametrize(("values", "q", "expected"), [
        pytest.param([], 50, None, id="empty"),
        pytest.param([0.3], 99, 0.3, id="one"),
        pytest.param([float(v) for v in range(100, 0, -1)], 50, 50.0, id="p50"),
        pytest.param([float(v) for v in range(1, 101)], 99, 99.0, id="p99"),
    ])
    def test_percentile(self, values: list[float], q: float, expected: float | None) -> None:
        """Percentiles are nearest-rank over the unsorted values."""
        assert percentile(values, q) == expected

    @pytest.mark.parametrize(("assertion", "expected"), [
        pytest.param("eyJhIjoxfQ==.eyJleHAiOjE3MDAwMDAwMDB9.c2ln", "1700000000",
                     id="padded-like-alb"),
        pytest.param("aGVhZA.eyJleHAiOjEyfQ.c2ln", "12", id="unpadded"),
        pytest.param("aGVhZA.bm90IGpzb24.c2ln", "", id="not-json"),
        pytest.param("", "", id="absent"),
    ])
    def test_upstream_reads_token_expiry(self, assertion: str, expected: str) -> None:
        """The upstream reports the exp of the gateway's x-amzn-oidc-data assertion."""
        assert assertion_exp(assertion) == expected
