"""Headless Chromium (Debian's ``/usr/bin/chromium``) driven through playwright's async API.

``playwright install`` cannot download browsers here, so the system Chromium is launched by
path with flags that keep it offline and quiet. Tests marked ``browser`` should skip with
:data:`CHROMIUM_SKIP_REASON` when :func:`chromium_available` is false.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from playwright.async_api import BrowserContext, async_playwright

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = [
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "CHROMIUM_SKIP_REASON",
    "chromium_available",
    "chromium_context",
]

CHROMIUM_PATH: Final[Path] = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
"""The Chromium binary; ``$CHROMIUM_PATH`` overrides ``/usr/bin/chromium``."""

CHROMIUM_ARGS: Final[tuple[str, ...]] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
"""Command-line flags every launch uses (root in a container, no GPU, no outbound traffic)."""

CHROMIUM_SKIP_REASON: Final[str] = (
    "Chromium is not installed at /usr/bin/chromium: run scripts/install-test-deps.sh"
)
"""The skip reason to give when :func:`chromium_available` is false."""


def chromium_available() -> bool:
    """Whether the Chromium binary exists and is executable."""
    return CHROMIUM_PATH.is_file() and os.access(CHROMIUM_PATH, os.X_OK)


@contextlib.asynccontextmanager
async def chromium_context(**context_options: Any) -> AsyncIterator[BrowserContext]:
    """Launch headless Chromium and yield a fresh :class:`BrowserContext`.

    ``context_options`` go to ``Browser.new_context`` (e.g. ``base_url``,
    ``extra_http_headers``, ``ignore_https_errors``). The context starts with no cookies and
    no storage. On exit the context, the browser and playwright's driver are closed, in that
    order, even when the body raised.
    """
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM_PATH),
            headless=True,
            args=list(CHROMIUM_ARGS),
        )
        try:
            context = await browser.new_context(**context_options)
            try:
                yield context
            finally:
                await context.close()
        finally:
            await browser.close()
