"""The configuration reference is generated from gateway/config.py and committed unchanged."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gateway import config_reference
from gateway.config import SECTIONS, load_settings

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "docs" / "configuration.md"
ALL_FIELDS = [(section, f) for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def rows() -> dict[str, list[str]]:
    """The rendered table rows by environment variable name, as lists of cells."""
    found = {}
    for line in config_reference.render().splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            env = cells[3].split("<br>")[0].strip("`")
            found[env] = cells
    return found


def test_the_committed_reference_is_the_generated_one() -> None:
    """docs/configuration.md equals render(); regenerate it when config.py changes."""
    assert COMMITTED.read_text(encoding="utf-8") == config_reference.render(), (
        f"docs/configuration.md is stale: {config_reference.REGENERATE}")


@pytest.mark.parametrize(("section", "field"), ALL_FIELDS,
                         ids=[f"{s}.{f.name}" for s, f in ALL_FIELDS])
def test_every_key_is_listed_with_its_env_var_secrecy_and_doc(
        section: str, field: dataclasses.Field[object]) -> None:
    """Each setting has a row: key, environment variable, secret flag and its description."""
    env = f"GATEWAY_{section}_{field.name}".upper()
    cells = rows()[env]
    assert cells[0].startswith(f"`{field.name}`")
    assert cells[4] == ("yes" if field.metadata["secret"] else "no")
    assert (f"`{env}_FILE`" in cells[3]) == bool(field.metadata["secret"])
    assert str(field.metadata["doc"]).replace("|", "\\|") in cells[5]


def test_the_listed_defaults_are_the_defaults_the_loader_applies() -> None:
    """Every default cell, read back as TOML, equals the value of an otherwise empty config."""
    settings = load_settings(environ={
        "GATEWAY_SERVER_PUBLIC_URL": "https://app.example.com",
        "GATEWAY_COGNITO_USER_POOL_ID": "eu-west-1_AbCdEf123",
        "GATEWAY_COGNITO_CLIENT_ID": "c",
        "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
    })
    table = rows()
    overridden = {"GATEWAY_SERVER_PUBLIC_URL", "GATEWAY_COGNITO_USER_POOL_ID",
                  "GATEWAY_COGNITO_CLIENT_ID", "GATEWAY_SESSION_SECRET"}
    for section, field in ALL_FIELDS:
        env = f"GATEWAY_{section}_{field.name}".upper()
        if env in overridden:
            continue
        listed = tomllib.loads(f"v = {table[env][2].strip('`')}")["v"]
        assert listed == getattr(getattr(settings, section), field.name), env


def test_check_passes_on_the_committed_file_and_fails_on_a_stale_one(tmp_path: Path) -> None:
    """`python -m gateway.config_reference --check FILE` exits 0 when current, 1 when stale."""
    command = [sys.executable, "-m", "gateway.config_reference", "--check"]
    current = subprocess.run([*command, str(COMMITTED)], cwd=REPO, capture_output=True,
                             text=True, timeout=30, check=False)
    assert current.returncode == 0, current.stderr
    stale = tmp_path / "configuration.md"
    stale.write_text(config_reference.render().replace("25.0", "30.0"), encoding="utf-8")
    result = subprocess.run([*command, str(stale)], cwd=REPO, capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 1
    assert "out of date" in result.stderr


def test_without_check_the_module_prints_the_reference() -> None:
    """`python -m gateway.config_reference` writes exactly render() to stdout."""
    result = subprocess.run([sys.executable, "-m", "gateway.config_reference"], cwd=REPO,
                            capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout == config_reference.render()
