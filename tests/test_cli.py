"""The `cognito-gateway` command line: offline commands answer without starting anything."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from cryptography.fernet import Fernet

from gateway import __version__
from gateway.cli import main

if TYPE_CHECKING:
    from pathlib import Path

KEY = Fernet.generate_key().decode()
SECRET = "client-secret-never-printed"
VALID = f"""
[server]
public_url = "https://app.example.com"
[cognito]
user_pool_id = "eu-west-1_AbCdEf123"
client_id = "client-1"
client_secret = "{SECRET}"
[session]
secret = "{KEY}"
"""
BROKEN = """
[server]
public_url = "app.example.com"
workers = 0
[cognito]
client_id = "client-1"
"""


@pytest.fixture(autouse=True)
def _no_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own GATEWAY_* variables never leak into these commands."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_check_accepts_a_valid_config_and_prints_no_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`config check` exits 0 with a summary that names the client kind, never its secret."""
    assert main(["config", "check", "--config", str(config_file(tmp_path, VALID))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("config OK")
    assert "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123" in out
    assert "confidential" in out
    assert SECRET not in out
    assert KEY not in out


@pytest.mark.parametrize("command", [["config", "check"], ["run"]], ids=["config-check", "run"])
def test_a_broken_config_exits_2_with_every_problem(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every problem is listed at once, by key, before anything starts."""
    assert main([*command, "--config", str(config_file(tmp_path, BROKEN))]) == 2
    err = capsys.readouterr().err
    for key in ("server.public_url", "server.workers", "session.secret"):
        assert key in err


def test_config_check_reads_the_environment_over_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment wins over the file, exactly as for `run`."""
    monkeypatch.setenv("GATEWAY_SESSION_STORE", "redis")
    assert main(["config", "check", "--config", str(config_file(tmp_path, VALID))]) == 0
    assert "session store   redis" in capsys.readouterr().out


def test_a_missing_config_file_is_a_problem_not_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable file is reported by name with exit 2."""
    assert main(["config", "check", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "absent.toml" in capsys.readouterr().err


def test_generate_secret_prints_a_usable_session_key(capsys: pytest.CaptureFixture[str]) -> None:
    """The printed key encrypts and decrypts (a Fernet key)."""
    assert main(["generate-secret"]) == 0
    key = capsys.readouterr().out.strip()
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"


def test_version_names_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the installed version and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"cognito-gateway {__version__}"
