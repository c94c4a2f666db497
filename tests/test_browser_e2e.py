"""The demo, end to end in headless Chromium: redirect, the stand-in's hosted UI (a wrong
password, then the right one, or a federated provider), the demo app's page, cookie sizes and
attributes as a real browser stores them, and sign-out.

The sign-in page and the demo app are photographed on the way (PNG, under 200 KB each). They
land in a temporary directory; with UPDATE_SCREENSHOTS=1 they replace docs/screenshots/, the
pictures the README shows:

    UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/test_browser_e2e.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.demo.stack import DEMO_PASSWORD, DEMO_USER, DemoStack, start_demo
from tests.support.chromium import CHROMIUM_SKIP_REASON, chromium_available, chromium_context

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import Page

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
MAX_SCREENSHOT_BYTES = 200 * 1024
VIEWPORT = {"width": 1000, "height": 720}


@pytest.fixture
async def demo() -> AsyncIterator[DemoStack]:
    assert chromium_available(), CHROMIUM_SKIP_REASON
    stack = await start_demo(gateway_port=0, idp_port=0, upstream_port=0)
    yield stack
    await stack.stop()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where this run's pictures go: docs/screenshots/ with UPDATE_SCREENSHOTS=1."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path


async def photograph(page: Page, path: Path) -> None:
    """A viewport screenshot, small enough to commit."""
    picture = await page.screenshot()
    assert picture.startswith(b"\x89PNG")
    assert len(picture) < MAX_SCREENSHOT_BYTES, f"{path.name} is {len(picture)} bytes"
    path.write_bytes(picture)  # noqa: ASYNC240 - one small file, once per test


async def text(page: Page, selector: str) -> str:
    found = await page.text_content(selector)
    assert found is not None, selector
    return found.strip()


async def test_demo_sign_in_shows_who_you_are_and_signs_out(
        demo: DemoStack, screenshots: Path) -> None:
    """A wrong password is refused in Cognito's words; then the demo app shows the user."""
    async with chromium_context(viewport=VIEWPORT) as context:
        page = await context.new_page()
        await page.goto(f"{demo.gateway_url}/hello?from=chromium")
        assert page.url.startswith(f"{demo.idp.base_url}/login?")
        assert await text(page, "#appName") == "Demo app"
        assert await text(page, ".idpButton-customizable") == "Sign in with PartnerSAML"

        await page.fill("#signInFormUsername", DEMO_USER)
        await page.fill("#signInFormPassword", "not-the-password")
        await page.click("input[name=signInSubmitButton]")
        assert await text(page, "#loginErrorMessage") == "Incorrect username or password."
        await photograph(page, screenshots / "sign-in.png")

        await page.fill("#signInFormUsername", DEMO_USER)
        await page.fill("#signInFormPassword", DEMO_PASSWORD)
        await page.click("input[name=signInSubmitButton]")
        await page.wait_for_url(f"{demo.gateway_url}/hello?from=chromium")
        assert await text(page, "#user") == DEMO_USER
        assert await text(page, "#name") == "Demo User"
        assert await text(page, "#email") == "demo@example.com"
        assert await page.locator("#groups li").all_text_contents() == ["demo-users", "admins"]
        assert await text(page, "#verification") == "verified"
        assert (await text(page, "#token-expiry")).endswith("UTC")
        assert (await text(page, "#refresh")).endswith("UTC")
        identity = await text(page, "#identity")
        assert "X-Amzn-Oidc-Data" in identity
        await photograph(page, screenshots / "demo-app.png")

        cookies = await context.cookies(demo.gateway_url)
        gateway_cookies = [c for c in cookies if c["name"].startswith("_cognito_gateway")]
        assert gateway_cookies
        for cookie in cookies:
            assert len(cookie["name"]) + len(cookie["value"]) < 4096, cookie["name"]
        for cookie in gateway_cookies:
            assert cookie["httpOnly"]
            assert cookie["sameSite"] == "Lax"
        received = await text(page, "#headers")
        assert "_cognito_gateway" not in received
        # The stand-in runs under its own host name, so its cookies never reach the app.
        assert "XSRF-TOKEN" not in received
        assert "cognito=" not in received

        await page.click("text=Sign out")
        await page.wait_for_url(f"{demo.gateway_url}/oauth2/signed_out")
        assert "signed out" in (await page.content()).lower()
        await page.goto(f"{demo.gateway_url}/hello")
        assert page.url.startswith(f"{demo.idp.base_url}/login?")


async def test_the_provider_button_signs_in_a_federated_user(demo: DemoStack) -> None:
    """"Sign in with PartnerSAML" leads to that provider's page and back as its linked user."""
    async with chromium_context(viewport=VIEWPORT) as context:
        page = await context.new_page()
        await page.goto(f"{demo.gateway_url}/")
        await page.click("text=Sign in with PartnerSAML")
        assert "/simulated-idp/PartnerSAML/sign-in" in page.url
        assert await text(page, "#providerName") != ""
        await page.fill("#providerUserId", "carol@partner.example")
        await page.fill("#providerPassword", "carol-password-1")
        await page.click("#providerSubmit")
        await page.wait_for_url(f"{demo.gateway_url}/")
        assert await text(page, "#user") == "PartnerSAML_carol@partner.example"
        assert await text(page, "#name") == "Carol Partner"
        pool_group = f"{demo.idp.pool.pool_id}_PartnerSAML"
        assert await page.locator("#groups li").all_text_contents() == [pool_group]
