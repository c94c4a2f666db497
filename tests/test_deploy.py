"""The deployment files agree with the code: ports, probe paths, variable names, secrets, config.

Every Kubernetes manifest, compose file and the Dockerfile is parsed and checked against
gateway/config.py (defaults, the GATEWAY_* names it reads), the routes the app really serves,
and against each other (Secret keys, Service target ports, the dev IdP's issuer and URLs).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import opentelemetry.sdk.environment_variables as otel_environment
import pytest
import yaml
from cryptography.fernet import Fernet
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from gateway.app import create_app, create_metrics_app
from gateway.cli import _parser as cli_parser
from gateway.config import SECTIONS, ServerSettings, Settings, load_settings
from gateway.demo.upstream import command_line as demo_command_line
from gateway.devidp import load_pool
from gateway.observability.metrics import Metrics
from gateway.routing import ROUTER
from tests.support.kustomize import (
    UnsupportedKustomization,
    apply_json6902,
    kustomization_files,
    render,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "kubernetes"
COMPOSE = REPO / "deploy" / "compose"
COMPOSE_FILES = sorted(COMPOSE.glob("docker-compose*.yml"))
DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ServerSettings)}
LISTEN_PORT = int(DEFAULTS["listen"].rpartition(":")[2])
METRICS_PORT = int(DEFAULTS["metrics_listen"].rpartition(":")[2])
SECRET_VALUES = {"GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
                 "GATEWAY_COGNITO_CLIENT_SECRET": "client-secret-for-tests"}


def known_env_names() -> set[str]:
    """Every GATEWAY_* variable the config reads: one per key, plus _FILE for secrets."""
    names = set()
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            name = f"GATEWAY_{section}_{f.name}".upper()
            names.add(name)
            if f.metadata["secret"]:
                names.add(name + "_FILE")
    return names


KNOWN_ENV = known_env_names()
# Every variable OpenTelemetry's SDK and exporters document (opentelemetry-sdk's constants).
OTEL_VARIABLES = {v for k, v in vars(otel_environment).items() if k.startswith("OTEL_")}


def port_of(listen: str) -> int:
    return int(listen.rpartition(":")[2])


# --- Kubernetes --------------------------------------------------------------------------------

# The Kubernetes release whose OpenAPI schemas (shipped by kubernetes-validate) every rendered
# manifest must satisfy: the oldest minor release still supported upstream, so the files apply
# to every supported cluster.
KUBERNETES_VERSION = "1.35.0"
VARIANTS = {"base": K8S, "redis": K8S / "overlays" / "redis", "otel": K8S / "overlays" / "otel"}
SECRET_VALUES["GATEWAY_SESSION_REDIS_URL"] = "redis://127.0.0.1:6379/0"
# ServiceMonitor is a Prometheus Operator CRD, absent from Kubernetes' own schemas: the fields
# this manifest uses, with their types from the operator's CRD (monitoring.coreos.com/v1).
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "additionalProperties": False, "properties": {
                    "matchLabels": {"type": "object",
                                    "additionalProperties": {"type": "string"}}}},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string"},
                        "interval": {"type": "string",
                                     "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?"
                                                r"(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
                                                r"(([0-9]+)ms)?)$"},
                        "scheme": {"enum": ["http", "https"]}}}},
            },
        },
    },
}


@dataclasses.dataclass(frozen=True)
class Rendered:
    """The resources of one kustomization as `kubectl apply -k` would send them."""

    name: str
    docs: list[dict[str, Any]]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.all(kind)
        assert len(found) == 1, f"{self.name}: expected one {kind}, found {len(found)}"
        return found[0]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = [d for d in self.all(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    @property
    def pod_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.one("Deployment")["spec"]["template"]["spec"]
        return spec

    @property
    def pod_labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.one("Deployment")["spec"]["template"]["metadata"]["labels"]
        return labels

    def container(self, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = [c for c in self.pod_spec["containers"]
                                       if c["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one container {name}"
        return found[0]

    @property
    def gateway(self) -> dict[str, Any]:
        found: list[dict[str, Any]] = [c for c in self.pod_spec["containers"]
                                       if c["image"].startswith("cognito-gateway")]
        assert len(found) == 1, f"{self.name}: expected one cognito-gateway container"
        return found[0]

    def secret_keys(self, name: str) -> set[str]:
        secret = self.named("Secret", name)
        return set(secret.get("stringData", {})) | set(secret.get("data", {}))

    def volume(self, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = [v for v in self.pod_spec["volumes"] if v["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one volume {name}"
        return found[0]

    def mounted_file(self, c: Mapping[str, Any], path: str) -> tuple[dict[str, Any], str]:
        """The volume a file path in container `c` lies in, and its path inside that volume."""
        for mount in c.get("volumeMounts", []):
            root = PurePosixPath(mount["mountPath"])
            if PurePosixPath(path).is_relative_to(root):
                return self.volume(mount["name"]), str(PurePosixPath(path).relative_to(root))
        pytest.fail(f"{path} is on no volume of container {c['name']}")

    def settings(self, tmp_path: Path) -> Settings:
        """The ConfigMap's TOML loaded as the gateway container would, secrets from tmp files."""
        c = self.gateway
        vol, inner = self.mounted_file(c, config_path(c["args"]))
        toml = tmp_path / "gateway.toml"
        configmap = self.named("ConfigMap", vol["configMap"]["name"])
        toml.write_text(configmap["data"][volume_key(vol, inner)], encoding="utf-8")
        environ = {}
        for var in gateway_env(c):
            name = var["name"]
            if "valueFrom" in var:
                environ[name] = SECRET_VALUES[name]
            elif name.endswith("_FILE"):
                secret_file = tmp_path / name
                secret_file.write_text(SECRET_VALUES[name.removesuffix("_FILE")] + "\n",
                                       encoding="utf-8")
                environ[name] = str(secret_file)
            else:
                environ[name] = var["value"]
        return load_settings(toml, environ=environ)


def gateway_env(c: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The container's GATEWAY_* variables (the ones the gateway's config reads)."""
    return [v for v in c.get("env", []) if v["name"].startswith("GATEWAY_")]


RENDERED = {name: Rendered(name, render(path)) for name, path in VARIANTS.items()}
BASE = RENDERED["base"]


def container_ports(c: Mapping[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c["ports"]}


def resolve_port(c: Mapping[str, Any], port: int | str) -> int:
    return container_ports(c)[port] if isinstance(port, str) else port


def volume_key(vol: Mapping[str, Any], inner: str) -> str:
    """The ConfigMap/Secret key that a volume projects to `inner` (items or key = file name)."""
    source = vol.get("secret") or vol.get("configMap")
    assert source is not None, f"volume {vol['name']} is not a Secret or ConfigMap"
    items: dict[str, str] = {i["path"]: i["key"] for i in source.get("items", [])}
    if items:
        assert inner in items, f"{inner} is not projected by volume {vol['name']}"
        return items[inner]
    return inner


def config_path(args: list[str]) -> str:
    return args[args.index("--config") + 1]


@pytest.fixture(params=sorted(RENDERED), ids=sorted(RENDERED))
def k8s(request: pytest.FixtureRequest) -> Rendered:
    """Each kustomization (the base and every overlay), rendered."""
    rendered: Rendered = RENDERED[request.param]
    return rendered


@pytest.fixture
def served_paths(tmp_path: Path) -> tuple[set[str], set[str]]:
    """GET paths the gateway app routes itself (not the catch-all proxy), and the metrics app's."""
    app = create_app(BASE.settings(tmp_path))
    own = {path for path, endpoint in app[ROUTER].paths.items() if "GET" in endpoint.methods}
    metrics = {r.canonical for r in create_metrics_app(Metrics()).router.resources()}
    return own, metrics


@pytest.mark.parametrize("path", sorted(VARIANTS.values()), ids=sorted(VARIANTS))
def test_each_kustomization_uses_exactly_the_files_beside_it(path: Path) -> None:
    """Every YAML file is a resource or patch of its kustomization, and every one exists."""
    present = {p.name for p in path.glob("*.yaml")} - {"kustomization.yaml"}
    assert kustomization_files(path) == present


def test_every_overlay_directory_is_rendered_by_the_tests() -> None:
    """A new overlay cannot escape the checks below: each one is in VARIANTS."""
    overlays = {p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml")}
    assert overlays == set(VARIANTS.values()) - {K8S}


class TestKubernetes:
    def test_every_resource_satisfies_the_kubernetes_schemas(self, k8s: Rendered) -> None:
        """Each rendered resource validates, strictly, against the pinned release's schemas."""
        for doc in k8s.docs:
            where = f"{k8s.name}: {doc['kind']} {doc['metadata']['name']}"
            try:
                if doc["kind"] == "ServiceMonitor":
                    jsonschema.validate(doc, SERVICE_MONITOR_SCHEMA)
                else:
                    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{where}: {exc.message}")

    def test_the_schema_check_refuses_a_misspelt_field(self) -> None:
        """The validator really is strict: an unknown field in a pod spec fails."""
        broken = json.loads(json.dumps(BASE.one("Deployment")))
        broken["spec"]["template"]["spec"]["containers"][1]["envFrom"] = [{"secretRef": "x"}]
        broken["spec"]["template"]["spec"]["serviceLinks"] = False
        with pytest.raises(jsonschema.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)

    def test_the_configmap_toml_loads_without_problems(self, k8s: Rendered,
                                                       tmp_path: Path) -> None:
        """gateway.toml plus the container's env and secrets is a valid configuration."""
        settings = k8s.settings(tmp_path)
        assert settings.session.secret == [SECRET_VALUES["GATEWAY_SESSION_SECRET"]]
        assert settings.cognito.client_secret == SECRET_VALUES["GATEWAY_COGNITO_CLIENT_SECRET"]

    def test_container_ports_are_the_default_listen_and_metrics_ports(
            self, k8s: Rendered, tmp_path: Path) -> None:
        """The gateway's containerPorts equal config defaults and the ConfigMap's listeners."""
        settings = k8s.settings(tmp_path)
        assert container_ports(k8s.gateway) == {"http": LISTEN_PORT, "metrics": METRICS_PORT}
        assert port_of(settings.server.listen) == LISTEN_PORT
        assert port_of(settings.server.metrics_listen) == METRICS_PORT

    def test_the_upstream_is_the_app_container_in_the_pod(self, k8s: Rendered,
                                                          tmp_path: Path) -> None:
        """upstream.url points at 127.0.0.1 on the app container's port."""
        app_port = container_ports(k8s.container("app"))["app"]
        assert k8s.settings(tmp_path).upstream.url == f"http://127.0.0.1:{app_port}"

    @pytest.mark.parametrize(("probe", "path"), [("livenessProbe", "/ping"),
                                                 ("readinessProbe", "/ready")])
    def test_probes_hit_routes_the_gateway_serves(
            self, k8s: Rendered, served_paths: tuple[set[str], set[str]], probe: str,
            path: str) -> None:
        """Liveness is /ping and readiness /ready, on the proxy port; the app routes both."""
        get = k8s.gateway[probe]["httpGet"]
        assert get["path"] == path
        assert get["path"] in served_paths[0]
        assert resolve_port(k8s.gateway, get["port"]) == LISTEN_PORT

    def test_every_gateway_variable_is_one_the_config_reads(self, k8s: Rendered) -> None:
        """No GATEWAY_* name in any container is unknown to gateway.config (they would fail)."""
        names = {v["name"] for c in k8s.pod_spec["containers"] for v in c.get("env", [])}
        assert {n for n in names if n.startswith("GATEWAY_")} <= KNOWN_ENV

    def test_every_other_variable_is_one_a_library_of_the_image_reads(
            self, k8s: Rendered) -> None:
        """Non-GATEWAY_ names on the gateway are OpenTelemetry's, or inputs of $(VAR) refs."""
        env = k8s.gateway.get("env", [])
        referenced = {m for v in env for m in re.findall(r"\$\((\w+)\)", v.get("value", ""))}
        others = {v["name"] for v in env if not v["name"].startswith("GATEWAY_")}
        assert others - referenced <= OTEL_VARIABLES

    def test_variable_references_name_variables_defined_before(self, k8s: Rendered) -> None:
        """Kubernetes expands $(NAME) only from variables earlier in the list."""
        defined: set[str] = set()
        for var in k8s.gateway.get("env", []):
            for ref in re.findall(r"\$\((\w+)\)", var.get("value", "")):
                assert ref in defined, f"{var['name']} refers to {ref} before it is defined"
            defined.add(var["name"])

    def test_secret_key_refs_name_keys_of_a_secret(self, k8s: Rendered) -> None:
        """Each secretKeyRef names a Secret of the same kustomization and one of its keys."""
        refs = [v["valueFrom"]["secretKeyRef"] for c in k8s.pod_spec["containers"]
                for v in c.get("env", []) if "secretKeyRef" in v.get("valueFrom", {})]
        assert refs
        for ref in refs:
            assert ref["key"] in k8s.secret_keys(ref["name"])

    def test_secret_volumes_project_keys_of_a_secret(self, k8s: Rendered) -> None:
        """Each Secret volume names a Secret of the same kustomization and only keys it has."""
        volumes = [v["secret"] for v in k8s.pod_spec["volumes"] if "secret" in v]
        assert volumes
        for vol in volumes:
            keys = {i["key"] for i in vol.get("items", [])}
            assert keys <= k8s.secret_keys(vol["secretName"])

    def test_file_variables_point_into_a_mounted_secret(self, k8s: Rendered) -> None:
        """A *_FILE variable names a file that a Secret volume really provides."""
        files = [v for v in gateway_env(k8s.gateway) if v["name"].endswith("_FILE")]
        assert files
        for var in files:
            vol, inner = k8s.mounted_file(k8s.gateway, var["value"])
            assert volume_key(vol, inner) in k8s.secret_keys(vol["secret"]["secretName"])

    def test_the_config_argument_is_a_file_of_the_configmap(self, k8s: Rendered) -> None:
        """`run --config PATH` names a file projected from the ConfigMap's data."""
        c = k8s.gateway
        assert c["args"][0] == "run"
        vol, inner = k8s.mounted_file(c, config_path(c["args"]))
        assert volume_key(vol, inner) in k8s.named("ConfigMap", vol["configMap"]["name"])["data"]

    def test_the_service_targets_the_gateway_ports_only(self, k8s: Rendered) -> None:
        """The Service's http port targets the proxy port and nothing reaches the app directly."""
        service = k8s.one("Service")
        targets = {p["name"]: resolve_port(k8s.gateway, p["targetPort"])
                   for p in service["spec"]["ports"]}
        assert targets == {"http": LISTEN_PORT, "metrics": METRICS_PORT}
        assert service["spec"]["selector"].items() <= k8s.pod_labels.items()

    def test_metrics_are_scraped_where_they_are_served(
            self, k8s: Rendered, served_paths: tuple[set[str], set[str]]) -> None:
        """Scrape annotations and the ServiceMonitor name the metrics port and /metrics."""
        annotations = k8s.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == METRICS_PORT
        assert annotations["prometheus.io/path"] in served_paths[1]
        monitor = k8s.one("ServiceMonitor")
        service = k8s.one("Service")
        assert monitor["spec"]["selector"]["matchLabels"].items() <= (
            service["metadata"]["labels"].items())
        service_ports = {p["name"]: p for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            target = service_ports[endpoint["port"]]["targetPort"]
            assert resolve_port(k8s.gateway, target) == METRICS_PORT
            assert endpoint["path"] in served_paths[1]

    def test_the_network_policy_admits_only_the_gateway_ports(self, k8s: Rendered) -> None:
        """Ingress to the pod is limited to the gateway's ports, so the app is not reachable."""
        policy = k8s.one("NetworkPolicy")
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= k8s.pod_labels.items()
        ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert ports == {LISTEN_PORT, METRICS_PORT}

    @pytest.mark.parametrize("name", ["app", "gateway"])
    def test_containers_are_locked_down_with_resources(self, k8s: Rendered, name: str) -> None:
        """Non-root, read-only root filesystem, no capabilities, no escalation, resources set."""
        c = k8s.container(name)
        security = c["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["requests"]
        assert c["resources"]["limits"]["memory"]
        assert k8s.pod_spec["securityContext"]["runAsNonRoot"] is True

    def test_the_gateway_memory_fits_the_measured_footprint(self, k8s: Rendered) -> None:
        """Request above the measured 66 MiB peak RSS, limit at least twice it (see the comment)."""
        resources = k8s.gateway["resources"]
        assert mebibytes(resources["requests"]["memory"]) > 66
        assert mebibytes(resources["limits"]["memory"]) >= 2 * 66

    def test_the_gateway_gets_a_writable_tmp_only(self, k8s: Rendered) -> None:
        """/tmp is an emptyDir; every other mount is read-only."""
        mounts = {m["mountPath"]: m for m in k8s.gateway["volumeMounts"]}
        assert "emptyDir" in k8s.volume(mounts["/tmp"]["name"])
        assert all(m.get("readOnly") for path, m in mounts.items() if path != "/tmp")

    def test_the_grace_period_covers_the_pre_stop_pause_and_the_drain(
            self, k8s: Rendered, tmp_path: Path) -> None:
        """terminationGracePeriodSeconds exceeds preStop sleep + server.shutdown_timeout_seconds."""
        settings = k8s.settings(tmp_path)
        command = k8s.gateway["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep"
        assert k8s.pod_spec["terminationGracePeriodSeconds"] > (
            float(command[1]) + settings.server.shutdown_timeout_seconds)

    def test_service_links_are_off(self, k8s: Rendered) -> None:
        """Kubernetes service-link variables could collide with GATEWAY_<SECTION>_* names."""
        assert k8s.pod_spec["enableServiceLinks"] is False


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity (Mi, Gi or bytes) in MiB."""
    units = {"Mi": 1.0, "Gi": 1024.0}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    return float(quantity) / 2**20


class TestRedisOverlay:
    rendered = RENDERED["redis"]

    def test_sessions_live_in_redis_at_the_secret_url(self, tmp_path: Path) -> None:
        """store = redis, and redis_url comes from the mounted Secret file."""
        settings = self.rendered.settings(tmp_path)
        assert settings.session.store == "redis"
        assert settings.session.redis_url == SECRET_VALUES["GATEWAY_SESSION_REDIS_URL"]
        names = {v["name"] for v in gateway_env(self.rendered.gateway)}
        assert "GATEWAY_SESSION_REDIS_URL" not in names  # never in the environment

    def test_two_replicas_with_a_budget_that_lets_a_drain_proceed(self) -> None:
        """Two or more replicas; the PDB keeps one up and still allows one eviction."""
        replicas = self.rendered.one("Deployment")["spec"]["replicas"]
        budget = self.rendered.one("PodDisruptionBudget")["spec"]
        assert replicas >= 2
        assert 1 <= budget["minAvailable"] < replicas
        assert budget["selector"]["matchLabels"].items() <= self.rendered.pod_labels.items()

    @pytest.mark.parametrize("key", ["topology.kubernetes.io/zone", "kubernetes.io/hostname"])
    def test_replicas_spread_over_zones_and_nodes(self, key: str) -> None:
        """A spread constraint per topology key, selecting this Deployment's own pods."""
        constraints = {c["topologyKey"]: c for c in
                       self.rendered.pod_spec["topologySpreadConstraints"]}
        selector = constraints[key]["labelSelector"]["matchLabels"]
        assert constraints[key]["maxSkew"] == 1
        assert selector.items() <= self.rendered.pod_labels.items()

    def test_the_base_stays_on_the_cookie_store(self, tmp_path: Path) -> None:
        """The overlay changed only its own output: the base still needs no Redis."""
        assert BASE.settings(tmp_path).session.store == "cookie"


class TestOtelOverlay:
    rendered = RENDERED["otel"]

    def variables(self) -> dict[str, str]:
        """The gateway's plain variables with $(VAR) expanded as the kubelet does."""
        pod = {"POD_NAME": "myapp-0", "POD_NAMESPACE": "shop"}
        env: dict[str, str] = {}
        for var in self.rendered.gateway["env"]:
            if var["name"] in pod:
                env[var["name"]] = pod[var["name"]]
            elif "value" in var:
                env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)],
                                          var["value"])
        return env

    def test_the_sdk_configured_by_the_manifest_samples_and_names_as_intended(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OpenTelemetry's SDK reads the variables: 10% parent-based sampling, the resource."""
        for name, value in self.variables().items():
            if name.startswith("OTEL_"):
                monkeypatch.setenv(name, value)
        sampler = TracerProvider().sampler.get_description()
        resource = Resource.create().attributes
        assert sampler.startswith("ParentBased{root:TraceIdRatioBased{0.1}")
        assert resource["service.name"] == "myapp-gateway"
        assert resource["k8s.pod.name"] == "myapp-0"
        assert resource["k8s.namespace.name"] == "shop"

    def test_the_exporter_endpoint_is_an_otlp_http_url(self) -> None:
        """OTLP/HTTP, as the `otel` extra's exporter speaks, to a collector's port 4318."""
        env = self.variables()
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        assert re.fullmatch(r"https?://[\w.-]+:4318", env["OTEL_EXPORTER_OTLP_ENDPOINT"])

    def test_the_gateway_runs_the_image_built_with_the_otel_extra(self) -> None:
        """The images transformer retags only the gateway; the build command is documented."""
        assert self.rendered.gateway["image"] == "cognito-gateway:0.1.0-otel"
        assert self.rendered.container("app")["image"] == BASE.container("app")["image"]
        kustomization = (VARIANTS["otel"] / "kustomization.yaml").read_text(encoding="utf-8")
        assert "-t cognito-gateway:0.1.0-otel ." in kustomization


class TestKustomizeRenderer:
    @pytest.mark.parametrize(("operations", "expected"), [
        pytest.param([{"op": "add", "path": "/a/-", "value": 3}], {"a": [1, 2, 3]}, id="append"),
        pytest.param([{"op": "add", "path": "/a/0", "value": 0}], {"a": [0, 1, 2]}, id="insert"),
        pytest.param([{"op": "replace", "path": "/a/1", "value": 9}], {"a": [1, 9]}, id="replace"),
        pytest.param([{"op": "remove", "path": "/a/0"}], {"a": [2]}, id="remove"),
        pytest.param([{"op": "add", "path": "/b~1c", "value": 1}], {"a": [1, 2], "b/c": 1},
                     id="escaped-slash"),
    ])
    def test_json6902_operations(self, operations: list[dict[str, Any]],
                                 expected: dict[str, Any]) -> None:
        """RFC 6902 add/replace/remove on lists and members, with ~1 escapes."""
        assert apply_json6902({"a": [1, 2]}, operations) == expected

    @pytest.mark.parametrize("operations", [
        pytest.param([{"op": "replace", "path": "/missing", "value": 1}], id="replace-absent"),
        pytest.param([{"op": "add", "path": "/a/5", "value": 1}], id="index-past-end"),
        pytest.param([{"op": "test", "path": "/a/0", "value": 7}], id="failed-test"),
    ])
    def test_json6902_errors_raise(self, operations: list[dict[str, Any]]) -> None:
        """An operation kustomize would refuse fails the render instead of being skipped."""
        with pytest.raises((KeyError, IndexError, ValueError)):
            apply_json6902({"a": [1, 2]}, operations)

    def test_unsupported_features_are_refused(self, tmp_path: Path) -> None:
        """A kustomization key the renderer does not reproduce fails loudly."""
        (tmp_path / "kustomization.yaml").write_text("namespace: shop\nresources: []\n",
                                                     encoding="utf-8")
        with pytest.raises(UnsupportedKustomization, match="namespace"):
            render(tmp_path)


# --- Dockerfile --------------------------------------------------------------------------------

def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            yield word.upper(), rest.strip()


class TestDockerfile:
    def test_it_exposes_the_default_listen_and_metrics_ports(self) -> None:
        """EXPOSE lists exactly the proxy and metrics ports of the config defaults."""
        exposed = {int(p) for word, rest in dockerfile_instructions() if word == "EXPOSE"
                   for p in rest.split()}
        assert exposed == {LISTEN_PORT, METRICS_PORT}

    def test_it_runs_as_the_non_root_user_the_pod_expects(self) -> None:
        """USER is numeric and non-zero, and matches the pod's runAsUser."""
        (user,) = [rest for word, rest in dockerfile_instructions() if word == "USER"]
        uid, _, gid = user.partition(":")
        assert int(uid) > 0
        assert int(uid) == BASE.pod_spec["securityContext"]["runAsUser"]
        assert int(gid) == BASE.pod_spec["securityContext"]["runAsGroup"]

    async def test_its_healthcheck_probes_a_route_the_gateway_serves(
            self, served_paths: tuple[set[str], set[str]]) -> None:
        """The HEALTHCHECK fetches /ping on the proxy port."""
        (check,) = [rest for word, rest in dockerfile_instructions() if word == "HEALTHCHECK"]
        command = json.loads(check[check.index("CMD") + 3:])
        assert command[:2] == ["python", "-c"]
        assert "/ping" in command[2]
        assert "/ping" in served_paths[0]
        assert f"':{LISTEN_PORT}'" in command[2]

    def test_it_starts_the_console_script_with_run(self) -> None:
        """ENTRYPOINT is the cognito-gateway script and the default command is `run`."""
        instructions = dict(dockerfile_instructions())
        assert json.loads(instructions["ENTRYPOINT"]) == ["cognito-gateway"]
        assert json.loads(instructions["CMD"]) == ["run"]


# --- docker compose ----------------------------------------------------------------------------

INTERPOLATION = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in (COMPOSE / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}; an unset :? variable fails."""
    def substitute(match: re.Match[str]) -> str:
        name, kind, arg = match.groups()
        if variables.get(name):
            return variables[name]
        if kind == "?":
            pytest.fail(f"${{{name}}} is required: {arg}")
        return arg or ""

    return INTERPOLATION.sub(substitute, value)


def compose(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def compose_gateway(path: Path) -> dict[str, Any]:
    service: dict[str, Any] = compose(path)["services"]["gateway"]
    return service


def compose_env(service: Mapping[str, Any], variables: Mapping[str, str]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {k: interpolate(str(v), variables) for k, v in environment.items()}


def published(service: Mapping[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    ports = {}
    for spec in service.get("ports", []):
        host, _, inner = str(spec).rpartition(":")
        ports[int(inner)] = int(host)
    return ports


def healthcheck_url(service: Mapping[str, Any]) -> str:
    """The one URL a python-urllib healthcheck fetches."""
    urls = re.findall(r"urlopen\('([^']+)'", service["healthcheck"]["test"][-1])
    assert len(urls) == 1, service["healthcheck"]
    url: str = urls[0]
    return url


def service_port(service: Mapping[str, Any]) -> int:
    """The port a service's command listens on (its --port argument)."""
    command = service["command"]
    return int(command[command.index("--port") + 1])


def duration_seconds(value: str) -> float:
    """A compose duration such as 5s or 1m30s."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", value)
    assert value, "empty duration"
    assert parts is not None, value
    return sum(int(n) * units[u] for n, u in zip(parts.groups(), "hms", strict=True) if n)


def settings_variables() -> dict[str, str]:
    """.env.example filled in the way its comments ask."""
    return env_example() | {"SESSION_SECRET": SECRET_VALUES["GATEWAY_SESSION_SECRET"]}


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=[p.name for p in COMPOSE_FILES])
class TestCompose:
    def test_every_gateway_variable_is_one_the_config_reads(self, path: Path) -> None:
        """No GATEWAY_* name in the compose file is unknown to gateway.config."""
        for service in compose(path)["services"].values():
            names = set(compose_env(service, settings_variables()))
            assert {n for n in names if n.startswith("GATEWAY_")} <= KNOWN_ENV

    def test_the_gateway_environment_loads_without_problems(self, path: Path) -> None:
        """The gateway service's variables, interpolated from .env.example, are a valid config."""
        settings = load_settings(None, environ=compose_env(compose_gateway(path),
                                                           settings_variables()))
        assert settings.server.public_url

    def test_the_gateway_publishes_the_listen_and_metrics_ports(self, path: Path) -> None:
        """The container side of the published ports is the configured listeners' ports."""
        settings = load_settings(None, environ=compose_env(compose_gateway(path),
                                                           settings_variables()))
        ports = published(compose_gateway(path))
        assert set(ports) == {port_of(settings.server.listen),
                              port_of(settings.server.metrics_listen)}
        assert f":{ports[LISTEN_PORT]}" in settings.server.public_url

    def test_the_upstream_is_the_app_service(self, path: Path) -> None:
        """upstream.url names the app service on the port its command listens on."""
        services = compose(path)["services"]
        app_command = services["app"]["command"]
        app_port = app_command[app_command.index("--port") + 1]
        env = compose_env(services["gateway"], settings_variables())
        assert env["GATEWAY_UPSTREAM_URL"] == f"http://app:{app_port}"
        assert "ports" not in services["app"]

    def test_the_gateway_runs_read_only_with_a_tmpfs(self, path: Path) -> None:
        """read_only root filesystem, /tmp as tmpfs, no capabilities, a grace period > drain."""
        gateway = compose_gateway(path)
        assert gateway["read_only"] is True
        assert gateway["tmpfs"] == ["/tmp"]
        assert gateway["cap_drop"] == ["ALL"]
        grace = int(gateway["stop_grace_period"].removesuffix("s"))
        assert grace > float(DEFAULTS["shutdown_timeout_seconds"])

    def test_every_service_has_an_exec_form_healthcheck(self, path: Path) -> None:
        """Each service declares a healthcheck: exec form, with interval, timeout and retries."""
        for name, service in compose(path)["services"].items():
            check = service.get("healthcheck")
            assert check is not None, f"{name} has no healthcheck"
            assert check["test"][0] == "CMD", name
            assert {"interval", "timeout", "retries"} <= set(check), name
            assert duration_seconds(check["timeout"]) < duration_seconds(check["interval"])

    def test_each_healthcheck_asks_a_port_its_service_listens_on(
            self, path: Path, served_paths: tuple[set[str], set[str]]) -> None:
        """The URL a healthcheck fetches is the service's own port (and a route it serves)."""
        services = compose(path)["services"]
        settings = load_settings(None, environ=compose_env(compose_gateway(path),
                                                           settings_variables()))
        for name, service in services.items():
            url = urlsplit(healthcheck_url(service))
            if name == "gateway":
                assert (url.hostname, url.port) == ("127.0.0.1",
                                                    port_of(settings.server.listen))
                assert url.path == "/ready"
                assert url.path in served_paths[0]
            else:
                assert url.port == service_port(service), name

    def test_the_gateway_waits_for_healthy_dependencies(self, path: Path) -> None:
        """Every service the gateway depends on must be healthy first, and has a healthcheck."""
        services = compose(path)["services"]
        depends = compose_gateway(path)["depends_on"]
        assert set(depends) == set(services) - {"gateway"}
        for name, condition in depends.items():
            assert condition == {"condition": "service_healthy"}, name
            assert "healthcheck" in services[name]

    def test_the_demo_app_verifies_against_the_gateways_key_endpoint(self, path: Path) -> None:
        """The app runs the demo upstream with the gateway's /oauth2/public-keys URL."""
        app = compose(path)["services"]["app"]
        assert app["entrypoint"] == ["python", "-m", "gateway.demo.upstream"]
        args = demo_command_line().parse_args(app["command"])
        keys = urlsplit(args.public_keys_url)
        assert (keys.hostname, keys.port, keys.path) == ("gateway", LISTEN_PORT,
                                                         "/oauth2/public-keys")
        assert args.host == "0.0.0.0"  # noqa: S104 - inside its container, for the gateway
        env = compose_env(compose_gateway(path), settings_variables())
        assert "alb" in env["GATEWAY_HEADERS_SETS"].split(",")

    def test_the_build_context_holds_the_dockerfile(self, path: Path) -> None:
        """Services that build the image point at the repository root."""
        for service in compose(path)["services"].values():
            if "build" in service:
                assert (path.parent / service["build"]["context"] / "Dockerfile").is_file()


class TestComposeDevIdp:
    path = COMPOSE / "docker-compose.dev-idp.yml"

    def idp_args(self) -> Any:
        command = compose(self.path)["services"]["dev-idp"]["command"]
        return cli_parser().parse_args(command)

    def test_the_dev_idp_command_is_a_valid_cognito_gateway_command(self) -> None:
        """`dev-idp --host --port --config` parses with the real command-line parser."""
        args = self.idp_args()
        assert args.command == "dev-idp"
        assert published(compose(self.path)["services"]["dev-idp"]) == {args.port: args.port}

    def test_the_gateway_issuer_and_domain_are_the_dev_idp_urls(self) -> None:
        """GATEWAY_COGNITO_ISSUER is http://<host>:<port>/<pool id>, as the dev IdP builds it."""
        args = self.idp_args()
        service = compose(self.path)["services"]["dev-idp"]
        pool = load_pool(self.pool_file())
        env = compose_env(compose_gateway(self.path), {})
        assert env["GATEWAY_COGNITO_DOMAIN"] == f"http://{args.host}:{args.port}"
        assert env["GATEWAY_COGNITO_ISSUER"] == f"http://{args.host}:{args.port}/{pool.pool_id}"
        assert args.host in service["networks"]["default"]["aliases"]
        assert service["hostname"] == args.host
        assert args.host.endswith(".localhost")

    def test_the_pool_registers_the_gateway_client_and_its_urls(self) -> None:
        """The pool's client matches the gateway's id and secret, callback and sign-out URL."""
        pool = load_pool(self.pool_file())
        env = compose_env(compose_gateway(self.path), {})
        settings = load_settings(None, environ=env)
        (client,) = [c for c in pool.clients if c.client_id == settings.cognito.client_id]
        assert client.client_secret == settings.cognito.client_secret
        assert settings.redirect_uri in client.callback_urls
        assert settings.logout_uri in client.logout_urls
        assert set(settings.cognito.scopes) <= set(client.allowed_scopes)

    def test_the_healthcheck_fetches_the_discovery_document(self) -> None:
        """The dev-idp healthcheck asks the issuer's discovery URL the gateway will use."""
        test = compose(self.path)["services"]["dev-idp"]["healthcheck"]["test"]
        issuer = compose_env(compose_gateway(self.path), {})["GATEWAY_COGNITO_ISSUER"]
        assert f"'{issuer}/.well-known/openid-configuration'" in test[-1]
        depends = compose_gateway(self.path)["depends_on"]
        assert depends["dev-idp"]["condition"] == "service_healthy"

    def test_the_stand_in_has_its_own_host_so_its_cookies_stay_apart(self) -> None:
        """Browser cookies are per host: the IdP's host is neither the app's nor a parent of it."""
        env = compose_env(compose_gateway(self.path), settings_variables())
        app_host = urlsplit(env["GATEWAY_SERVER_PUBLIC_URL"]).hostname
        idp_host = urlsplit(env["GATEWAY_COGNITO_DOMAIN"]).hostname
        assert app_host is not None
        assert idp_host is not None
        assert app_host != idp_host
        assert not app_host.endswith("." + idp_host)
        assert urlsplit(env["GATEWAY_COGNITO_ISSUER"]).hostname == idp_host

    def test_the_pool_offers_what_the_compose_comments_promise(self) -> None:
        """The demo user, and PartnerSAML with its user, are in the mounted pool file."""
        pool = load_pool(self.pool_file())
        text = self.path.read_text(encoding="utf-8")
        demo = pool.user("demo")
        assert demo is not None
        assert f"demo / {demo.password}" in text
        provider = pool.provider("PartnerSAML")
        assert provider is not None
        (carol,) = provider.users
        assert f"{carol.user_id} / {carol.password}" in text
        (client,) = pool.clients
        assert client.supported_identity_providers == ["COGNITO", "PartnerSAML"]

    def pool_file(self) -> Path:
        """The host file mounted where --config points."""
        args = self.idp_args()
        for spec in compose(self.path)["services"]["dev-idp"]["volumes"]:
            source, target, *_ = spec.split(":")
            if target == str(args.config):
                return Path(self.path.parent, source)
        pytest.fail(f"{args.config} is not mounted into the dev-idp service")


def test_env_example_defines_every_variable_the_compose_files_interpolate() -> None:
    """Each ${VAR} in docker-compose.yml has a line in .env.example."""
    text = (COMPOSE / "docker-compose.yml").read_text(encoding="utf-8")
    used = {m.group(1) for m in INTERPOLATION.finditer(text)}
    assert used <= set(env_example())


def test_compose_commands_are_exec_form_lists() -> None:
    """Compose commands are lists, so no shell re-splits their arguments."""
    for path in COMPOSE_FILES:
        for name, service in compose(path)["services"].items():
            assert isinstance(service.get("command", []), list), f"{path.name}: {name}"


def test_known_env_names_cover_secret_file_forms() -> None:
    """The derived name set includes the _FILE form of each secret and of nothing else."""
    assert "GATEWAY_SESSION_SECRET_FILE" in KNOWN_ENV
    assert "GATEWAY_COGNITO_CLIENT_SECRET_FILE" in KNOWN_ENV
    assert "GATEWAY_COGNITO_CLIENT_ID_FILE" not in KNOWN_ENV
