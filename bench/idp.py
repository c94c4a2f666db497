"""The local Cognito stand-in as a subprocess, and real sign-ins through it.

The bench writes its own user pool (one user, one confidential client whose callback URLs are
those of every gateway of the run, plus a landing place on the upstream for minting bearer
tokens), runs ``cognito-gateway dev-idp`` with it, and signs in the way a browser without
JavaScript does (``tests.support.browser.ScriptedBrowser``): through the gateway, the hosted UI's
login form, and back.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from tests.support.browser import ScriptedBrowser
from tests.support.tokens import user_tokens

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

POOL_ID = "local-1_BenchPool1"
USERNAME = "bench"
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway user of a loopback stand-in
CLIENT_ID = "bench-client"
SESSION_COOKIE = "_cognito_gateway"


class SignInFailed(RuntimeError):
    """A scripted sign-in did not end with a working session."""


@dataclass(frozen=True)
class IdpSite:
    """Where the stand-in serves, and the client the gateways use."""

    port: int
    client_secret: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/{POOL_ID}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"


def _toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def write_pool(path: Path, gateway_urls: Sequence[str], token_callback: str) -> IdpSite:
    """Write the run's pool file; return the site with a fresh client secret (port unset: 0)."""
    secret = secrets.token_urlsafe(24)
    callbacks = [f"{url}/oauth2/callback" for url in gateway_urls] + [token_callback]
    logouts = [f"{url}/oauth2/signed_out" for url in gateway_urls]
    path.write_text(f"""# Written by the benchmark for one run.
pool_id = "{POOL_ID}"
region = "local-1"

[[users]]
username = "{USERNAME}"
password = "{PASSWORD}"
email = "bench@example.com"
email_verified = true
groups = ["bench-users"]

[[clients]]
client_id = "{CLIENT_ID}"
client_secret = "{secret}"
allowed_flows = ["code"]
allowed_scopes = ["openid", "email", "profile"]
callback_urls = {_toml_list(callbacks)}
logout_urls = {_toml_list(logouts)}
""", encoding="utf-8")
    return IdpSite(0, secret)


def command(pool: Path, port: int) -> list[str]:
    """The command line that serves `pool` on 127.0.0.1:`port`."""
    return [sys.executable, "-m", "gateway", "dev-idp", "--host", "127.0.0.1",
            "--port", str(port), "--config", str(pool)]


async def sign_in(gateway_url: str, *, verify: bool = True) -> str:
    """Sign in through the gateway like a browser; return the session's Cookie header value.

    The browser must end up back at the gateway holding a session cookie, and (when `verify`)
    the session must then answer /oauth2/userinfo with 200, or SignInFailed says why.
    """
    async with ScriptedBrowser() as browser:
        page = await browser.sign_in(f"{gateway_url}/oauth2/sign_in?rd=/", USERNAME, PASSWORD)
        if not page.url.startswith(gateway_url):
            raise SignInFailed(f"sign-in ended at {page.url} (status {page.status})")
        cookies = {name: value for name, value in browser.cookies_for(gateway_url).items()
                   if name == SESSION_COOKIE or name.startswith(SESSION_COOKIE + "_")}
    if not cookies:
        raise SignInFailed(f"no session cookie after signing in at {gateway_url}")
    header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    if not verify:
        return header
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as client, client.get(
            f"{gateway_url}/oauth2/userinfo", headers={"Cookie": header}) as response:
        if response.status != 200:
            raise SignInFailed(f"the new session gets {response.status} at /oauth2/userinfo")
    return header


async def access_token(site: IdpSite, token_callback: str) -> str:
    """An access token for the bench user, from a code flow straight at the stand-in."""
    tokens = await user_tokens(site.base_url, client_id=CLIENT_ID,
                               client_secret=site.client_secret, callback=token_callback,
                               username=USERNAME, password=PASSWORD)
    token = tokens.get("access_token")
    if not isinstance(token, str):
        raise SignInFailed("the token response has no access_token")
    return token
