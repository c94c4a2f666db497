"""Helpers for tests that run the gateway as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import aiohttp
import pytest

if TYPE_CHECKING:
    from pathlib import Path


def tail(log: Path) -> str:
    """The end of a process's output, for failure messages."""
    return log.read_text(encoding="utf-8", errors="replace")[-4000:]


async def wait_for_status(url: str, status: int, process: asyncio.subprocess.Process,
                          log: Path, within: float = 20.0) -> None:
    """Poll `url` until it answers `status`; fail with the output if the process exits first."""
    deadline = time.monotonic() + within
    # Each probe is bounded too: a port that accepts and never answers must not hang the wait.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as client:
        while time.monotonic() < deadline:
            assert process.returncode is None, tail(log)
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with client.get(url) as response:
                    if response.status == status:
                        return
            await asyncio.sleep(0.05)
    pytest.fail(f"{url} did not answer {status} within {within} s:\n{tail(log)}")
