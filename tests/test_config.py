"""Loading settings from TOML and GATEWAY_* variables: precedence, secrets, and problem reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from gateway.config import Settings, load_settings
from gateway.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()

MINIMAL_TOML = f"""
[server]
public_url = "https://app.example.com"
[cognito]
user_pool_id = "eu-west-1_AbCdEf123"
client_id = "client-from-file"
[session]
secret = "{KEY_A}"
"""


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path | None, environ: dict[str, str]) -> dict[str, str]:
    """The reported problems as {key: message} (several for one key joined by " / ")."""
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ)
    found: dict[str, str] = {}
    for problem in caught.value.problems:
        found[problem.key] = " / ".join(filter(None, [found.get(problem.key), problem.message]))
    return found


def load(tmp_path: Path, toml: str = MINIMAL_TOML, **environ: str) -> Settings:
    return load_settings(write(tmp_path, toml), environ=environ)


class TestProblems:
    def test_every_problem_is_reported_at_once_by_key(self, tmp_path: Path) -> None:
        """One load reports unknown keys, bad types, bad values and missing requirements."""
        toml = """
[server]
listen = "no-port"
lisen = "0.0.0.0:1"
shutdown_timeout_seconds = "soon"
[upstream]
url = "ftp://app"
websockets = "yes"
[cognito]
scopes = ["email"]
[session]
store = "memcached"
[surprise]
x = 1
"""
        found = problems(write(tmp_path, toml), {"GATEWAY_LOG_LEVL": "debug"})
        assert set(found) == {
            "server.listen", "server.lisen", "server.shutdown_timeout_seconds", "upstream.url",
            "upstream.websockets", "cognito.scopes", "session.store", "surprise",
            "GATEWAY_LOG_LEVL", "server.public_url", "cognito.client_id",
            "cognito.user_pool_id", "session.secret",
        }
        assert found["server.lisen"] == "unknown key"
        assert found["surprise"].startswith("unknown section")
        assert found["GATEWAY_LOG_LEVL"] == "unknown setting in the environment"

    @pytest.mark.parametrize(("toml", "key", "message"), [
        ('[server]\nlisten = 4180', "server.listen", "must be a string, not 4180"),
        ("[server]\nshutdown_timeout_seconds = true", "server.shutdown_timeout_seconds",
         "must be a number, not True"),
        ('[upstream]\nmax_request_body_bytes = "1MB"', "upstream.max_request_body_bytes",
         "must be an integer, not '1MB'"),
        ("[upstream]\nmax_request_body_bytes = 1.5", "upstream.max_request_body_bytes",
         "must be an integer, not 1.5"),
        ('[upstream]\nwebsockets = "true"', "upstream.websockets", "must be true or false"),
        ("[cognito]\nscopes = [1, 2]", "cognito.scopes", "must be a list of strings"),
        ('[auth]\npublic_paths = ["health"]', "auth.public_paths", "'health' must start with /"),
        ('[server]\ntrusted_proxies = ["10.0.0.0/33"]', "server.trusted_proxies",
         "is not an IP network"),
        ('[session]\nsecret = ["not-a-key"]', "session.secret", "is not a Fernet key"),
        ('[server]\npublic_url = "https://app.example.com/path"', "server.public_url",
         "must be an origin"),
        ("[session]\nlifetime_seconds = 10", "session.lifetime_seconds", "must be at least 60"),
        ('[headers]\nsets = ["x-auth-request", "oidc"]', "headers.sets",
         "'oidc' must be one of x-auth-request, alb"),
        ('server = "x"', "server", "must be a table"),
    ])
    def test_a_bad_value_in_the_file_is_reported_under_its_key(
            self, tmp_path: Path, toml: str, key: str, message: str) -> None:
        """A wrong type or invalid value in TOML names the key and says what is expected."""
        assert message in problems(write(tmp_path, toml), {})[key]

    @pytest.mark.parametrize(("name", "value", "key", "message"), [
        ("GATEWAY_UPSTREAM_TIMEOUT_SECONDS", "1m", "upstream.timeout_seconds",
         "must be a number"),
        ("GATEWAY_UPSTREAM_MAX_REQUEST_BODY_BYTES", "1.5", "upstream.max_request_body_bytes",
         "must be an integer"),
        ("GATEWAY_UPSTREAM_WEBSOCKETS", "maybe", "upstream.websockets", "must be true or false"),
        ("GATEWAY_AUTH_API_PATHS", '["/api/*"', "auth.api_paths", "is not a JSON array"),
        ("GATEWAY_SESSION_COOKIE_SAMESITE", "Lax", "session.cookie_samesite",
         "must be one of lax, strict, none"),
        ("GATEWAY_SERVER_LISTEN", "0.0.0.0:99999", "server.listen", "must be HOST:PORT"),
    ])
    def test_a_bad_value_in_the_environment_is_reported_under_its_key(
            self, tmp_path: Path, name: str, value: str, key: str, message: str) -> None:
        """A variable that does not parse is reported under the dotted key it sets."""
        found = problems(write(tmp_path, MINIMAL_TOML), {name: value})
        assert message in found[key]

    @pytest.mark.parametrize("name", [
        "GATEWAY_SERVER_LISTN",
        "GATEWAY_COGNITO_CLIENTID",
        "GATEWAY_COGNITO_CLIENT_ID_FILE",       # only secrets have a _FILE form
        "GATEWAY_SESSION_COOKIE_SECURE_FILE",
        "GATEWAY_HEADERS_SET",
    ])
    def test_an_unknown_gateway_variable_of_a_known_section_is_an_error(
            self, tmp_path: Path, name: str) -> None:
        """A misspelt GATEWAY_<SECTION>_* variable is reported, not silently ignored."""
        found = problems(write(tmp_path, MINIMAL_TOML), {name: "x"})
        assert found == {name: "unknown setting in the environment"}

    @pytest.mark.parametrize("name", ["GATEWAY_VERSION", "GATEWAY_HEALTHCHECK_PORT", "GATEWAYX"])
    def test_variables_outside_the_sections_are_left_alone(
            self, tmp_path: Path, name: str) -> None:
        """Only GATEWAY_<known section>_* names are checked; other variables are not ours."""
        assert load(tmp_path, **{name: "x"}).cognito.client_id == "client-from-file"

    @pytest.mark.parametrize(("environ", "key", "message"), [
        ({"GATEWAY_COGNITO_PKCE": "false"}, "cognito.pkce", "must use PKCE"),
        ({"GATEWAY_SESSION_COOKIE_SAMESITE": "none", "GATEWAY_SESSION_COOKIE_SECURE": "false"},
         "session.cookie_samesite", "requires session.cookie_secure"),
        ({"GATEWAY_COGNITO_SCOPES": "email,profile"}, "cognito.scopes", "must include openid"),
    ])
    def test_contradicting_settings_are_reported(
            self, tmp_path: Path, environ: dict[str, str], key: str, message: str) -> None:
        """Cross-key rules (public client needs PKCE, SameSite=None needs Secure) are checked."""
        found = problems(write(tmp_path, MINIMAL_TOML), environ)
        assert list(found) == [key]
        assert message in found[key]

    def test_an_http_public_url_with_secure_cookies_is_reported(self, tmp_path: Path) -> None:
        """Secure cookies on a plain-http origin would never come back: that is a problem."""
        found = problems(write(tmp_path, MINIMAL_TOML),
                         {"GATEWAY_SERVER_PUBLIC_URL": "http://app.internal:8080"})
        assert list(found) == ["session.cookie_secure"]
        assert "http://" in found["session.cookie_secure"]

    @pytest.mark.parametrize(("text", "message"), [
        ("[server\nlisten=1", "not valid TOML"),
    ])
    def test_an_unparsable_file_is_one_problem_named_by_path(
            self, tmp_path: Path, text: str, message: str) -> None:
        """A file that is not TOML is reported with its path, not as a traceback."""
        path = write(tmp_path, text)
        assert message in problems(path, {})[str(path)]

    def test_a_missing_file_is_one_problem_named_by_path(self, tmp_path: Path) -> None:
        """A config path that does not exist is reported as unreadable."""
        path = tmp_path / "absent.toml"
        assert problems(path, {})[str(path)].startswith("cannot read")


class TestPrecedence:
    @pytest.mark.parametrize(("name", "value", "attribute", "expected"), [
        ("GATEWAY_COGNITO_CLIENT_ID", "client-from-env", ("cognito", "client_id"),
         "client-from-env"),
        ("GATEWAY_SERVER_LISTEN", "127.0.0.1:9000", ("server", "listen"), "127.0.0.1:9000"),
        ("GATEWAY_UPSTREAM_TIMEOUT_SECONDS", "2.5", ("upstream", "timeout_seconds"), 2.5),
        ("GATEWAY_UPSTREAM_MAX_REQUEST_BODY_BYTES", "1048576",
         ("upstream", "max_request_body_bytes"), 1048576),
        ("GATEWAY_UPSTREAM_WEBSOCKETS", "off", ("upstream", "websockets"), False),
        ("GATEWAY_SESSION_COOKIE_SECURE", "0", ("session", "cookie_secure"), False),
        ("GATEWAY_AUTH_PUBLIC_PATHS", "/health, /static/*", ("auth", "public_paths"),
         ["/health", "/static/*"]),
        ("GATEWAY_AUTH_ALLOWED_GROUPS", '["admins", "a,b"]', ("auth", "allowed_groups"),
         ["admins", "a,b"]),
        ("GATEWAY_COGNITO_SCOPES", "openid", ("cognito", "scopes"), ["openid"]),
        ("GATEWAY_SESSION_SECRET", f"{KEY_B},{KEY_A}", ("session", "secret"), [KEY_B, KEY_A]),
    ])
    def test_the_environment_wins_over_the_file(
            self, tmp_path: Path, name: str, value: str, attribute: tuple[str, str],
            expected: Any) -> None:
        """A GATEWAY_<SECTION>_<KEY> variable overrides the TOML value, parsed to the key's type."""
        toml = MINIMAL_TOML + '[upstream]\ntimeout_seconds = 9\nmax_request_body_bytes = 5\n'
        settings = load(tmp_path, toml, **{name: value})
        section, key = attribute
        assert getattr(getattr(settings, section), key) == expected

    def test_defaults_fill_what_neither_source_sets(self, tmp_path: Path) -> None:
        """Unset keys take the documented defaults."""
        settings = load(tmp_path)
        assert settings.server.listen == "0.0.0.0:4180"
        assert settings.server.metrics_listen == "0.0.0.0:9464"
        assert settings.cognito.scopes == ["openid", "email", "profile"]
        assert settings.redirect_uri == "https://app.example.com/oauth2/callback"
        assert settings.logout_uri == "https://app.example.com/oauth2/signed_out"
        assert settings.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"

    def test_environment_alone_is_a_complete_configuration(self) -> None:
        """Without a file, GATEWAY_* variables configure everything."""
        settings = load_settings(None, environ={
            "GATEWAY_SERVER_PUBLIC_URL": "http://localhost:4180",
            "GATEWAY_SESSION_COOKIE_SECURE": "false",
            "GATEWAY_COGNITO_ISSUER": "http://idp.localhost:4181/local-1_DevPool01",
            "GATEWAY_COGNITO_CLIENT_ID": "demo-client",
            "GATEWAY_SESSION_SECRET": KEY_A,
        })
        assert settings.issuer == "http://idp.localhost:4181/local-1_DevPool01"
        assert not settings.is_cognito


class TestSecretFiles:
    @pytest.mark.parametrize("where", ["toml", "env"])
    def test_a_secret_is_read_from_the_named_file_stripped(
            self, tmp_path: Path, where: str) -> None:
        """`client_secret_file` (TOML) and GATEWAY_COGNITO_CLIENT_SECRET_FILE read the file."""
        secret_file = write(tmp_path, "s3cret-from-file\n", "client-secret")
        toml, environ = MINIMAL_TOML, {}
        if where == "toml":
            toml = toml.replace('client_id = "client-from-file"',
                                f'client_id = "c"\nclient_secret_file = "{secret_file}"')
        else:
            environ["GATEWAY_COGNITO_CLIENT_SECRET_FILE"] = str(secret_file)
        settings = load(tmp_path, toml, **environ)
        assert settings.cognito.client_secret == "s3cret-from-file"

    def test_a_session_key_file_holds_a_comma_separated_rotation_list(
            self, tmp_path: Path) -> None:
        """A secret file is read like an environment value, so a key list is comma-separated."""
        keys = write(tmp_path, f"{KEY_B},{KEY_A}\n", "session-secret")
        settings = load(tmp_path, GATEWAY_SESSION_SECRET_FILE=str(keys))
        assert settings.session.secret == [KEY_B, KEY_A]

    @pytest.mark.parametrize(("environ", "expected"), [
        ({"GATEWAY_COGNITO_CLIENT_SECRET": "from-env"}, "from-env"),
        ({}, "from-env-file"),
    ])
    def test_the_plain_variable_wins_over_the_file_variable_which_wins_over_toml(
            self, tmp_path: Path, environ: dict[str, str], expected: str) -> None:
        """Order: GATEWAY_X, then GATEWAY_X_FILE, then `x_file`/`x` in the TOML file."""
        env_file = write(tmp_path, "from-env-file", "env-secret")
        toml_file = write(tmp_path, "from-toml-file", "toml-secret")
        toml = MINIMAL_TOML.replace(
            'client_id = "client-from-file"',
            f'client_id = "c"\nclient_secret_file = "{toml_file}"\nclient_secret = "inline"')
        settings = load(tmp_path, toml, GATEWAY_COGNITO_CLIENT_SECRET_FILE=str(env_file),
                        **environ)
        assert settings.cognito.client_secret == expected

    @pytest.mark.parametrize(("where", "key"), [
        ("env", "cognito.client_secret_file"),
        ("toml", "cognito.client_secret_file"),
    ])
    def test_an_unreadable_secret_file_is_reported_under_the_file_key(
            self, tmp_path: Path, where: str, key: str) -> None:
        """A secret file that cannot be read is a problem named by the `_file` key."""
        missing = tmp_path / "nope"
        toml, environ = MINIMAL_TOML, {}
        if where == "toml":
            toml = toml.replace("[cognito]", f'[cognito]\nclient_secret_file = "{missing}"')
        else:
            environ["GATEWAY_COGNITO_CLIENT_SECRET_FILE"] = str(missing)
        found = problems(write(tmp_path, toml), environ)
        assert found[key].startswith(f"cannot read {missing}")

    def test_a_non_secret_key_has_no_file_form_in_toml(self, tmp_path: Path) -> None:
        """`client_id_file` is an unknown key: only secrets may come from files."""
        toml = MINIMAL_TOML.replace("[cognito]", '[cognito]\nclient_id_file = "/x"')
        assert problems(write(tmp_path, toml), {}) == {"cognito.client_id_file": "unknown key"}


class TestRunCommand:
    def test_run_with_a_bad_config_exits_2_listing_every_problem_without_a_traceback(
            self, tmp_path: Path) -> None:
        """`cognito-gateway run --config bad.toml` prints each problem by key and exits 2."""
        bad = write(tmp_path, '[server]\nlisten = "x"\nbogus = 1\n[session]\nstore = "disk"\n',
                    "bad.toml")
        env = {"PATH": "/usr/bin:/bin", "GATEWAY_UPSTREAM_URLL": "http://x"}
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "run", "--config", str(bad)], cwd=REPO, env=env,
            capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr + result.stdout
        for line in ["server.listen: must be HOST:PORT", "server.bogus: unknown key",
                     "session.store: must be one of cookie, redis",
                     "GATEWAY_UPSTREAM_URLL: unknown setting in the environment",
                     "server.public_url: is required", "cognito.client_id: is required",
                     "session.secret: is required"]:
            assert line in result.stderr

    @pytest.mark.parametrize("content", [None, "[server\n"])
    def test_run_with_a_missing_or_broken_file_exits_2_without_a_traceback(
            self, tmp_path: Path, content: str | None) -> None:
        """An absent or unparsable config file is one line naming the file, exit status 2."""
        path = tmp_path / "gateway.toml"
        if content is not None:
            path.write_text(content, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "run", "--config", str(path)], cwd=REPO,
            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30,
            check=False)
        assert result.returncode == 2
        assert str(path) in result.stderr
        assert "Traceback" not in result.stderr
