"""The gateway's cookies: chunked so that no single cookie ever exceeds the browser limit.

Browsers silently drop a cookie whose name and value exceed 4096 bytes, which turns into a
redirect loop. A long value is split over `<name>`, `<name>_1`, `<name>_2`, ... each under
`MAX_COOKIE_BYTES`; reading concatenates them in order, and writing deletes leftover chunks of a
longer earlier value. Every gateway cookie name starts with the configured cookie name, which
is how the proxy recognises (and withholds) them.

Cookies are rendered here as `Set-Cookie` header values (`set_headers`), so that the session
layer can write them from aiohttp's `on_response_prepare`, where `response.set_cookie` is too
late (aiohttp serialises its cookie jar before that signal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from http.cookies import Morsel
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from aiohttp import web

MAX_COOKIE_BYTES = 4000
MAX_CHUNKS = 8


def pair_spans(header: str) -> Iterator[tuple[int, int, int]]:
    """Where each `name=value` pair of a Cookie header lies, in order: its (start, equals,
    end) offsets between `;`s, `equals` -1 when it has no `=`. Found with str.find (memchr):
    str.split's byte-by-byte scan of a kilobyte-long sealed value cost more than the rest of
    reading the header."""
    start, end_of_header, find = 0, len(header), header.find
    while start < end_of_header:
        end = find(";", start)
        if end < 0:
            end = end_of_header
        yield start, find("=", start, end), end
        start = end + 1


@dataclass(frozen=True)
class CookiePolicy:
    """The session cookie's name and attributes, and its split into numbered chunks."""

    name: str
    secure: bool
    samesite: str
    # The last Cookie header parsed (the object itself) and what it held: see `_parsed`.
    _last: list[Any] = field(default_factory=lambda: [None, {}, None], init=False,
                             repr=False, compare=False)

    @cached_property
    def chunk_names(self) -> tuple[str, ...]:
        return (self.name, *(f"{self.name}_{i}" for i in range(1, MAX_CHUNKS)))

    def own_cookies(self, header: str) -> dict[str, str]:
        """The gateway's cookies in a Cookie header, by name."""
        return dict(self._parsed(header)[0])

    def read(self, request: web.BaseRequest) -> str | None:
        """The value spread over this cookie's chunks, or None when there is none."""
        return self.sealed_in(request.headers.get("Cookie", ""))

    def sealed_in(self, header: str) -> str | None:
        """`read` of a Cookie header."""
        return self._parsed(header)[1]

    def _parsed(self, header: str) -> tuple[dict[str, str], str | None]:
        """The gateway's cookies in `header` and the value of their chunks. A request asks
        for them several times (the store, the session layer) with the same header object:
        the last answer is kept for it."""
        last = self._last
        if last[0] is header:
            return last[1], last[2]
        # Only our cookies, whose values are base64url: a split is enough, and much cheaper than
        # aiohttp's general parser on a multi-kilobyte header (profiled: ~10% of a request).
        own = {}
        owns = self.owns
        for start, equals, end in pair_spans(header):
            if equals >= 0:
                name = header[start:equals].lstrip()
                if owns(name):
                    own[name] = header[equals + 1:end].rstrip().strip('"')
        parts = []
        for name in self.chunk_names:
            part = own.get(name)
            if part is None:
                break
            parts.append(part)
        sealed = "".join(parts) or None
        last[:] = (header, own, sealed)
        return own, sealed

    def chunks(self, value: str, *, present: Mapping[str, str], max_age: int) -> list[str]:
        """Set-Cookie values storing `value` in as few chunks as it needs, and deleting the
        chunks in `present` (the request's own cookies) beyond them."""
        size = MAX_COOKIE_BYTES - len(self.name) - 3
        parts = [value[i:i + size] for i in range(0, len(value), size)]
        if len(parts) > MAX_CHUNKS:
            raise ValueError(f"session of {len(value)} bytes exceeds {MAX_CHUNKS} cookies")
        names = self.chunk_names
        headers = [self.render(name, part, max_age=max_age)
                   for name, part in zip(names, parts, strict=False)]
        headers += [self.render_deletion(name) for name in names[len(parts):] if name in present]
        return headers

    def deletions(self, present: Mapping[str, str]) -> list[str]:
        """Set-Cookie values deleting every chunk in `present`."""
        return [self.render_deletion(name) for name in self.chunk_names if name in present]

    def render(self, name: str, value: str, *, max_age: int, path: str = "/") -> str:
        """A Set-Cookie value: HttpOnly, SameSite and Secure as configured. An empty value is
        written `""`, as aiohttp's del_cookie does (proxies in front may match on it)."""
        morsel: Morsel[str] = Morsel()
        morsel.set(name, value, value or '""')
        morsel["max-age"] = str(max_age)
        morsel["path"] = path
        morsel["httponly"] = True
        morsel["samesite"] = self.samesite.capitalize()
        if self.secure:
            morsel["secure"] = True
        return morsel.OutputString()

    def render_deletion(self, name: str, *, path: str = "/") -> str:
        """A Set-Cookie value that deletes the cookie (empty, expired)."""
        return self.render(name, "", max_age=0, path=path) + \
            "; expires=Thu, 01 Jan 1970 00:00:00 GMT"

    def set(self, response: web.StreamResponse, name: str, value: str, *, max_age: int,
            path: str = "/") -> None:
        """Put a cookie on a response the caller built (and will prepare) itself."""
        response.headers.add("Set-Cookie", self.render(name, value, max_age=max_age, path=path))

    def delete(self, response: web.StreamResponse, name: str, *, path: str = "/") -> None:
        response.headers.add("Set-Cookie", self.render_deletion(name, path=path))

    def owns(self, cookie_name: str) -> bool:
        """True for any cookie the gateway sets (session chunks, sign-in state)."""
        return cookie_name == self.name or cookie_name.startswith(self.name + "_")
