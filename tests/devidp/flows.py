"""Helpers for the dev IdP tests: the test pool and a client that walks the flows."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt

from gateway.devidp import AppClient, DevIdp, User, UserPool

if TYPE_CHECKING:
    import aiohttp
    from jwt.types import Options

CALLBACK = "http://app.test/oauth2/callback"
SIGNED_OUT = "http://app.test/oauth2/signed_out"
SECRETS = {
    "web": "web-secret",
    "rotating": "rotating-secret",
    "graceful": "graceful-secret",
    "short": "short-secret",
    "machine": "machine-secret",
    "norevoke": "norevoke-secret",
}
ALICE_PASSWORD = "alice-password-1"


def make_pool() -> UserPool:
    """Two users and one app client per behaviour under test."""

    def code_client(client_id: str, **kw: Any) -> AppClient:
        return AppClient(
            client_id=client_id,
            client_secret=SECRETS.get(client_id),
            callback_urls=[CALLBACK, "http://localhost:8000/cb"],
            logout_urls=[SIGNED_OUT],
            **kw,
        )

    return UserPool(
        users=[
            User(
                username="alice",
                password=ALICE_PASSWORD,
                email="alice@example.com",
                email_verified=True,
                groups=["admins", "staff"],
                attributes={
                    "name": "Alice Liddell",
                    "custom:tenant": "acme",
                    "phone_number": "+15550100",
                },
            ),
            User(username="bob", password="bob-password-1", sub="bob-sub-not-a-uuid"),
        ],
        clients=[
            code_client("web", allowed_scopes=["openid", "email", "profile", "phone", "api/read"]),
            code_client("spa"),
            code_client("rotating", refresh_token_rotation=True),
            code_client("graceful", refresh_token_rotation=True, rotation_grace_seconds=1),
            code_client(
                "short",
                auth_code_validity_seconds=1,
                access_token_validity_seconds=1,
                refresh_token_validity_seconds=1,
            ),
            code_client("implicit", allowed_flows=["implicit"]),
            code_client("norevoke", revocation_enabled=False),
            AppClient(
                client_id="machine",
                client_secret=SECRETS["machine"],
                allowed_flows=["client_credentials"],
                allowed_scopes=["api/read", "api/write"],
            ),
        ],
        resource_servers={"api": ["read", "write", "admin"]},
    )


def pkce_pair() -> tuple[str, str]:
    """A (verifier, S256 challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query_of(location: str) -> dict[str, str]:
    """The query parameters of a URL, one value each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def basic(client_id: str, secret: str) -> str:
    """An HTTP Basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


class FormParser(HTMLParser):
    """Collects the sign-in form's attributes, its inputs and any error message."""

    def __init__(self) -> None:
        super().__init__()
        self.form: dict[str, str | None] = {}
        self.inputs: dict[str, dict[str, str | None]] = {}
        self.error: str | None = None
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.form = found
        elif tag == "input" and found.get("name"):
            self.inputs[str(found["name"])] = found
        elif tag == "p" and found.get("id") == "loginErrorMessage":
            self._in_error = True

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.error = data
            self._in_error = False


def parse_form(page: str) -> FormParser:
    """The sign-in form found in a page."""
    parser = FormParser()
    parser.feed(page)
    return parser


class Flows:
    """Drives a DevIdp the way a browser and a relying party would."""

    def __init__(self, idp: DevIdp, http: aiohttp.ClientSession) -> None:
        self.idp = idp
        self.http = http

    def authorize_url(self, **params: str) -> str:
        """/oauth2/authorize with defaults for the web client."""
        query = {"response_type": "code", "client_id": "web", "redirect_uri": CALLBACK}
        query.update(params)
        return f"{self.idp.base_url}/oauth2/authorize?{urlencode(query)}"

    async def get(self, url: str, **kw: Any) -> aiohttp.ClientResponse:
        """GET without following redirects; the body is read before returning."""
        async with self.http.get(url, allow_redirects=False, **kw) as response:
            await response.read()
            return response

    async def sign_in(
        self, username: str = "alice", password: str = ALICE_PASSWORD, **params: str
    ) -> str:
        """Authorize, fill in the /login form, and return the final redirect's Location."""
        response = await self.get(self.authorize_url(**params))
        assert response.status == 302
        login = response.headers["Location"]
        if not login.startswith(f"{self.idp.base_url}/login?"):
            return login  # silent sign-in through the hosted-UI session, or an error
        page = await self.get(login)
        form = parse_form(await page.text())
        action = str(form.form["action"])
        fields = {
            "_csrf": str(form.inputs["_csrf"]["value"]),
            "username": username,
            "password": password,
            "cognitoAsfData": "",
            "signInSubmitButton": "Sign in",
        }
        async with self.http.post(
            f"{self.idp.base_url}{action}", data=fields, allow_redirects=False
        ) as submitted:
            await submitted.read()
            assert submitted.status == 302, await submitted.text()
            return submitted.headers["Location"]

    async def code(self, **params: str) -> str:
        """A fresh authorization code from a signed-in authorize request."""
        location = await self.sign_in(**params)
        return query_of(location)["code"]

    async def token(
        self, data: dict[str, str], auth: str | None = None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """POST /oauth2/token: (status, headers, JSON body)."""
        headers = {"Authorization": auth} if auth is not None else {}
        async with self.http.post(
            f"{self.idp.base_url}/oauth2/token", data=data, headers=headers
        ) as response:
            body = await response.json(content_type=None)
            return response.status, dict(response.headers), body

    async def exchange(
        self,
        code: str,
        client_id: str = "web",
        redirect_uri: str = CALLBACK,
        **extra: str,
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Redeem a code with client_secret_basic (client_id only for a public client)."""
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        data.update(extra)
        secret = SECRETS.get(client_id)
        if secret is None:
            data["client_id"] = client_id
            return await self.token(data)
        return await self.token(data, auth=basic(client_id, secret))

    async def tokens(self, client_id: str = "web", **params: str) -> dict[str, Any]:
        """Sign in and redeem the code: the token response body."""
        status, _, body = await self.exchange(
            await self.code(client_id=client_id, **params), client_id=client_id
        )
        assert status == 200, body
        return body

    async def refresh(
        self, refresh_token: str, client_id: str = "web"
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Redeem a refresh token with client_secret_post."""
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        data["client_id"] = client_id
        if client_id in SECRETS:
            data["client_secret"] = SECRETS[client_id]
        return await self.token(data)

    async def userinfo(self, access_token: str) -> aiohttp.ClientResponse:
        """GET /oauth2/userInfo with a Bearer token; the body is read."""
        return await self.get(
            f"{self.idp.base_url}/oauth2/userInfo",
            headers={"Authorization": f"Bearer {access_token}"},
        )

    async def jwks(self) -> jwt.PyJWKSet:
        """The JWKS as served."""
        async with self.http.get(f"{self.idp.issuer}/.well-known/jwks.json") as response:
            return jwt.PyJWKSet.from_dict(await response.json())

    async def verify(self, token: str, **options: Any) -> dict[str, Any]:
        """Verify a token against the served JWKS and issuer; return its claims."""
        kid = jwt.get_unverified_header(token)["kid"]
        key = (await self.jwks())[kid]
        checks: Options = {"verify_aud": False, **options}  # type: ignore[typeddict-item]
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            issuer=self.idp.issuer,
            options=checks,
        )
        return claims
