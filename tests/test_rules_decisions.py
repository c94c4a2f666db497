"""Rules decide: one table of rule, request, principal and the decision expected.

The rules below are loaded and compiled the way the gateway does it (`load_rules`,
`AccessPolicy`), the request target is normalised by `parse_target`, and `judge` decides, so
every case goes through the code a real request goes through, without the network.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth.guard import REDIRECTABLE, Decision, judge, unmet
from gateway.auth.policy import AccessPolicy
from gateway.auth.principal import Principal, token_scopes
from gateway.auth.rules import Rule, load_rules
from gateway.config import AuthSettings
from gateway.errors import BadTarget
from gateway.identity import Identity
from gateway.target import parse_target

RULES: list[dict[str, Any]] = [
    {"paths": ["/health", "/ready"], "action": "public"},                          # 0
    {"paths": ["/*"], "methods": ["OPTIONS"], "action": "public"},                 # 1
    {"paths": ["/admin", "/admin/*"], "groups": ["admins"]},                       # 2
    {"paths": ["/api/orders/*"], "methods": ["post", "PUT", "DELETE"],             # 3
     "scopes": ["orders/write"], "principal": "bearer"},
    {"paths": ["/api/orders/*"], "scopes": ["orders/read"],                        # 4
     "unauthenticated": "deny"},
    {"paths": ["/api/*"], "unauthenticated": "deny"},                              # 5
    {"paths": ["/reports/*"], "methods": ["DELETE"], "action": "deny"},            # 6
    {"paths": ["/reports/*.pdf"], "principal": "session",                          # 7
     "unauthenticated": "redirect"},
    {"paths": ["/tenants/acme/*"], "claims": {"custom:tenant": "acme"}},           # 8
    {"paths": ["/partner/*"], "groups": ["pool_PartnerSAML"],                      # 9
     "identity_provider": "PartnerSAML"},
    {"paths": ["/blog/*"], "unauthenticated": "allow"},                            # 10
    {"paths": ["/members/*"], "groups": ["members"], "unauthenticated": "allow"},  # 11
    {"paths": ["/café/*"], "action": "deny"},                                      # 12
    {"paths": ["/flags/*"], "claims": {"custom:beta": True, "custom:level": [3, 4]}},  # 13
    {"paths": ["/exports/*"], "methods": ["GET"], "groups": ["staff"]},            # 14
]


def policy_of(rules: list[dict[str, Any]], **defaults: Any) -> AccessPolicy:
    """The policy the gateway would build from these rules and default settings."""
    loaded, problems = load_rules(rules, "auth.rules", from_env=False)
    assert problems == []
    return AccessPolicy(AuthSettings(rules=loaded, **defaults))


POLICY = policy_of(RULES, public_paths=["/static/*"], api_paths=["/v1/*"],
                   allowed_groups=["staff"])


def principal(kind: str = "session", *, groups: tuple[str, ...] = (),
              scopes: str = "openid", **claims: Any) -> Principal:
    """A principal of `kind` with these groups, access-token scopes and ID-token claims."""
    identity = Identity(sub="sub-1", username="user", groups=groups,
                        claims={"sub": "sub-1", **{k.replace("_", ":"): v
                                                  for k, v in claims.items()}})
    return Principal("session" if kind == "session" else "bearer", identity, 0.0, {},
                     scopes=frozenset(scopes.split()))


ANONYMOUS = None
ALICE = principal(groups=("admins", "staff"), scopes="openid email orders/read",
                  custom_tenant="acme", custom_beta="true", custom_level="3")
BOB = principal()
LISTY = principal(groups=("members",), custom_tenant=["beta", "acme"], custom_beta=True,
                  custom_level=4)
PARTNER = principal(groups=("pool_PartnerSAML",))
READER = principal("bearer", scopes="orders/read")
WRITER = principal("bearer", scopes="orders/read orders/write")


@dataclass(frozen=True)
class Case:
    """A request, who makes it, and the decision with its rule."""

    method: str
    target: str
    who: Principal | None
    outcome: str
    rule: str
    navigation: bool = False


def case(method: str, target: str, who: Principal | None, outcome: str, rule: str, *,
         nav: bool = False, id: str) -> Any:
    return pytest.param(Case(method, target, who, outcome, rule, nav), id=id)


CASES = [
    # Public rules, method-only rules (CORS preflights), and what is left to the defaults.
    case("GET", "/health", ANONYMOUS, "public", "0", id="public-rule"),
    case("HEAD", "/ready", ANONYMOUS, "public", "0", id="public-rule-head"),
    case("GET", "/health/x", ANONYMOUS, "redirected", "default", nav=True,
         id="public-rule-is-exact"),
    case("OPTIONS", "/admin/users", ANONYMOUS, "public", "1", id="preflight-admin"),
    case("OPTIONS", "/api/orders/1", ANONYMOUS, "public", "1", id="preflight-api"),
    case("options", "/anything", ANONYMOUS, "public", "1", id="method-any-case"),
    # A group-restricted admin area, and paths that only match once normalised.
    case("GET", "/admin", ANONYMOUS, "redirected", "2", nav=True, id="admin-navigation"),
    case("HEAD", "/admin", ANONYMOUS, "redirected", "2", nav=True, id="admin-head-navigation"),
    case("GET", "/admin/users", ANONYMOUS, "unauthenticated", "2", id="admin-xhr"),
    case("POST", "/admin/users", ANONYMOUS, "unauthenticated", "2", id="admin-post"),
    case("GET", "/admin/users", ALICE, "allowed", "2", id="admin-member"),
    case("GET", "/admin/users", BOB, "forbidden", "2", id="admin-non-member"),
    case("GET", "/admin/users", WRITER, "forbidden", "2", id="admin-bearer-without-group"),
    case("GET", "/administrator", ALICE, "allowed", "default", id="prefix-is-not-the-area"),
    case("GET", "/a/../admin/x", BOB, "forbidden", "2", id="dot-dot-into-admin"),
    case("GET", "/%61dmin/x", BOB, "forbidden", "2", id="encoded-letter"),
    case("GET", "/admin//x", BOB, "forbidden", "2", id="double-slash"),
    case("GET", "/admin/./x", ANONYMOUS, "redirected", "2", nav=True, id="dot-segment"),
    case("GET", "/static/../admin/x", BOB, "forbidden", "2", id="out-of-a-public-path"),
    # An API by scope: bearer principals, and the scopes of a session's access token.
    case("POST", "/api/orders/1", WRITER, "bearer", "3", id="write-scope"),
    case("POST", "/api/orders/1", READER, "forbidden", "3", id="write-without-scope"),
    case("POST", "/api/orders/1", ALICE, "forbidden", "3", id="write-needs-bearer"),
    case("GET", "/api/orders/1", READER, "bearer", "4", id="read-scope-bearer"),
    case("GET", "/api/orders/1", ALICE, "allowed", "4", id="read-scope-session"),
    case("GET", "/api/orders/1", BOB, "forbidden", "4", id="session-without-scope"),
    case("GET", "/api/orders/1", ANONYMOUS, "unauthenticated", "4", nav=True,
         id="api-navigation-not-redirected"),
    case("GET", "/api/other", ANONYMOUS, "unauthenticated", "5", nav=True,
         id="overlapping-broader-glob"),
    case("GET", "/api/other", BOB, "allowed", "5", id="no-requirements"),
    # Method-specific denial before a broader rule of the same paths.
    case("DELETE", "/reports/q3.pdf", ALICE, "forbidden", "6", id="deny-rule"),
    case("delete", "/reports/q3", ANONYMOUS, "forbidden", "6", id="deny-any-case"),
    case("GET", "/reports/q3.pdf", ANONYMOUS, "redirected", "7", id="redirect-mode-xhr"),
    case("POST", "/reports/q3.pdf", ANONYMOUS, "unauthenticated", "7",
         id="redirect-mode-post"),
    case("GET", "/reports/q3.pdf", READER, "forbidden", "7", id="needs-a-session"),
    case("GET", "/reports/q3.pdf", ALICE, "allowed", "7", id="session-principal"),
    case("GET", "/reports/q3.csv", ALICE, "allowed", "default", id="glob-suffix"),
    # Claims: equal, list claims, and values compared as text.
    case("GET", "/tenants/acme/x", ALICE, "allowed", "8", id="claim-equal"),
    case("GET", "/tenants/acme/x", BOB, "forbidden", "8", id="claim-missing"),
    case("GET", "/tenants/acme/x", LISTY, "allowed", "8", id="list-claim"),
    case("GET", "/flags/x", ALICE, "allowed", "13", id="claims-as-text"),
    case("GET", "/flags/x", LISTY, "allowed", "13", id="claims-typed"),
    case("GET", "/flags/x", BOB, "forbidden", "13", id="claims-all-needed"),
    # Federated partners, unauthenticated = "allow".
    case("GET", "/partner/x", ANONYMOUS, "redirected", "9", nav=True, id="partner-sign-in"),
    case("GET", "/partner/x", PARTNER, "allowed", "9", id="partner-group"),
    case("GET", "/partner/x", ALICE, "forbidden", "9", id="not-a-partner"),
    case("GET", "/blog/post", ANONYMOUS, "anonymous", "10", nav=True, id="allow-anonymous"),
    case("GET", "/blog/post", ALICE, "allowed", "10", id="allow-with-session"),
    case("GET", "/blog/post", READER, "bearer", "10", id="allow-with-bearer"),
    case("GET", "/members/x", BOB, "anonymous", "11", id="allow-non-member-anonymous"),
    case("GET", "/members/x", LISTY, "allowed", "11", id="allow-member"),
    case("GET", "/caf%C3%A9/menu", ANONYMOUS, "forbidden", "12", id="decoded-utf8"),
    case("GET", "/caf%c3%a9/menu", ALICE, "forbidden", "12", id="decoded-utf8-lower-hex"),
    case("GET", "/exports/x", BOB, "forbidden", "14", id="get-rule"),
    case("HEAD", "/exports/x", BOB, "forbidden", "14", id="get-rule-covers-head"),
    case("POST", "/exports/x", BOB, "forbidden", "default", id="get-rule-not-post"),
    # The defaults: public_paths, api_paths, allowed_groups.
    case("GET", "/static/app.js", ANONYMOUS, "public", "default", id="default-public"),
    case("GET", "/v1/things", ANONYMOUS, "unauthenticated", "default", nav=True,
         id="default-api"),
    case("GET", "/v1/things", BOB, "forbidden", "default", id="default-api-group"),
    case("GET", "/other", ALICE, "allowed", "default", id="default-group"),
    case("GET", "/other", ANONYMOUS, "redirected", "default", nav=True, id="default-sign-in"),
]


def decide(policy: AccessPolicy, method: str, target: str, who: Principal | None, *,
           navigation: bool) -> tuple[Decision, str]:
    route = policy.route(method, parse_target(target))
    decision = judge(route, who, navigation=navigation,
                     redirectable=method.upper() in REDIRECTABLE)
    return decision, route.rule


class TestDecisions:
    @pytest.mark.parametrize("case", CASES)
    def test_the_first_matching_rule_decides(self, case: Case) -> None:
        """Each request gets the decision of the first rule matching its method and
        normalised path, judged on its principal; unmatched requests get the defaults."""
        decision, rule = decide(POLICY, case.method, case.target, case.who,
                                navigation=case.navigation)
        assert (decision.outcome, rule) == (case.outcome, case.rule)

    def test_a_partner_rule_names_its_identity_provider(self) -> None:
        """The route of an identity_provider rule carries it to the sign-in."""
        assert POLICY.route("GET", parse_target("/partner/x")).identity_provider == (
            "PartnerSAML")

    def test_anonymous_passes_without_identity(self) -> None:
        """An allowed anonymous request carries no principal: no identity headers."""
        decision, _ = decide(POLICY, "GET", "/members/x", BOB, navigation=False)
        assert decision.passes
        assert decision.principal is None

    @pytest.mark.parametrize(("who", "missing"), [
        pytest.param(BOB, ["groups"], id="group"),
        pytest.param(READER, ["groups", "principal"], id="group-and-kind"),
        pytest.param(ALICE, [], id="none"),
    ])
    def test_unmet_names_each_missing_requirement(self, who: Principal,
                                                  missing: list[str]) -> None:
        """What a principal misses is named requirement by requirement."""
        session_only = POLICY.route("GET", parse_target("/reports/x.pdf"))
        route = replace(session_only, groups=frozenset({"admins"}))
        assert unmet(route, who) == missing

    def test_without_a_trusted_target_nothing_is_public(self) -> None:
        """Forward-auth without an original URI gets the default signed-in route."""
        assert POLICY.route("GET", None).rule == "default"
        assert not POLICY.route("GET", None).public


def unsigned_token(claims: dict[str, Any]) -> str:
    """A JWT-shaped token with these claims (never sent anywhere, never verified)."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


@pytest.mark.parametrize(("token", "scopes"), [
    pytest.param(unsigned_token({"scope": "openid orders/read"}), {"openid", "orders/read"},
                 id="scopes"),
    pytest.param(unsigned_token({"scope": "a"}) + "x", {"a"}, id="signature-ignored"),
    pytest.param(unsigned_token({"sub": "x"}), set(), id="no-scope-claim"),
    pytest.param(unsigned_token({"scope": ["a"]}), set(), id="scope-not-text"),
    pytest.param("not-a-token", set(), id="opaque"),
    pytest.param("a.%%%.c", set(), id="bad-base64"),
    pytest.param(None, set(), id="no-token"),
])
def test_a_sessions_scopes_are_read_from_its_access_token(token: str | None,
                                                          scopes: set[str]) -> None:
    """A session's scopes come from the `scope` claim of the access token it holds; anything
    unreadable gives no scopes (a scope requirement then refuses)."""
    assert token_scopes(token) == scopes


class TestReadings:
    @pytest.mark.parametrize(("target", "alike"), [
        pytest.param("/api/orders/1;v=2", True, id="same-rule-either-way"),
        pytest.param("/admin;x/users", False, id="params-hide-the-admin-area"),
        pytest.param("/health;x", False, id="params-hide-a-public-path"),
    ])
    def test_both_readings_of_params_are_routed(self, target: str, alike: bool) -> None:
        """A target with `;params` has a second reading; when the two readings fall under
        different rules, the dispatcher refuses the request (400)."""
        readings = parse_target(target).readings
        assert len(readings) == 2
        routes = {POLICY.route("GET", reading) for reading in readings}
        assert (len(routes) == 1) == alike


SEGMENT = st.text(st.sampled_from("abcdeé-_.~!$&'()*+,=:@"), min_size=1, max_size=6)
HYPOTHESIS_RULES: list[dict[str, Any]] = [
    {"paths": ["/a/*"], "groups": ["g"]},
    {"paths": ["/b", "/b/*.~"], "action": "public"},
    {"paths": ["/é/*"], "action": "deny"},
    {"paths": ["/*"], "methods": ["DELETE"], "action": "deny"},
]
HYPOTHESIS_POLICY = policy_of(HYPOTHESIS_RULES, public_paths=["/c*"], api_paths=["/d/*"])


@st.composite
def equivalent_encodings(draw: st.DrawFn) -> tuple[str, str]:
    """A path, and another spelling of it: escapes of its characters, dot segments, doubled
    slashes; or a spelling that is refused."""
    segments = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "é", "x"]) | SEGMENT,
                             min_size=1, max_size=4))
    plain = "/" + "/".join(segments)
    spelled = []
    for segment in segments:
        chars = []
        for ch in segment:
            if draw(st.booleans()):
                hexes = "".join(f"%{b:02X}" for b in ch.encode())
                chars.append(hexes.lower() if draw(st.booleans()) else hexes)
            else:
                chars.append(ch)
        text = "".join(chars)
        detour = draw(st.sampled_from(["", "./", "zz/../", "/", "%2e/"]))
        spelled.append(detour + text)
    return plain, "/" + "/".join(spelled)


@settings(max_examples=300, deadline=None)
@given(equivalent_encodings(), st.sampled_from(["GET", "DELETE", "POST"]),
       st.sampled_from([None, ALICE, BOB, principal(groups=("g",))]))
def test_equivalent_encodings_get_the_same_decision(
        paths: tuple[str, str], method: str, who: Principal | None) -> None:
    """Every spelling of a path that is not refused (400) is decided exactly as the path."""
    plain, spelled = paths
    try:
        spelled_target = parse_target(spelled)
    except BadTarget:
        return
    plain_route = HYPOTHESIS_POLICY.route(method, parse_target(plain))
    spelled_route = HYPOTHESIS_POLICY.route(method, spelled_target)
    assert spelled_route == plain_route
    assert judge(spelled_route, who, navigation=True, redirectable=True) == judge(
        plain_route, who, navigation=True, redirectable=True)


def test_rules_loaded_from_json_match_those_from_toml() -> None:
    """GATEWAY_AUTH_RULES (a JSON array) gives the same rules as [[auth.rules]]."""
    from_toml, _ = load_rules(RULES, "auth.rules", from_env=False)
    from_env, problems = load_rules(json.dumps(RULES), "auth.rules", from_env=True)
    assert problems == []
    assert from_env == from_toml
    assert from_toml[3] == Rule(paths=("/api/orders/*",), methods=("POST", "PUT", "DELETE"),
                                scopes=("orders/write",), principal="bearer")
