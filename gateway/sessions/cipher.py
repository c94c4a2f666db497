"""Authenticated encryption of cookie payloads with rotating Fernet keys.

The first key encrypts; every key decrypts, so adding a new key in front rotates without
signing anyone out. A payload that fails authentication, is older than `ttl`, or is not JSON
reads as None: a tampered cookie is simply no cookie. Timestamps come from the clock.

`rekey` swaps the keys in place (a configuration reload); `current` tells whether a token was
sealed with the first key, so that a cookie sealed with a retired key can be sealed again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.clock import SYSTEM_CLOCK, Clock

_HMAC_BYTES = 32


class Cipher:
    """Seals and opens session payloads with Fernet keys: the first seals, all open."""

    def __init__(self, keys: list[str], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self.rekey(keys)

    def rekey(self, keys: list[str]) -> None:
        """Seal with `keys[0]` from now on and open with any of `keys` (and no other)."""
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        # Fernet's signing key is the first half of the key (the Fernet spec).
        self._signing_key = base64.urlsafe_b64decode(keys[0].encode())[:16]
        self.rotating = len(keys) > 1

    def seal(self, payload: dict[str, Any]) -> str:
        data = json.dumps(payload, separators=(",", ":")).encode()
        return self._fernet.encrypt_at_time(data, int(self._clock.time())).decode("ascii")

    def open(self, token: str, *, ttl: int) -> dict[str, Any] | None:
        try:
            data = json.loads(self._fernet.decrypt_at_time(
                token.encode("ascii"), ttl, int(self._clock.time())))
        except (InvalidToken, UnicodeEncodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def current(self, token: str) -> bool:
        """True unless `token` carries the HMAC of another key than the first: a token sealed
        with a retired key (checked without decrypting; always True with a single key)."""
        if not self.rotating:
            return True
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (UnicodeEncodeError, ValueError):
            return True  # not a token at all: opening it fails, nothing to seal again
        signed, mac = raw[:-_HMAC_BYTES], raw[-_HMAC_BYTES:]
        return hmac.compare_digest(hmac.new(self._signing_key, signed, hashlib.sha256).digest(),
                                   mac)
