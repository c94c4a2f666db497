"""Which Python runs the gateway, how it was built, and a venv for another one.

PGO and LTO show in ``sysconfig``'s ``CONFIG_ARGS`` (``--enable-optimizations``,
``--with-lto``) when the interpreter was configured with them, as pyenv and python.org builds
are. Debian builds its python3.X with PGO and LTO on amd64 through its own rules and keeps
those flags out of sysconfig on purpose, so for a Debian-packaged interpreter the package is
recorded too. ``BENCH_PYTHON=/usr/bin/python3.11`` makes the bench run the gateway under that
interpreter: a venv for it is created under the run directory and the project installed into
it (again only when pyproject.toml changed). ``BENCH_COMPARE_PYTHON`` does the same for a
second gateway that the same run measures next to the first, interleaved, which is the only
way to see a difference between interpreters smaller than the noise between runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.deps import ensure_venv_support

_FACTS = r"""
import json, platform, sys, sysconfig
from importlib import metadata
args = sysconfig.get_config_var("CONFIG_ARGS") or ""
def installed(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
print(json.dumps({
    "executable": sys.executable,
    "real_executable": __import__("os").path.realpath(sys.executable),
    "version": platform.python_version(),
    "implementation": platform.python_implementation(),
    "build": " ".join(platform.python_build()),
    "compiler": platform.python_compiler(),
    "pgo": "--enable-optimizations" in args,
    "lto": "--with-lto" in args,
    "config_args": args,
    "py_cflags": sysconfig.get_config_var("PY_CFLAGS") or "",
    "packages": {name: installed(name) for name in (
        "aiohttp", "uvloop", "multidict", "yarl", "propcache", "cryptography", "pyjwt",
        "structlog", "prometheus-client", "httptools")},
}))
"""


def facts(python: str) -> dict[str, Any]:
    """What `python` says about itself, plus the Debian package that owns it, if any."""
    out = subprocess.run([python, "-c", _FACTS], capture_output=True, text=True,  # noqa: S603
                         check=True, timeout=60)
    found: dict[str, Any] = json.loads(out.stdout)
    found["debian_package"] = _debian_package(found["real_executable"])
    if found["debian_package"] and not (found["pgo"] or found["lto"]):
        found["build_note"] = ("Debian builds python3.X with PGO and LTO on amd64 outside "
                               "configure; its CONFIG_ARGS does not show them")
    return found


def _debian_package(path: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    owner = subprocess.run(["dpkg-query", "-S", path], capture_output=True,  # noqa: S607,S603
                           text=True, check=False, timeout=30)
    if owner.returncode != 0:
        return None
    package = owner.stdout.split(":", 1)[0].strip()
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],  # noqa: S607,S603
                             capture_output=True, text=True, check=False, timeout=30)
    return f"{package} {version.stdout.strip()}".strip()


def gateway_command(run_dir: Path, project: Path) -> tuple[list[str], str]:
    """The `cognito-gateway` to run and the python behind it.

    BENCH_GATEWAY names one outright (another checkout's build, say). Without it or
    BENCH_PYTHON: the one installed next to the running interpreter (the project's venv).
    With BENCH_PYTHON: the one in a venv of that interpreter under `run_dir`, created and
    filled with the project (``.[speed]``, what the Dockerfile installs) when missing or stale.
    """
    chosen = os.environ.get("BENCH_GATEWAY", "").strip()
    if chosen:
        return [chosen], _shebang_python(Path(chosen))
    other = os.environ.get("BENCH_PYTHON", "").strip()
    if not other:
        here = Path(sys.executable).parent / "cognito-gateway"
        if not here.exists():
            raise FileNotFoundError(f"{here} is missing: install the project first (make install)")
        return [str(here)], sys.executable
    return venv_gateway(other, run_dir, project, variable="BENCH_PYTHON")


def comparison_gateway(run_dir: Path, project: Path) -> tuple[list[str], str] | None:
    """A second gateway under BENCH_COMPARE_PYTHON, to measure in the same run; or None."""
    other = os.environ.get("BENCH_COMPARE_PYTHON", "").strip()
    if not other:
        return None
    return venv_gateway(other, run_dir, project, variable="BENCH_COMPARE_PYTHON")


def venv_gateway(name: str, run_dir: Path, project: Path, *,
                 variable: str) -> tuple[list[str], str]:
    """`cognito-gateway` in a venv of interpreter `name` under `run_dir` (made when needed)."""
    python = shutil.which(name) or name
    if not Path(python).exists():
        raise FileNotFoundError(f"{variable}={name}: no such interpreter")
    venv = run_dir / ("venv-" + hashlib.sha256(
        os.path.realpath(python).encode()).hexdigest()[:10])
    _ensure_venv(python, venv, project)
    return [str(venv / "bin" / "cognito-gateway")], str(venv / "bin" / "python")


def _shebang_python(script: Path) -> str:
    try:
        first = script.read_bytes()[:300].split(b"\n", 1)[0].decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise FileNotFoundError(f"BENCH_GATEWAY={script}: cannot read it ({exc})") from exc
    if not first.startswith("#!"):
        raise FileNotFoundError(f"BENCH_GATEWAY={script}: not a console script (no #! line)")
    return first[2:].strip().split()[0]


def _ensure_venv(python: str, venv: Path, project: Path) -> None:
    stamp = venv / ".bench-installed"
    wanted = hashlib.sha256((project / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text(encoding="ascii") == wanted:
        return
    if not (venv / "bin" / "python").exists():
        print(f"bench: creating a venv for BENCH_PYTHON={python} in {venv}", flush=True)
        ensure_venv_support(python)
        subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)  # noqa: S603
    print("bench: installing the project into it (pip install -e '.[speed]')", flush=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, timeout=600)  # noqa: S603
    subprocess.run([*pip, "-e", f"{project}[speed]"], check=True, timeout=900)  # noqa: S603
    stamp.write_text(wanted, encoding="ascii")
