"""The pool's RSA signing keys: one for ID tokens, one for access tokens, as Cognito has."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

_KEY_SIZE = 2048


@dataclass(frozen=True)
class SigningKey:
    """One RSA key pair and its key id."""

    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh 2048-bit key with a random kid."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
        # Cognito kids are base64 of a SHA-256-sized value; any unique string serves.
        kid = base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
        return cls(kid=kid, private_key=key)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        """The public half, for verifying what this key signed."""
        return self.private_key.public_key()

    def jwk(self) -> dict[str, str]:
        """The public key as a JWKS entry, in Cognito's field set."""
        numbers = self.public_key.public_numbers()
        return {
            "alg": "RS256",
            "e": _b64_uint(numbers.e),
            "kid": self.kid,
            "kty": "RSA",
            "n": _b64_uint(numbers.n),
            "use": "sig",
        }

    def sign(self, claims: dict[str, Any]) -> str:
        """An RS256 JWT of the claims with the header {kid, alg} and nothing else."""
        return jwt.encode(
            claims,
            self.private_key,
            algorithm="RS256",
            headers={"kid": self.kid, "typ": None},
            sort_headers=False,
        )


@dataclass(frozen=True)
class SigningKeys:
    """The pair of keys a pool signs with: `id` for ID tokens, `access` for access tokens."""

    id: SigningKey
    access: SigningKey

    @classmethod
    def generate(cls) -> SigningKeys:
        """Two fresh keys with distinct kids."""
        return cls(id=SigningKey.generate(), access=SigningKey.generate())

    def rekeyed(self) -> SigningKeys:
        """New key material under the same kids: an IdP (or an impostor) whose signatures no
        longer match the keys it published under those kids, for tests of verification."""
        return SigningKeys(id=SigningKey(self.id.kid, SigningKey.generate().private_key),
                           access=SigningKey(self.access.kid, SigningKey.generate().private_key))

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS document: both public keys, ID key first."""
        return {"keys": [self.id.jwk(), self.access.jwk()]}


def _b64_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
