"""The AWS ALB-compatible `x-amzn-oidc-data` assertion, and the key that verifies it.

`GET /oauth2/jwks.json` and `GET /oauth2/public-keys/<kid>` serve the verifying key.

An ES256 JWT in ALB's exact shape: header {typ, kid, alg, iss, client, signer, exp}, payload the
user claims plus exp and iss, every segment base64url WITH `=` padding, signature raw r||s.
Apps written for ALB verify it unchanged, fetching the key by kid from
`/oauth2/public-keys/<kid>` (PEM, like ALB's key endpoint) or `/oauth2/jwks.json`.

The P-256 key is derived from the first session key with HKDF, so every replica sharing the
session keys signs with the same key and kid, and rotating the session keys rotates it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.pages import json_response
from gateway.routing import Endpoint
from gateway.target import TARGET

if TYPE_CHECKING:
    from gateway.identity import Identity

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def derive_signing_key(secret: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key determined by `secret`."""
    material = HKDF(algorithm=hashes.SHA256(), length=48, salt=None,
                    info=b"cognito-gateway x-amzn-oidc-data ES256").derive(secret.encode())
    scalar = int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


class AlbDataSigner:
    """Signs identity assertions (their callers cache the headers per token)."""

    def __init__(self, secret: str, *, issuer: str, client_id: str, signer: str) -> None:
        self._key = derive_signing_key(secret)
        public = self._key.public_key()
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = hashlib.sha256(der).hexdigest()[:32]
        self.public_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        numbers = public.public_numbers()
        self.jwk = {"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
                    "x": _b64(numbers.x.to_bytes(32, "big")).rstrip("="),
                    "y": _b64(numbers.y.to_bytes(32, "big")).rstrip("=")}
        self._issuer = issuer
        self._client_id = client_id
        self._signer = signer

    def assertion(self, identity: Identity, *, exp: int) -> str:
        """The x-amzn-oidc-data value for this identity, valid until `exp`."""
        header = {"typ": "JWT", "kid": self.kid, "alg": "ES256", "iss": self._issuer,
                  "client": self._client_id, "signer": self._signer, "exp": exp}
        payload = {**_userinfo_claims(identity), "exp": exp, "iss": self._issuer}
        signing_input = ".".join(_b64(json.dumps(part, separators=(",", ":")).encode())
                                 for part in (header, payload))
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(),
                                                   ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _userinfo_claims(identity: Identity) -> dict[str, Any]:
    """Claims as Cognito's userInfo returns them: booleans as strings, plus sub and username."""
    claims: dict[str, Any] = {}
    for name, value in identity.claims.items():
        if name in {"cognito:username", "cognito:groups"}:
            continue
        claims[name] = ("true" if value else "false") if isinstance(value, bool) else value
    claims["sub"] = identity.sub
    claims["username"] = identity.username
    return claims


PUBLIC_KEYS_PREFIX = "/oauth2/public-keys/"


class AlbKeys:
    """The endpoints serving the signers' public keys: as a JWKS, and as PEM by kid.

    The first signer signs; the others are the keys of older session secrets still configured
    (a rotation under way), served so that an assertion signed before the rotation verifies.
    """

    def __init__(self, signers: list[AlbDataSigner]) -> None:
        self.use(signers)

    def use(self, signers: list[AlbDataSigner]) -> None:
        """Serve these signers' keys from now on (a reload)."""
        self._jwks = [signer.jwk for signer in signers]
        self._pems = {signer.kid: signer.public_pem for signer in signers}

    def endpoints(self) -> dict[str, Endpoint]:
        return {"/oauth2/jwks.json": Endpoint({"GET": self.jwks})}

    def prefixed(self) -> dict[str, Endpoint]:
        return {PUBLIC_KEYS_PREFIX: Endpoint({"GET": self.public_key})}

    async def jwks(self, _request: web.Request) -> web.StreamResponse:
        return json_response(200, {"keys": self._jwks},
                             headers={"Cache-Control": "max-age=3600"})

    async def public_key(self, request: web.Request) -> web.StreamResponse:
        pem = self._pems.get(request[TARGET].path[len(PUBLIC_KEYS_PREFIX):])
        if pem is None:
            raise web.HTTPNotFound(text="unknown key id")
        return web.Response(text=pem, content_type="application/x-pem-file",
                            headers={"Cache-Control": "max-age=3600"})
