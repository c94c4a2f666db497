"""Reloading the configuration: what changes live, what is refused, and which files are watched.

These tests drive `Reloader` on real files; tests/test_reload_gateway.py reloads a serving
gateway (SIGHUP and a mounted file changed under load).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from cryptography.fernet import Fernet

from gateway.config import Settings, load_settings
from gateway.observability.metrics import Metrics
from gateway.reload import LIVE, Reloader, changed_keys
from tests.conftest import Secrets, log_events
from tests.support.clock import ManualClock

if TYPE_CHECKING:
    import io
    from pathlib import Path

KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()
CLIENT_SECRET_A, CLIENT_SECRET_B = "client-secret-a-" + "x" * 20, "client-secret-b-" + "y" * 20
RULES = """
[[auth.rules]]
paths = ["/admin", "/admin/*"]
groups = ["admins"]
"""


@dataclass
class Setup:
    """A config file and its two secret files, and what a reload applied."""

    directory: Path
    applied: list[Settings] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.directory / "gateway.toml"

    @property
    def session_key(self) -> Path:
        return self.directory / "session-key"

    @property
    def client_secret(self) -> Path:
        return self.directory / "client-secret"

    def write(self, *, keys: str = KEY_A, client_secret: str = CLIENT_SECRET_A,
              extra: str = "", listen: str = "127.0.0.1:4180") -> None:
        self.session_key.write_text(keys + "\n", encoding="utf-8")
        self.client_secret.write_text(client_secret, encoding="utf-8")
        self.config.write_text(f"""
[server]
public_url = "https://app.example.com"
listen = "{listen}"
[cognito]
user_pool_id = "eu-west-1_AbCdEf123"
client_id = "client-1"
client_secret_file = "{self.client_secret}"
[session]
secret_file = "{self.session_key}"
{extra}""", encoding="utf-8")

    def reloader(self, metrics: Metrics) -> Reloader:
        settings = load_settings(self.config, environ={})
        return Reloader(settings, self.applied.append, metrics, path=self.config, environ={})


@pytest.fixture
def setup(tmp_path: Path, secrets: Secrets) -> Setup:
    secrets.add(KEY_A, KEY_B, CLIENT_SECRET_A, CLIENT_SECRET_B)
    made = Setup(tmp_path)
    made.write()
    return made


def reloads(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("cognito_gateway_config_reloads_total",
                                              {"outcome": outcome})
    return value or 0.0


@pytest.mark.parametrize(("change", "keys"), [
    ({"keys": f"{KEY_B},{KEY_A}"}, ["session.secret"]),
    ({"client_secret": CLIENT_SECRET_B}, ["cognito.client_secret"]),
    ({"extra": RULES}, ["auth.rules"]),
    ({"extra": '[log]\nlevel = "debug"'}, ["log.level"]),
    ({"keys": f"{KEY_B},{KEY_A}", "client_secret": CLIENT_SECRET_B},
     ["cognito.client_secret", "session.secret"]),
], ids=["session key rotated", "client secret rotated", "rules changed", "log level",
        "key and secret at once"])
def test_a_live_setting_is_applied_at_once(
        setup: Setup, log_buffer: io.StringIO, change: dict[str, str], keys: list[str]) -> None:
    """A changed live setting reaches `apply` and is named (never its value) in the log."""
    metrics = Metrics()
    reloader = setup.reloader(metrics)
    setup.write(**change)
    assert reloader.reload("sighup") == "ok"
    (applied,) = setup.applied
    assert reloader.current is applied
    assert changed_keys(load_settings(setup.config, environ={}), applied) == []
    (line,) = [e for e in log_events(log_buffer) if e["event"] == "config_reloaded"]
    assert sorted(line["keys"]) == keys
    assert line["trigger"] == "sighup"
    assert reloads(metrics, "ok") == 1


def test_a_setting_that_cannot_change_live_keeps_its_value_and_is_named(
        setup: Setup, log_buffer: io.StringIO) -> None:
    """A new listen address is not applied; a warning names it; live changes still apply."""
    metrics = Metrics()
    reloader = setup.reloader(metrics)
    setup.write(listen="127.0.0.1:9999", client_secret=CLIENT_SECRET_B)
    assert reloader.reload("sighup") == "ok"
    (applied,) = setup.applied
    assert applied.server.listen == "127.0.0.1:4180"
    assert applied.cognito.client_secret == CLIENT_SECRET_B
    (warning,) = [e for e in log_events(log_buffer) if e["event"] == "config_reload_needs_restart"]
    assert warning["keys"] == ["server.listen"]
    assert warning["level"] == "warning"


def test_only_restart_settings_changed_applies_nothing(setup: Setup) -> None:
    """With no live setting changed there is nothing to apply; the warning still names them."""
    reloader = setup.reloader(Metrics())
    setup.write(listen="127.0.0.1:9999")
    assert reloader.reload("sighup") == "ok"
    assert setup.applied == []


@pytest.mark.parametrize(("break_it", "problem_key"), [
    (lambda s: s.config.write_text("[server\npublic_url = 1", encoding="utf-8"),
     "gateway.toml"),
    (lambda s: s.session_key.write_text("not-a-fernet-key", encoding="utf-8"),
     "session.secret"),
    (lambda s: s.client_secret.unlink(), "cognito.client_secret_file"),
    (lambda s: s.write(extra='[[auth.rules]]\npaths = ["admin"]'), "auth.rules[0].paths"),
], ids=["not TOML", "bad session key", "secret file gone", "bad rule"])
def test_an_invalid_config_is_refused_and_the_running_one_kept(
        setup: Setup, log_buffer: io.StringIO, break_it: object, problem_key: str) -> None:
    """Every problem is logged by key, nothing is applied, the outcome is `invalid`."""
    metrics = Metrics()
    reloader = setup.reloader(metrics)
    before = reloader.current
    assert callable(break_it)
    break_it(setup)
    assert reloader.reload("file_change") == "invalid"
    assert setup.applied == []
    assert reloader.current is before
    (line,) = [e for e in log_events(log_buffer) if e["event"] == "config_reload_refused"]
    assert line["level"] == "error"
    assert any(problem_key in problem for problem in line["problems"]), line["problems"]
    assert reloads(metrics, "invalid") == 1


def test_an_unchanged_config_is_counted_and_applies_nothing(setup: Setup) -> None:
    """SIGHUP with nothing changed: outcome `unchanged`."""
    metrics = Metrics()
    reloader = setup.reloader(metrics)
    assert reloader.reload("sighup") == "unchanged"
    assert setup.applied == []
    assert reloads(metrics, "unchanged") == 1


@pytest.mark.parametrize(("touch", "changed"), [
    (lambda s: s.session_key.write_text(f"{KEY_B},{KEY_A}", encoding="utf-8"), True),
    (lambda s: s.client_secret.unlink(), True),
    (lambda s: s.config.write_text(s.config.read_text() + "\n# note\n"), True),
    (lambda s: os.utime(s.session_key), False),
    (lambda s: s.session_key.write_text(s.session_key.read_text()), False),
], ids=["secret file rewritten", "secret file removed", "config edited", "touched",
        "same content written again"])
def test_files_changed_compares_contents_of_the_files_read(
        setup: Setup, touch: object, changed: bool) -> None:
    """The config file and every secret file read are watched by content, not by time."""
    reloader = setup.reloader(Metrics())
    assert not reloader.files_changed()
    assert callable(touch)
    touch(setup)
    assert reloader.files_changed() is changed


def test_kubernetes_secret_update_by_symlink_swap_is_seen(setup: Setup) -> None:
    """A Secret volume updates by pointing `..data` at a new directory: the content changed."""
    data_v1, data_v2 = setup.directory / "v1", setup.directory / "v2"
    data_v1.mkdir()
    data_v2.mkdir()
    (data_v1 / "client-secret").write_text(CLIENT_SECRET_A, encoding="utf-8")
    (data_v2 / "client-secret").write_text(CLIENT_SECRET_B, encoding="utf-8")
    link = setup.directory / "..data"
    link.symlink_to(data_v1)
    setup.client_secret.unlink()
    setup.client_secret.symlink_to(link / "client-secret")
    reloader = setup.reloader(Metrics())
    assert not reloader.files_changed()
    swap = setup.directory / "..data_tmp"
    swap.symlink_to(data_v2)
    swap.replace(link)
    assert reloader.files_changed()
    assert reloader.reload("file_change") == "ok"
    assert setup.applied[-1].cognito.client_secret == CLIENT_SECRET_B
    assert not reloader.files_changed()


async def test_watching_reloads_once_per_change_on_the_clock(setup: Setup) -> None:
    """`watch_files` notices a change at its next poll and reloads once, not at every poll."""
    metrics = Metrics()
    reloader = setup.reloader(metrics)
    clock = ManualClock()
    watcher = asyncio.create_task(reloader.watch_files(clock=clock, every=2.0))
    try:
        await clock.advance(2.0)
        assert reloads(metrics, "ok") == 0
        setup.write(client_secret=CLIENT_SECRET_B)
        await clock.advance(1.0)
        assert reloads(metrics, "ok") == 0
        await clock.advance(1.0)
        assert reloads(metrics, "ok") == 1
        await clock.advance(2.0)
        await clock.advance(2.0)
        assert reloads(metrics, "ok") == 1
        assert reloads(metrics, "unchanged") == 0
    finally:
        watcher.cancel()


def test_every_live_key_is_a_real_setting() -> None:
    """A typo in LIVE would silently make a setting restart-only."""
    settings = load_settings(environ={
        "GATEWAY_SERVER_PUBLIC_URL": "https://app.example.com",
        "GATEWAY_COGNITO_USER_POOL_ID": "eu-west-1_AbCdEf123",
        "GATEWAY_COGNITO_CLIENT_ID": "c", "GATEWAY_SESSION_SECRET": KEY_A})
    for key in LIVE:
        section, _, name = key.partition(".")
        assert hasattr(getattr(settings, section), name), key
