"""Authenticated encryption of cookie payloads with rotating Fernet keys.

The first key encrypts; every key decrypts, so adding a new key in front rotates without
signing anyone out. A payload that fails authentication, is older than `ttl`, or is not JSON
reads as None: a tampered cookie is simply no cookie. Timestamps come from the clock.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.clock import SYSTEM_CLOCK, Clock


class Cipher:
    def __init__(self, keys: list[str], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        self._clock = clock

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
