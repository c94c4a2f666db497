"""The gateway's cookies: chunked so that no single cookie ever exceeds the browser limit.

Browsers silently drop a cookie whose name and value exceed 4096 bytes, which turns into a
redirect loop. A long value is split over `<name>`, `<name>_1`, `<name>_2`, ... each under
`MAX_COOKIE_BYTES`; reading concatenates them in order, and writing deletes leftover chunks of a
longer earlier value. Every gateway cookie name starts with the configured cookie name, which
is how the proxy recognises (and withholds) them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from aiohttp import web

MAX_COOKIE_BYTES = 4000
MAX_CHUNKS = 8


@dataclass(frozen=True)
class CookiePolicy:
    name: str
    secure: bool
    samesite: str

    @cached_property
    def chunk_names(self) -> tuple[str, ...]:
        return (self.name, *(f"{self.name}_{i}" for i in range(1, MAX_CHUNKS)))

    def read(self, request: web.Request) -> str | None:
        """The value spread over this cookie's chunks, or None when there is none."""
        own = self._own_cookies(request.headers.get("Cookie", ""))
        parts = []
        for name in self.chunk_names:
            part = own.get(name)
            if part is None:
                break
            parts.append(part)
        return "".join(parts) or None

    def _own_cookies(self, header: str) -> dict[str, str]:
        # Only our cookies, whose values are base64url: a split is enough, and much cheaper than
        # aiohttp's general parser on a multi-kilobyte header (profiled: ~10% of a request).
        found = {}
        for pair in header.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and self.owns(name):
                found[name] = value.strip('"')
        return found

    def write(self, request: web.Request, response: web.StreamResponse, value: str, *,
              max_age: int) -> None:
        """Set the value in as many chunks as it needs; drop chunks the request had beyond them."""
        size = MAX_COOKIE_BYTES - len(self.name) - 3
        chunks = [value[i:i + size] for i in range(0, len(value), size)]
        if len(chunks) > MAX_CHUNKS:
            raise ValueError(f"session of {len(value)} bytes exceeds {MAX_CHUNKS} cookies")
        names = self.chunk_names
        for name, chunk in zip(names, chunks, strict=False):
            self.set(response, name, chunk, max_age=max_age)
        for name in names[len(chunks):]:
            if name in request.cookies:
                self.delete(response, name)

    def clear(self, request: web.Request, response: web.StreamResponse) -> None:
        """Delete every chunk the request carried."""
        for name in self.chunk_names:
            if name in request.cookies:
                self.delete(response, name)

    def set(self, response: web.StreamResponse, name: str, value: str, *, max_age: int,
            path: str = "/") -> None:
        response.set_cookie(name, value, max_age=max_age, path=path, secure=self.secure,
                            httponly=True, samesite=self.samesite.capitalize())

    def delete(self, response: web.StreamResponse, name: str, *, path: str = "/") -> None:
        response.del_cookie(name, path=path, secure=self.secure, httponly=True,
                            samesite=self.samesite.capitalize())

    def owns(self, cookie_name: str) -> bool:
        """True for any cookie the gateway sets (session chunks, sign-in state)."""
        return cookie_name == self.name or cookie_name.startswith(self.name + "_")
