"""The demo, end to end in headless Chromium: redirect, hosted-UI form, identity headers,
cookie sizes and attributes as a real browser stores them, and sign-out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.demo.stack import DEMO_PASSWORD, DEMO_USER, DemoStack, start_demo
from tests.support.chromium import CHROMIUM_SKIP_REASON, chromium_available, chromium_context

pytestmark = pytest.mark.browser


@pytest.fixture
async def demo() -> AsyncIterator[DemoStack]:
    assert chromium_available(), CHROMIUM_SKIP_REASON
    stack = await start_demo(gateway_port=0, idp_port=0, upstream_port=0)
    yield stack
    await stack.stop()


async def test_demo_sign_in_in_chromium_shows_identity_headers_and_small_cookies(
        demo: DemoStack) -> None:
    """Open the demo URL, sign in at the stand-in's form, land on the upstream page."""
    async with chromium_context() as context:
        page = await context.new_page()
        await page.goto(f"{demo.gateway_url}/hello?from=chromium")
        assert page.url.startswith(f"{demo.idp.base_url}/login?")
        await page.fill("#signInFormUsername", DEMO_USER)
        await page.fill("#signInFormPassword", DEMO_PASSWORD)
        await page.click("input[name=signInSubmitButton]")
        await page.wait_for_url(f"{demo.gateway_url}/hello?from=chromium")
        assert await page.text_content("#user") == DEMO_USER
        identity = await page.text_content("#identity")
        assert identity is not None
        assert "demo@example.com" in identity
        assert "X-Amzn-Oidc-Data" in identity
        cookies = await context.cookies(demo.gateway_url)
        gateway_cookies = [c for c in cookies if c["name"].startswith("_cognito_gateway")]
        assert gateway_cookies
        for cookie in cookies:
            assert len(cookie["name"]) + len(cookie["value"]) < 4096, cookie["name"]
        for cookie in gateway_cookies:
            assert cookie["httpOnly"]
            assert cookie["sameSite"] == "Lax"
        headers_table = await page.text_content("#headers")
        assert headers_table is not None
        assert "_cognito_gateway" not in headers_table

        await page.click("text=Sign out")
        await page.wait_for_url(f"{demo.gateway_url}/oauth2/signed_out")
        assert "signed out" in (await page.content()).lower()
        await page.goto(f"{demo.gateway_url}/hello")
        assert page.url.startswith(f"{demo.idp.base_url}/login?")
