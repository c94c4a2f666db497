"""`cognito-gateway doctor` against the dev IdP: one verdict per misconfiguration it reproduces."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.fernet import Fernet

from gateway.config import load_settings
from gateway.devidp import AppClient, DevIdp, UserPool
from gateway.devidp.keys import SigningKeys
from gateway.doctor import Status, run_doctor
from gateway.doctor.redirect import redirect_uri_finding
from gateway.doctor.verdicts import clock_finding
from tests.conftest import ALICE, CLIENT_ID, CLIENT_SECRET, Secrets

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

# A bound socket that never listens: connecting to it is refused for the whole module.
_REFUSING = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_REFUSING.bind(("127.0.0.1", 0))
REFUSING_PORT: int = _REFUSING.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _release_the_refusing_port() -> Iterator[None]:
    yield
    _REFUSING.close()

PUBLIC_URL = "http://localhost:4180"
REDIRECT_URI = PUBLIC_URL + "/oauth2/callback"
WRONG_SECRET = "not-the-client-secret-9876543210"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def signing_keys() -> SigningKeys:
    return SigningKeys.generate()


def _client(**overrides: Any) -> AppClient:
    settings: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                "callback_urls": [REDIRECT_URI]}
    return AppClient(**(settings | overrides))


@pytest.fixture
async def doctor_idp(signing_keys: SigningKeys, request: pytest.FixtureRequest,
                     ) -> AsyncIterator[DevIdp]:
    """A dev IdP whose one app client takes the overrides of the test's `case`."""
    case: Case = request.getfixturevalue("case")
    pool = UserPool(users=[ALICE], clients=[_client(**case.client)])
    async with DevIdp(pool, keys=signing_keys) as idp:
        yield idp


def write_config(path: Path, idp: DevIdp, **cognito: str) -> Path:
    """A gateway config for the dev IdP; `cognito` keys override (empty string = left out)."""
    values = {"issuer": idp.issuer, "domain": idp.base_url, "client_id": CLIENT_ID,
              "client_secret": CLIENT_SECRET} | cognito
    lines = "\n".join(f'{k} = "{v}"' for k, v in values.items() if v)
    path.write_text(f"""[server]
public_url = "{PUBLIC_URL}"

[cognito]
{lines}

[session]
secret = ["{Fernet.generate_key().decode()}"]
cookie_secure = false
""", encoding="utf-8")
    return path


async def doctor(config: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_doctor(config, out=out, environ={})
    return code, out.getvalue()


def verdict(output: str, check: str) -> str:
    """The line(s) of one finding: `STATUS  check ...` and its continuation and fix lines."""
    blocks: list[list[str]] = []
    for line in output.splitlines():
        if line[:4] in {"PASS", "WARN", "FAIL"}:
            blocks.append([line])
        elif blocks and line.startswith(" "):
            blocks[-1].append(line)
    found = [" ".join(" ".join(b).split()) for b in blocks if b[0][6:].startswith(check + " ")]
    assert found, f"no {check!r} finding in:\n{output}"
    return found[0]


@dataclass(frozen=True)
class Case:
    client: dict[str, Any] = field(default_factory=dict)
    cognito: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[DevIdp], None] | None = None
    issuer: Callable[[DevIdp], str] | None = None
    check: str = ""
    phrase: str = ""


def _disable(idp: DevIdp) -> None:
    idp.set_client_enabled(CLIENT_ID, False)


def _discovery_503(idp: DevIdp) -> None:
    idp.add_fault("discovery", 503)


def _token_503(idp: DevIdp) -> None:
    idp.add_fault("token", 503)


CASES = {
    "wrong secret": Case(cognito={"client_secret": WRONG_SECRET}, check="client auth",
                         phrase="the client secret is wrong"),
    "secret missing for a confidential client": Case(
        cognito={"client_secret": ""}, check="client auth",
        phrase="the app client has a secret (a confidential client) and cognito.client_secret "
               "is empty"),
    "secret sent by a public client": Case(
        client={"client_secret": None}, check="client auth",
        phrase="Cognito refuses a secret sent by a public client"),
    "code grant not enabled": Case(
        client={"allowed_flows": ["implicit"]}, check="code grant",
        phrase="does not allow the authorization code grant"),
    "callback registered with a trailing slash": Case(
        client={"callback_urls": [REDIRECT_URI + "/"]}, check="callback URL",
        phrase=f"{REDIRECT_URI}/ is registered instead (with a trailing slash)"),
    "callback not registered": Case(
        client={"callback_urls": ["https://elsewhere.example.com/oauth2/callback"]},
        check="callback URL", phrase="is not a callback URL of the app client"),
    "client disabled": Case(prepare=_disable, check="client auth",
                            phrase="the app client is disabled"),
    "unknown client id": Case(cognito={"client_id": "no-such-client"}, check="client auth",
                              phrase="client_id no-such-client is unknown in this user pool"),
    "wrong issuer (another pool)": Case(
        issuer=lambda idp: idp.base_url + "/local-1_OtherPool", check="discovery",
        phrase="the issuer is wrong"),
    "wrong issuer (another name for the host)": Case(
        issuer=lambda idp: idp.issuer.replace("127.0.0.1", "localhost"), check="issuer",
        phrase="every token would fail the iss check"),
    "IdP unreachable": Case(
        issuer=lambda _idp: f"http://127.0.0.1:{REFUSING_PORT}/local-1_DevPool01",
        check="discovery", phrase="cannot reach the IdP"),
    "IdP failing (discovery 503)": Case(prepare=_discovery_503, check="discovery",
                                        phrase="the IdP failed"),
    "token endpoint failing (503)": Case(prepare=_token_503, check="client auth",
                                         phrase="answered http_503"),
}


class TestVerdicts:
    @pytest.mark.parametrize("case", [Case()], ids=["all good"])
    async def test_a_good_configuration_passes_every_check(
            self, doctor_idp: DevIdp, case: Case,  # noqa: ARG002 - read by doctor_idp
            tmp_path: Path) -> None:
        """Against a correctly configured app client every finding is PASS and the exit is 0."""
        code, output = await doctor(write_config(tmp_path / "gateway.toml", doctor_idp))
        assert code == 0, output
        assert "FAIL" not in output
        for check in ("redirect_uri", "discovery", "issuer", "endpoints", "jwks",
                      "callback URL", "client auth", "code grant", "clock"):
            assert verdict(output, check).startswith("PASS"), output

    @pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
    async def test_each_misconfiguration_fails_with_its_cause(
            self, doctor_idp: DevIdp, case: Case, tmp_path: Path, secrets: Secrets) -> None:
        """The doctor names the cause in the failing finding, exits 1 and prints no secret."""
        if case.prepare:
            case.prepare(doctor_idp)
        cognito = dict(case.cognito)
        if case.issuer:
            cognito["issuer"] = case.issuer(doctor_idp)
        secrets.add(WRONG_SECRET)
        code, output = await doctor(write_config(tmp_path / "gateway.toml", doctor_idp,
                                                 **cognito))
        assert code == 1, output
        line = verdict(output, case.check)
        assert line.startswith("FAIL"), output
        assert case.phrase in line, output
        assert "fix:" in line
        assert CLIENT_SECRET not in output
        assert WRONG_SECRET not in output


async def test_config_errors_are_listed_with_exit_2(tmp_path: Path) -> None:
    """An unusable configuration lists every bad key and exits 2 without probing anything."""
    config = tmp_path / "bad.toml"
    config.write_text('[server]\npublic_url = "ftp://x"\n[cognito]\npkce = "yes"\n',
                      encoding="utf-8")
    code, output = await doctor(config)
    assert code == 2
    assert "FAIL  config" in output
    for key in ("server.public_url", "cognito.pkce", "cognito.client_id", "session.secret"):
        assert key in output, output


@pytest.mark.parametrize(("public_url", "local_idp", "status", "phrase"), [
    ("https://app.example.com", False, Status.PASS, "https://app.example.com/oauth2/callback"),
    ("https://app.example.com/", False, Status.PASS, "trailing slash of server.public_url"),
    ("http://localhost:4180", False, Status.PASS, "http://localhost:4180/oauth2/callback"),
    ("http://127.0.0.1:4180", False, Status.WARN, "only for localhost"),
    ("http://127.0.0.1:4180", True, Status.PASS, "http://127.0.0.1:4180/oauth2/callback"),
    ("http://app.example.com", False, Status.FAIL, "uses http"),
    ("https://App.Example.com", False, Status.WARN, "upper-case"),
    ("https://app.example.com:443", False, Status.WARN, "default port 443"),
])
def test_redirect_uri_shape(public_url: str, local_idp: bool, status: Status,
                            phrase: str) -> None:
    """The redirect_uri is public_url + /oauth2/callback, https unless localhost, exact."""
    settings = load_settings(environ={
        "GATEWAY_SERVER_PUBLIC_URL": public_url, "GATEWAY_COGNITO_ISSUER": "https://idp.test/p",
        "GATEWAY_COGNITO_CLIENT_ID": "c", "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
        "GATEWAY_SESSION_COOKIE_SECURE": "false"})
    finding = redirect_uri_finding(settings, local_idp=local_idp)
    assert finding.status is status
    assert phrase in finding.detail


@pytest.mark.parametrize(("skew", "status"), [
    (None, Status.WARN), (0.4, Status.PASS), (-29.0, Status.PASS), (45.0, Status.WARN),
    (-120.0, Status.WARN), (301.0, Status.FAIL), (-3600.0, Status.FAIL),
])
def test_clock_skew_thresholds(skew: float | None, status: Status) -> None:
    """Skew against the IdP's Date header: warn beyond 30 s, fail beyond 5 minutes."""
    assert clock_finding(skew).status is status


class TestCommandLine:
    async def _run(self, config: Path) -> tuple[int, str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "doctor", "--config", str(config), cwd=REPO,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    @pytest.mark.parametrize("case", [Case()], ids=["all good"])
    async def test_python_m_gateway_doctor_exits_0_when_all_pass(
            self, doctor_idp: DevIdp, case: Case,  # noqa: ARG002 - read by doctor_idp
            tmp_path: Path) -> None:
        """`python -m gateway doctor --config FILE` prints PASS lines and exits 0."""
        code, out, err = await self._run(write_config(tmp_path / "g.toml", doctor_idp))
        assert code == 0, out + err
        assert "PASS  client auth" in out
        assert "0 failed" in out
        assert CLIENT_SECRET not in out + err

    @pytest.mark.parametrize("case", [CASES["wrong secret"]], ids=["wrong secret"])
    async def test_python_m_gateway_doctor_exits_1_on_a_failure(
            self, doctor_idp: DevIdp, case: Case,  # noqa: ARG002 - read by doctor_idp
            tmp_path: Path, secrets: Secrets) -> None:
        """A wrong secret makes the command exit 1, naming the cause, without printing it."""
        secrets.add(WRONG_SECRET)
        config = write_config(tmp_path / "g.toml", doctor_idp, client_secret=WRONG_SECRET)
        code, out, err = await self._run(config)
        assert code == 1, out + err
        assert "the client secret is wrong" in " ".join(out.split())
        assert WRONG_SECRET not in out + err
        assert err == ""
