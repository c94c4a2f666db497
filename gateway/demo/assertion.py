"""Reading `x-amzn-oidc-data` the way an app written for an AWS ALB does.

The demo upstream is such an app: it takes the key id from the assertion's header, fetches the
PEM public key for it (ALB: `https://public-keys.auth.elb.<region>.amazonaws.com/<kid>`; the
gateway: `<gateway>/oauth2/public-keys/<kid>`), and verifies the ES256 signature and `exp`
with PyJWT. It deliberately shares no code with the gateway's signer, so the demo page only
says "verified" when an independent implementation agrees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt

KEY_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=3)
_KID = re.compile(r"[A-Za-z0-9-]{1,64}")  # ALB's are UUIDs, the gateway's hex: never a path


@dataclass(frozen=True)
class Assertion:
    """The claims and header of an assertion, and whether (and how) it was verified."""

    claims: dict[str, Any]
    header: dict[str, Any]
    verified: bool
    detail: str


@dataclass
class AssertionReader:
    """Verifies assertions with keys fetched from `public_keys_url/<kid>`, cached by kid.

    Without a `public_keys_url` the claims are decoded unverified and say so.
    """

    public_keys_url: str | None
    _keys: dict[str, str] = field(default_factory=dict)

    async def read(self, http: aiohttp.ClientSession, token: str) -> Assertion:
        """The assertion's claims; `verified` is True only for a good signature before exp."""
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            return Assertion({}, {}, verified=False, detail=f"not a JWT ({exc})")
        kid = header.get("kid")
        if self.public_keys_url is None or not isinstance(kid, str) or not _KID.fullmatch(kid):
            return Assertion(claims, header, verified=False, detail="no key to verify it with")
        try:
            pem = await self._key(http, kid)
            verified = jwt.decode(token, pem, algorithms=["ES256"],
                                  options={"require": ["exp", "iss"]})
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Assertion(claims, header, verified=False,
                             detail=f"key {kid} unavailable ({type(exc).__name__})")
        except jwt.PyJWTError as exc:
            return Assertion(claims, header, verified=False, detail=f"signature refused: {exc}")
        return Assertion(verified, header, verified=True,
                         detail=f"ES256 signature verified with key {kid}")

    async def _key(self, http: aiohttp.ClientSession, kid: str) -> str:
        if kid not in self._keys:
            url = f"{self.public_keys_url}/{kid}"
            async with http.get(url, timeout=KEY_FETCH_TIMEOUT) as response:
                response.raise_for_status()
                self._keys[kid] = await response.text()
        return self._keys[kid]
