"""Reloading the configuration while serving: on SIGHUP, or when a file it was read from changes.

A reload reads the configuration exactly as the start did: the TOML file, the environment, and
every `*_file` secret again (Kubernetes updates a mounted Secret in place). Then:

- Invalid: every problem is logged (`config_reload_refused`, each problem by key, never a
  value) and the running configuration keeps serving, unchanged.
- Valid: the settings in `LIVE` take effect at once through the `apply` callable the app
  provides (session keys, the client secret, the access rules, the log level); every other
  changed setting (listen addresses, the store kind, ...) keeps its running value and is named
  in one `config_reload_needs_restart` warning.
- Nothing changed: nothing happens.

`cognito_gateway_config_reloads_total{outcome}` counts `ok`, `invalid` and `unchanged`.
`watch_files` polls the files of the last load (the TOML file and every secret file) by their
content, so a Secret swapped by Kubernetes's symlink dance counts, and a touch does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Literal

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.config import SECTIONS, Settings, load_settings
from gateway.errors import ConfigError
from gateway.observability.logging import get_logger

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.observability.metrics import Metrics

log = get_logger(__name__)

LIVE = frozenset({
    "session.secret", "cognito.client_secret", "cognito.identity_providers",
    "auth.rules", "auth.public_paths", "auth.api_paths", "auth.allowed_groups",
    "log.level", "log.access_log",
})
"""The settings a reload changes in a running gateway; any other change needs a restart."""

POLL_SECONDS = 2.0
Outcome = Literal["ok", "invalid", "unchanged"]
Apply = Callable[[Settings], None]


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """`section.key` of every setting whose value differs, in the order of the contract."""
    changed = []
    for section in SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        changed += [f"{section}.{f.name}" for f in fields(before)
                    if getattr(before, f.name) != getattr(after, f.name)]
    return changed


def keep_running_values(old: Settings, new: Settings, keys: list[str]) -> Settings:
    """`new`, with `keys` (`section.key`) set back to their values in `old`."""
    sections: dict[str, dict[str, Any]] = {}
    for key in keys:
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = getattr(getattr(old, section), name)
    return replace(new, **{section: replace(getattr(new, section), **values)
                           for section, values in sections.items()})


def _fingerprint(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class Reloader:
    """Re-reads the configuration and applies what may change live (see the module text)."""

    def __init__(self, settings: Settings, apply: Apply, metrics: Metrics, *,
                 path: Path | None, environ: Mapping[str, str] | None = None) -> None:
        self.current = settings
        self._apply = apply
        self._metrics = metrics
        self._path = path
        self._environ = os.environ if environ is None else environ
        self._fingerprints = self._fingerprints_of(self._files_of_load())

    def reload(self, trigger: str) -> Outcome:
        """Read the configuration again and apply it; the outcome is also counted and logged."""
        files: list[Path] = []
        try:
            new = load_settings(self._path, self._environ, files=files)
        except ConfigError as exc:
            self._fingerprints = self._fingerprints_of(self._read_attempt(files))
            log.error("config_reload_refused", trigger=trigger,
                      problems=[f"{p.key}: {p.message}" for p in exc.problems],
                      hint="the running configuration keeps serving; fix the problems and "
                           "reload again")
            return self._count("invalid")
        self._fingerprints = self._fingerprints_of(self._read_attempt(files))
        changed = changed_keys(self.current, new)
        if not changed:
            log.info("config_reload_unchanged", trigger=trigger)
            return self._count("unchanged")
        restart = [key for key in changed if key not in LIVE]
        if restart:
            log.warning("config_reload_needs_restart", trigger=trigger, keys=restart,
                        hint="these settings keep their running values until a restart")
        live = [key for key in changed if key in LIVE]
        if live:
            applied = keep_running_values(self.current, new, restart)
            self._apply(applied)
            self.current = applied
        log.info("config_reloaded", trigger=trigger, keys=live)
        return self._count("ok")

    def files_changed(self) -> bool:
        """True when a file of the last load reads differently now (or appeared, or went)."""
        return any(_fingerprint(path) != seen for path, seen in self._fingerprints.items())

    async def watch_files(self, *, clock: Clock = SYSTEM_CLOCK,
                          every: float = POLL_SECONDS) -> None:
        """Reload whenever `files_changed`, checking every `every` seconds; runs until
        cancelled."""
        while True:
            await clock.sleep(every)
            if self.files_changed():
                try:
                    self.reload("file_change")
                except Exception:  # a bug; the watch goes on, and the next change is applied
                    log.exception("config_reload_failed", trigger="file_change")

    def _count(self, outcome: Outcome) -> Outcome:
        self._metrics.config_reloads.labels(outcome=outcome).inc()
        return outcome

    def _read_attempt(self, files: list[Path]) -> list[Path]:
        return ([self._path] if self._path is not None else []) + files

    def _files_of_load(self) -> list[Path]:
        files: list[Path] = []
        with contextlib.suppress(ConfigError):  # what runs was given; watch what there is
            load_settings(self._path, self._environ, files=files)
        return self._read_attempt(files)

    @staticmethod
    def _fingerprints_of(paths: list[Path]) -> dict[Path, str | None]:
        return {path: _fingerprint(path) for path in dict.fromkeys(paths)}
