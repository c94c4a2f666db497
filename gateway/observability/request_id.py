"""The request id: chosen once per request, on its log lines, sent upstream, returned.

It is the client's `X-Request-Id` when that is a sane token (<= 128 characters of
`[A-Za-z0-9._:-]`), else a new one: 32 hex digits of the operating system's CSPRNG, as
`uuid4().hex` gave (same shape, 128 random bits instead of 122). The random bytes are read 4 KiB
at a time and used 16 bytes per id, so an id costs a slice instead of a `getrandom` system call
and a UUID object (4 % of the gateway's CPU per request, profiled). Ids are random rather than
a counter on purpose: they are returned to every client, and a counter would tell anyone how
many requests the gateway serves.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Mapping

_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ID_BYTES = 16
POOL_BYTES = 4096

REQUEST_ID = web.RequestKey("request_id", str)


class RandomIds:
    """New request ids from a pool of CSPRNG bytes (refilled in a forked child)."""

    __slots__ = ("_at", "_pool")

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def __call__(self) -> str:
        at = self._at
        if at + ID_BYTES > len(self._pool):
            self._pool, at = os.urandom(POOL_BYTES), 0
        self._at = at + ID_BYTES
        return self._pool[at:at + ID_BYTES].hex()

    def forget(self) -> None:
        """Drop the pool (after fork: a child must never repeat its parent's ids)."""
        self._pool, self._at = b"", 0


new_request_id = RandomIds()
os.register_at_fork(after_in_child=new_request_id.forget)


def request_id_of(request: web.BaseRequest) -> str:
    """The request's X-Request-Id when it is well formed, else a new random id."""
    return request_id_in(request.headers)


def request_id_in(headers: Mapping[str, str]) -> str:
    """`request_id_of` a request's headers."""
    incoming = headers.get("X-Request-Id")
    if incoming is not None and _SANE_ID.fullmatch(incoming):
        return incoming
    return new_request_id()
