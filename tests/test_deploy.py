"""The deployment files agree with the code: ports, probe paths, variable names, secrets, config.

Every Kubernetes manifest, compose file and the Dockerfile is parsed and checked against
gateway/config.py (defaults, the GATEWAY_* names it reads), the routes the app really serves,
and against each other (Secret keys, Service target ports, the dev IdP's issuer and URLs).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from gateway.app import create_app, create_metrics_app, own_endpoints
from gateway.cli import _parser as cli_parser
from gateway.config import SECTIONS, ServerSettings, Settings, load_settings
from gateway.devidp import load_pool
from gateway.keys import CONTEXT
from gateway.observability.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "kubernetes"
COMPOSE = REPO / "deploy" / "compose"
COMPOSE_FILES = sorted(COMPOSE.glob("docker-compose*.yml"))
DEFAULTS = {f.name: f.default for f in dataclasses.fields(ServerSettings)}
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


def port_of(listen: str) -> int:
    return int(listen.rpartition(":")[2])


# --- Kubernetes --------------------------------------------------------------------------------

def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def one(kind: str) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]
    return spec


def container(name: str) -> dict[str, Any]:
    (found,) = [c for c in pod_spec()["containers"] if c["name"] == name]
    return found


def gateway_container() -> dict[str, Any]:
    (found,) = [c for c in pod_spec()["containers"] if c["image"].startswith("cognito-gateway")]
    return found


def container_ports(c: Mapping[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c["ports"]}


def resolve_port(c: Mapping[str, Any], port: int | str) -> int:
    return container_ports(c)[port] if isinstance(port, str) else port


def secret_keys() -> set[str]:
    secret = one("Secret")
    return set(secret.get("stringData", {})) | set(secret.get("data", {}))


def volume(name: str) -> dict[str, Any]:
    (found,) = [v for v in pod_spec()["volumes"] if v["name"] == name]
    return found


def mounted_file(c: Mapping[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The volume a file path in container `c` lies in, and its path inside that volume."""
    for mount in c.get("volumeMounts", []):
        root = PurePosixPath(mount["mountPath"])
        if PurePosixPath(path).is_relative_to(root):
            return volume(mount["name"]), str(PurePosixPath(path).relative_to(root))
    pytest.fail(f"{path} is on no volume of container {c['name']}")


def volume_key(vol: Mapping[str, Any], inner: str) -> str:
    """The ConfigMap/Secret key that a volume projects to `inner` (items or key = file name)."""
    source = vol.get("secret") or vol.get("configMap")
    assert source is not None, f"volume {vol['name']} is not a Secret or ConfigMap"
    items = {i["path"]: i["key"] for i in source.get("items", [])}
    if items:
        assert inner in items, f"{inner} is not projected by volume {vol['name']}"
        return items[inner]
    return inner


def config_path(args: list[str]) -> str:
    return args[args.index("--config") + 1]


def k8s_settings(tmp_path: Path) -> Settings:
    """Load the ConfigMap's TOML the way the gateway container would, secrets from tmp files."""
    c = gateway_container()
    vol, inner = mounted_file(c, config_path(c["args"]))
    toml = tmp_path / "gateway.toml"
    toml.write_text(one("ConfigMap")["data"][volume_key(vol, inner)], encoding="utf-8")
    environ = {}
    for var in c.get("env", []):
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


@pytest.fixture
async def served_paths(tmp_path: Path) -> AsyncIterator[tuple[set[str], set[str]]]:
    """GET paths the gateway app routes itself (not the catch-all proxy), and the metrics app's."""
    app = create_app(k8s_settings(tmp_path))
    try:
        own = {path for path, endpoint in own_endpoints().items() if "GET" in endpoint.methods}
        metrics = {r.canonical for r in create_metrics_app(Metrics()).router.resources()}
        yield own, metrics
    finally:
        await app[CONTEXT].close()


class TestKubernetes:
    def test_kustomization_lists_exactly_the_manifests_present(self) -> None:
        """Every manifest file is a kustomize resource and every resource exists."""
        kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
        present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
        assert set(kustomization["resources"]) == present

    def test_the_configmap_toml_loads_without_problems(self, tmp_path: Path) -> None:
        """gateway.toml plus the container's env and secrets is a valid configuration."""
        settings = k8s_settings(tmp_path)
        assert settings.session.secret == [SECRET_VALUES["GATEWAY_SESSION_SECRET"]]
        assert settings.cognito.client_secret == SECRET_VALUES["GATEWAY_COGNITO_CLIENT_SECRET"]

    def test_container_ports_are_the_default_listen_and_metrics_ports(
            self, tmp_path: Path) -> None:
        """The gateway's containerPorts equal config defaults and the ConfigMap's listeners."""
        settings = k8s_settings(tmp_path)
        ports = container_ports(gateway_container())
        assert ports == {"http": LISTEN_PORT, "metrics": METRICS_PORT}
        assert port_of(settings.server.listen) == LISTEN_PORT
        assert port_of(settings.server.metrics_listen) == METRICS_PORT

    def test_the_upstream_is_the_app_container_in_the_pod(self, tmp_path: Path) -> None:
        """upstream.url points at 127.0.0.1 on the app container's port."""
        settings = k8s_settings(tmp_path)
        app_port = container_ports(container("app"))["app"]
        assert settings.upstream.url == f"http://127.0.0.1:{app_port}"

    @pytest.mark.parametrize(("probe", "path"), [("livenessProbe", "/ping"),
                                                 ("readinessProbe", "/ready")])
    def test_probes_hit_routes_the_gateway_serves(
            self, served_paths: tuple[set[str], set[str]], probe: str, path: str) -> None:
        """Liveness is /ping and readiness /ready, on the proxy port; the app routes both."""
        c = gateway_container()
        get = c[probe]["httpGet"]
        assert get["path"] == path
        assert get["path"] in served_paths[0]
        assert resolve_port(c, get["port"]) == LISTEN_PORT

    def test_every_gateway_variable_is_one_the_config_reads(self) -> None:
        """No GATEWAY_* name in the Deployment is unknown to gateway.config (they would fail)."""
        names = {v["name"] for c in pod_spec()["containers"] for v in c.get("env", [])}
        assert {n for n in names if n.startswith("GATEWAY_")} <= KNOWN_ENV

    def test_secret_key_refs_name_keys_of_the_secret(self) -> None:
        """Each secretKeyRef names the Secret manifest and one of its keys."""
        refs = [v["valueFrom"]["secretKeyRef"] for c in pod_spec()["containers"]
                for v in c.get("env", []) if "secretKeyRef" in v.get("valueFrom", {})]
        assert refs
        for ref in refs:
            assert ref["name"] == one("Secret")["metadata"]["name"]
            assert ref["key"] in secret_keys()

    def test_secret_volumes_project_keys_of_the_secret(self) -> None:
        """Each Secret volume names the Secret manifest and only keys it has."""
        volumes = [v["secret"] for v in pod_spec()["volumes"] if "secret" in v]
        assert volumes
        for vol in volumes:
            assert vol["secretName"] == one("Secret")["metadata"]["name"]
            assert {i["key"] for i in vol.get("items", [])} <= secret_keys()

    def test_file_variables_point_into_a_mounted_secret(self) -> None:
        """A *_FILE variable names a file that a Secret volume really provides."""
        c = gateway_container()
        files = [v for v in c["env"] if v["name"].endswith("_FILE")]
        assert files
        for var in files:
            vol, inner = mounted_file(c, var["value"])
            assert "secret" in vol
            assert volume_key(vol, inner) in secret_keys()

    def test_the_config_argument_is_a_file_of_the_configmap(self) -> None:
        """`run --config PATH` names a file projected from the ConfigMap's data."""
        c = gateway_container()
        assert c["args"][0] == "run"
        vol, inner = mounted_file(c, config_path(c["args"]))
        assert vol["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
        assert volume_key(vol, inner) in one("ConfigMap")["data"]

    def test_the_service_targets_the_gateway_ports_only(self) -> None:
        """The Service's http port targets the proxy port and nothing reaches the app directly."""
        service = one("Service")
        c = gateway_container()
        targets = {p["name"]: resolve_port(c, p["targetPort"]) for p in service["spec"]["ports"]}
        assert targets == {"http": LISTEN_PORT, "metrics": METRICS_PORT}
        labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()

    def test_metrics_are_scraped_where_they_are_served(
            self, served_paths: tuple[set[str], set[str]]) -> None:
        """Scrape annotations and the ServiceMonitor name the metrics port and /metrics."""
        annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == METRICS_PORT
        assert annotations["prometheus.io/path"] in served_paths[1]
        monitor = one("ServiceMonitor")
        service = one("Service")
        assert monitor["spec"]["selector"]["matchLabels"].items() <= (
            service["metadata"]["labels"].items())
        service_ports = {p["name"]: p for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            target = service_ports[endpoint["port"]]["targetPort"]
            assert resolve_port(gateway_container(), target) == METRICS_PORT
            assert endpoint["path"] in served_paths[1]

    def test_the_network_policy_admits_only_the_gateway_ports(self) -> None:
        """Ingress to the pod is limited to the gateway's ports, so the app is not reachable."""
        policy = one("NetworkPolicy")
        labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert ports == {LISTEN_PORT, METRICS_PORT}

    @pytest.mark.parametrize("name", ["app", "gateway"])
    def test_containers_are_locked_down_with_resources(self, name: str) -> None:
        """Non-root, read-only root filesystem, no capabilities, no escalation, resources set."""
        c = container(name)
        security = c["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["requests"]
        assert c["resources"]["limits"]["memory"]
        assert pod_spec()["securityContext"]["runAsNonRoot"] is True

    def test_the_gateway_gets_a_writable_tmp_only(self) -> None:
        """/tmp is an emptyDir; every other mount is read-only."""
        mounts = {m["mountPath"]: m for m in gateway_container()["volumeMounts"]}
        assert "emptyDir" in volume(mounts["/tmp"]["name"])
        assert all(m.get("readOnly") for path, m in mounts.items() if path != "/tmp")

    def test_the_grace_period_covers_the_pre_stop_pause_and_the_drain(
            self, tmp_path: Path) -> None:
        """terminationGracePeriodSeconds exceeds preStop sleep + server.shutdown_timeout_seconds."""
        settings = k8s_settings(tmp_path)
        command = gateway_container()["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep"
        pause = float(command[1])
        assert pod_spec()["terminationGracePeriodSeconds"] > (
            pause + settings.server.shutdown_timeout_seconds)

    def test_service_links_are_off(self) -> None:
        """Kubernetes service-link variables could collide with GATEWAY_<SECTION>_* names."""
        assert pod_spec()["enableServiceLinks"] is False


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
        assert int(uid) == pod_spec()["securityContext"]["runAsUser"]
        assert int(gid) == pod_spec()["securityContext"]["runAsGroup"]

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
        assert grace > DEFAULTS["shutdown_timeout_seconds"]

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

    def pool_file(self) -> Path:
        """The host file mounted where --config points."""
        args = self.idp_args()
        for spec in compose(self.path)["services"]["dev-idp"]["volumes"]:
            source, target, *_ = spec.split(":")
            if target == str(args.config):
                return self.path.parent / source
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
