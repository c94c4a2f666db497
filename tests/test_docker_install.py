"""The Dockerfile's install, performed for real without a Docker engine, then served.

The build stage's ENV, WORKDIR, COPY (with .dockerignore applied) and RUN instructions are
read from the Dockerfile and carried out under a temporary root (absolute paths are taken
relative to it), so whatever `pip install` line the Dockerfile has is what runs here, in a
fresh virtualenv, from PyPI (the pip cache is kept). Then the final stage's environment,
ENTRYPOINT and CMD start the installed console script against a DevIdp, and its HEALTHCHECK
command is run as Docker would run it.

Slow-ish (a clean install: ~15-40 s with a warm pip cache); it runs in `make test`.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.demo.stack import free_port
from tests.conftest import gateway_env
from tests.support.processes import tail, wait_for_status

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.devidp import DevIdp

REPO = Path(__file__).resolve().parent.parent
ENV_REFERENCE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def get(self, word: str) -> list[str]:
        return [rest for w, rest in self.instructions if w == word]


def stages() -> list[Stage]:
    """The Dockerfile's stages, each with its instructions (continuations joined)."""
    lines = [line for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines()
             if not line.lstrip().startswith("#")]
    found: list[Stage] = []
    for line in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines():
        if not line.strip():
            continue
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            image, _, name = rest.partition(" AS ")
            found.append(Stage(image.strip(), name.strip()))
        else:
            found[-1].instructions.append((word.upper(), rest.strip()))
    return found


class ImageRoot:
    """A directory standing in for the image's root filesystem, and the stage's environment."""

    def __init__(self, root: Path, environ: Mapping[str, str]) -> None:
        self.root = root
        self.env = dict(environ)
        self.workdir = root

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def expand(self, value: str) -> str:
        return ENV_REFERENCE.sub(lambda m: self.env.get(m.group(1) or m.group(2), ""), value)

    def set_env(self, rest: str) -> None:
        """ENV K=V ...: absolute paths (also in PATH lists) are rebased onto the root."""
        for token in shlex.split(rest):
            name, _, value = token.partition("=")
            parts = [str(self.path(p)) if p.startswith("/") else p for p in value.split(":")]
            self.env[name] = self.expand(":".join(parts))


def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """(excluded?, pattern) in order; the last pattern matching a path or a parent decides."""
    rules = []
    for raw in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = "".join(
            "(.*/)?" if part == "**/" else ".*" if part == "**" else "[^/]*" if part == "*"
            else "[^/]" if part == "?" else part if part.startswith("[") else re.escape(part)
            for part in re.split(r"(\*\*/|\*\*|\*|\?|\[[^\]]*\])", pattern))
        rules.append((not negate, re.compile(regex)))
    return rules


def ignored(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    verdict = False
    for excluded, pattern in rules:
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            verdict = excluded
    return verdict


def copy_from_context(image: ImageRoot, rest: str) -> None:
    """COPY SRC... DEST from the repository (the build context), minus .dockerignore."""
    *sources, dest = shlex.split(rest)
    assert not any(s.startswith("--") for s in sources), "build-stage COPY takes no flags"
    rules = dockerignore()
    target = image.path(dest) if dest.startswith("/") else image.workdir / dest
    matched = [Path(p) for s in sources for p in sorted(glob.glob(str(REPO / s)))]
    assert matched, f"COPY {rest}: no source in the build context"
    for source in matched:
        relative = source.relative_to(REPO).as_posix()
        if ignored(relative, rules):
            continue
        if source.is_dir():
            for file in sorted(source.rglob("*")):
                inner = file.relative_to(REPO).as_posix()
                if file.is_file() and not ignored(inner, rules):
                    out = target / file.relative_to(source)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, out)
        else:
            out = target / source.name if dest.endswith("/") else target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, out)


def host_environ() -> dict[str, str]:
    """This process's environment without anything that would leak our own venv or config."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_", "GATEWAY_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@dataclass
class BuiltImage:
    root: Path
    venv: Path
    runtime_env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str]


@pytest.fixture
def gateway_port() -> int:
    """A port for the gateway process to bind itself (a process cannot take a socket of the
    test's): free right now, and bound by the process at its start."""
    return free_port()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """Carry out the build stage, then prepare the final stage's environment and commands."""
    build, final = stages()[0], stages()[-1]
    assert build.image == final.image, "the venv links to the build stage's interpreter"
    root = tmp_path_factory.mktemp("image")
    # The base image's interpreter is `python` on PATH.
    base_bin = root / "usr" / "local" / "bin"
    base_bin.mkdir(parents=True)
    (base_bin / "python").symlink_to(sys.executable)
    stage = ImageRoot(root, host_environ() | {"PATH": f"{base_bin}:{os.environ['PATH']}"})
    for word, rest in build.instructions:
        if word == "ARG":  # no --build-arg here: the default, seen by RUN as a variable
            name, _, default = rest.partition("=")
            stage.env[name.strip()] = default.strip()
        elif word == "ENV":
            stage.set_env(rest)
        elif word == "WORKDIR":
            stage.workdir = stage.path(rest)
            stage.workdir.mkdir(parents=True, exist_ok=True)
        elif word == "COPY":
            copy_from_context(stage, rest)
        elif word == "RUN":
            result = subprocess.run(["/bin/sh", "-c", rest], cwd=stage.workdir, env=stage.env,
                                    capture_output=True, text=True, timeout=300, check=False)
            assert result.returncode == 0, f"RUN {rest}\n{result.stdout}\n{result.stderr}"
        else:
            pytest.fail(f"the build stage uses {word}, which this test does not carry out")

    (copy,) = [r for r in final.get("COPY") if r.startswith(f"--from={build.name} ")]
    source, dest = shlex.split(copy)[1:]
    assert source == dest, "the venv must keep its path: its scripts name it"
    venv = root / dest.lstrip("/")
    runtime = ImageRoot(root, host_environ())
    for rest in final.get("ENV"):
        runtime.set_env(rest)
    (root / "tmp").mkdir(exist_ok=True)
    (check,) = final.get("HEALTHCHECK")
    return BuiltImage(root=root, venv=venv, runtime_env=runtime.env,
                      entrypoint=json.loads(final.get("ENTRYPOINT")[0]),
                      cmd=json.loads(final.get("CMD")[0]),
                      healthcheck=json.loads(check[check.index("CMD") + 3:]))


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")}


def test_the_build_stage_installs_the_project_and_its_speed_extra(image: BuiltImage) -> None:
    """The fresh venv has the console script, the gateway package and uvloop (`speed`)."""
    python = image.venv / "bin" / "python"
    result = subprocess.run(
        [str(python), "-c", "import gateway, uvloop, sys; print(gateway.__file__)"],
        env=image.runtime_env, cwd=image.root / "tmp", capture_output=True, text=True,
        timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(image.venv), "not the venv's own copy"
    assert (image.venv / "bin" / image.entrypoint[0]).is_file()


def test_the_installed_packages_are_the_pyproject_dependencies(image: BuiltImage) -> None:
    """Nothing from the test extra (pytest, mypy, ...) reaches the image."""
    result = subprocess.run(
        [str(image.venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        env=image.runtime_env, cwd=image.root / "tmp", capture_output=True, text=True,
        timeout=60, check=True)
    installed = {p["name"].lower() for p in json.loads(result.stdout)}
    assert {"cognito-gateway", "aiohttp", "pyjwt", "structlog", "uvloop"} <= installed
    assert not installed & {"pytest", "mypy", "ruff", "playwright", "pyyaml"}


def run_healthcheck(image: BuiltImage, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """The HEALTHCHECK CMD, as Docker runs it: exec form, the image's environment."""
    return subprocess.run(image.healthcheck, env=dict(env), capture_output=True, text=True,
                          timeout=30, check=False, cwd=image.root / "tmp")


@pytest.fixture
def gateway_log(tmp_path: Path) -> Path:
    return tmp_path / "gateway.log"


async def test_the_installed_gateway_serves_ping_ready_and_passes_its_healthcheck(
        image: BuiltImage, idp: DevIdp, upstream: str, gateway_url: str, gateway_port: int,
        gateway_log: Path) -> None:
    """ENTRYPOINT + CMD from the installed venv: /ping 200, /ready 200, HEALTHCHECK passes."""
    metrics_port = free_port()
    env = image.runtime_env | gateway_env(
        idp, upstream, gateway_url, GATEWAY_SERVER_LISTEN=f"127.0.0.1:{gateway_port}",
        GATEWAY_SERVER_METRICS_LISTEN=f"127.0.0.1:{metrics_port}")
    command = shutil.which(image.entrypoint[0], path=env["PATH"])
    assert command is not None
    assert Path(command).is_relative_to(image.venv)
    before = files_under(image.venv)
    with gateway_log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            command, *image.entrypoint[1:], *image.cmd, env=env, cwd=image.root / "tmp",
            stdout=sink, stderr=asyncio.subprocess.STDOUT)
    try:
        await wait_for_status(f"{gateway_url}/ping", 200, process, gateway_log)
        await wait_for_status(f"{gateway_url}/ready", 200, process, gateway_log)
        await wait_for_status(f"http://127.0.0.1:{metrics_port}/metrics", 200, process, gateway_log)
        healthy = await asyncio.to_thread(run_healthcheck, image, env)
        assert healthy.returncode == 0, healthy.stderr
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0, tail(gateway_log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    unhealthy = await asyncio.to_thread(run_healthcheck, image, env)
    assert unhealthy.returncode != 0, "the healthcheck passes with the gateway stopped"
    # A read-only root filesystem: running wrote nothing into the image's venv.
    assert files_under(image.venv) == before
