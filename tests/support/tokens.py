"""Tokens straight from the dev IdP, for bearer-token tests: a code flow whose callback is the
echo upstream, then a client_secret_basic exchange at /oauth2/token."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from tests.support.browser import ScriptedBrowser


async def user_tokens(idp_base_url: str, *, client_id: str, client_secret: str,
                      callback: str, username: str, password: str,
                      scope: str = "openid email profile") -> dict[str, Any]:
    """The token response for `username` signing in to `client_id`."""
    query = urlencode({"response_type": "code", "client_id": client_id,
                       "redirect_uri": callback, "scope": scope, "state": "s"})
    async with ScriptedBrowser() as browser:
        page = await browser.sign_in(f"{idp_base_url}/oauth2/authorize?{query}",
                                     username, password)
    code = parse_qs(urlsplit(str(page.url)).query)["code"][0]
    async with aiohttp.ClientSession() as http, http.post(
            f"{idp_base_url}/oauth2/token",
            headers={"Authorization": aiohttp.encode_basic_auth(client_id, client_secret)},
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": callback}) as resp:
        body: dict[str, Any] = await resp.json(content_type=None)
        assert resp.status == 200, body
    return body
