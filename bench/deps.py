"""The bench's own system packages, installed with apt-get only when missing.

The test suite does not need these, so scripts/install-test-deps.sh leaves them out: ``wrk``
(the HTTP load generator), ``util-linux`` (``taskset``), and, only for BENCH_PYTHON, Debian's
``python3.X-venv`` (the interpreter's ensurepip). ``apt-get update`` runs only when something
is missing; sudo is used only when not root. Nothing else is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


class MissingDependency(RuntimeError):
    """A package the bench needs is missing and could not be installed."""


def _installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                            capture_output=True, text=True, check=False, timeout=30)
    return "install ok installed" in status.stdout


def _as_root(argv: Sequence[str]) -> list[str]:
    if os.geteuid() == 0:
        return list(argv)
    if shutil.which("sudo") is None:
        raise MissingDependency(f"need root (or sudo) to run: {' '.join(argv)}")
    return ["sudo", "-n", *argv]


def apt_install(packages: Sequence[str], why: str) -> None:
    """Install the Debian `packages` that are not installed yet; say so, and why."""
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise MissingDependency(f"{why}: install by hand: {' '.join(missing)}")
    print(f"bench: installing {' '.join(missing)} with apt-get ({why})", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
        done = subprocess.run(_as_root(argv), capture_output=True, text=True,
                              env=env, check=False, timeout=900)
        if done.returncode != 0:
            raise MissingDependency(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}"
                                    f"{done.stderr[-2000:]}")


def ensure_load_tools() -> None:
    """wrk and taskset on PATH, installing them when missing."""
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        apt_install(["wrk", "util-linux"], "the bench's load generator and CPU pinning")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise MissingDependency(f"{tool} is not on PATH after installing it")


def ensure_venv_support(python: str) -> None:
    """Make `python -m venv` work: Debian splits ensurepip off into python3.X-venv."""
    probe = subprocess.run([python, "-c", "import ensurepip, sys; "
                            "print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                           capture_output=True, text=True, check=False, timeout=60)
    if probe.returncode == 0:
        return
    version = subprocess.run([python, "-c", "import sys; "
                              "print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                             capture_output=True, text=True, check=True, timeout=60)
    package = f"python{version.stdout.strip()}-venv"
    apt_install([package], f"BENCH_PYTHON={python} has no ensurepip, needed for its venv")
