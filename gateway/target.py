"""The request target, normalised once: the one path every decision uses and the upstream gets.

`parse_target(raw)` turns the request-target as the client sent it into a `RequestTarget`, or
raises `BadTarget` (answered 400) when the target is one that a strict and a lenient server
would read as different paths. Nothing downstream ever looks at the raw target again: the
router, the guard, the rules, forward-auth and the proxy all use `RequestTarget`.

Normalisation (RFC 3986 6.2.2 and 5.2.4, plus what deployed servers do):
- absolute-form (`http://host/p?q`) is reduced to its path and query: Host decides nothing;
- percent-encodings of unreserved characters are decoded (`%7E` -> `~`), the others get
  upper-case hex (`%c3%a9` -> `%C3%A9`); characters not allowed raw in a path are encoded;
- dot segments are removed and runs of slashes merged (`/a//b/../c` -> `/a/c`), as nginx and
  Apache read them, so that an upstream which resolves them sees the path that was decided on.
The query is kept byte-exact.

Refused (`BadTarget.reason` says which), because a decision on one reading could be forwarded
and served in another:
- an encoded `/` or `\\` anywhere in the path (`%2F`, `%5C`), and any escape encoded twice
  (`%252F`, `%2561`): double-decoding frameworks read another path;
- a raw backslash; NUL or another control character, raw or encoded;
- an overlong UTF-8 encoding (`%C0%AF`), or characters that Unicode normalisation (NFKC)
  turns into `/`, `\\` or a dot segment (`%EF%BC%8F` fullwidth solidus, `%E2%80%A5` two-dot
  leader): old and normalising servers decode them to the delimiter;
- a dot segment spelled with an encoded dot (`%2e%2e`, `.%2E`), or with path parameters
  (`..;x`, `.;`): servers disagree on whether they are dot segments;
- a fragment (`#`), malformed percent-encoding, and forms other than origin and absolute.

Path parameters (`/a;jsessionid=1/b`) are legal and forwarded as they are, but Tomcat-like
servers drop them when routing (some after decoding `%3B`): `without_params` is that second
reading, and whoever decides on the path must reach the same decision for both (`readings`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote_to_bytes

from aiohttp import web

from gateway.cache import BoundedCache
from gateway.errors import BadTarget

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# pchar = unreserved / pct-encoded / sub-delims / ":" / "@" (RFC 3986 3.3); "%" starts an escape.
_PCHAR = _UNRESERVED | frozenset("!$&'()*+,;=:@%")
_HEX = frozenset("0123456789abcdefABCDEF")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_DOUBLE_ENCODED = re.compile(r"%25[0-9a-f]{2}", re.IGNORECASE)
_DOT_SEGMENTS = frozenset({".", ".."})
_PARAMS = re.compile(r";|%3B")
# Lead bytes that are always overlong (C0, C1), and second bytes that make E0/F0 overlong.
_OVERLONG = re.compile(rb"[\xc0\xc1]|\xe0[\x80-\x9f]|\xf0[\x80-\x8f]")


@dataclass(frozen=True)
class RequestTarget:
    """A normalised request target.

    `path` is what the upstream receives (percent-encoded, ASCII); `query` is the raw query
    string without its `?` (None when the target had no `?`).
    """

    path: str
    query: str | None = None

    @property
    def forwarded(self) -> str:
        """The target as sent upstream: the normalised path and the query byte-exact."""
        return self.path if self.query is None else f"{self.path}?{self.query}"

    @cached_property
    def decoded(self) -> str:
        """The path fully percent-decoded, as an upstream routes on it; globs match this.

        Decoding cannot create a new `/` (encoded slashes are refused). Bytes that are not
        UTF-8 stay distinct (surrogate escapes), so no two paths decode alike.
        """
        if "%" not in self.path:
            return self.path
        return unquote_to_bytes(self.path).decode("utf-8", "surrogateescape")

    @cached_property
    def without_params(self) -> RequestTarget | None:
        """The reading of a server that drops `;params` from segments (before or after
        decoding `%3B`), when it differs."""
        if ";" not in self.path and "%3B" not in self.path:
            return None
        segments = (_PARAMS.split(segment, 1)[0] for segment in self.path.split("/"))
        return RequestTarget(_merge("/".join(segments)), self.query)

    @property
    def readings(self) -> tuple[RequestTarget, ...]:
        """Every way a deployed server may read this path: a decision must hold for all."""
        other = self.without_params
        return (self,) if other is None else (self, other)


TARGET = web.RequestKey("target", RequestTarget)
"""The request's normalised target, set once by the request middleware."""


# Targets already parsed, by the raw target: a pure function of it, and most requests repeat a
# few paths (parsing and the cached readings were ~4 % of a proxied request's CPU, issue #16).
# Client-chosen, hence bounded (least recently used out); refused and long targets are never
# kept.
MAX_PARSED = 4096
MAX_PARSED_LENGTH = 512
_PARSED: BoundedCache[str, RequestTarget] = BoundedCache(MAX_PARSED)


def parse_target(raw: str) -> RequestTarget:
    """Normalise a request-target as received; raise BadTarget when it is ambiguous."""
    parsed = _PARSED.get(raw)
    if parsed is None:
        parsed = _parse(raw)
        if len(raw) <= MAX_PARSED_LENGTH:
            _PARSED.put(raw, parsed)
    return parsed


def _parse(raw: str) -> RequestTarget:
    if raw.startswith("/"):
        target = raw
    elif _ABSOLUTE.match(raw):
        scheme, _, rest = raw.partition("://")
        if scheme.lower() not in {"http", "https"}:
            raise BadTarget("unsupported_scheme", "only http and https absolute targets")
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        target = rest[cut:]
        target = "/" + target if not target.startswith("/") else target
    else:
        raise BadTarget("unsupported_form", "the request target must be a path")
    if "#" in target:
        raise BadTarget("fragment", "a request target carries no fragment")
    path, question, query = target.partition("?")
    return RequestTarget(normalise_path(path), query if question else None)


def normalise_path(path: str) -> str:
    """The normalised form of an absolute path (see the module docstring); BadTarget if not."""
    kept: list[str] = []
    trailing = False
    for raw_segment in path.split("/")[1:]:
        segment = _normalise_segment(raw_segment)
        if _is_dot_segment(raw_segment):
            if segment == ".." and kept:
                kept.pop()
            trailing = True
            continue
        trailing = not segment
        if segment:
            kept.append(segment)
    normal = "/" + "/".join(kept) + ("/" if trailing and kept else "")
    if "%25" in normal and _DOUBLE_ENCODED.search(normal):  # also made by decoding %41 etc.
        raise BadTarget("double_encoding", "a percent-escape is encoded twice")
    return normal


def _is_dot_segment(raw_segment: str) -> bool:
    """True for `.` and `..`; BadTarget for a segment that some server reads as one.

    Servers that decode before resolving dots, drop `;params`, or trim trailing spaces read
    `%2e%2e`, `..;x`, `..%3Bx` and `..%20` as `..`: spelled that way, the segment is refused.
    """
    if raw_segment in _DOT_SEGMENTS:
        return True
    if "." not in raw_segment and "%" not in raw_segment:
        return False
    lenient = unquote_to_bytes(raw_segment).partition(b";")[0].rstrip(b" ")
    if lenient in (b".", b".."):
        raise BadTarget("ambiguous_dot_segment",
                        "a dot segment spelled with encodings, parameters or spaces")
    return False


def _normalise_segment(segment: str) -> str:
    if all(ch in _UNRESERVED for ch in segment):
        return segment  # the common case: nothing to decode, encode or check
    out: list[str] = []
    i, n = 0, len(segment)
    while i < n:
        ch = segment[i]
        if ch == "%":
            pair = segment[i + 1:i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise BadTarget("malformed_encoding", "a % not followed by two hex digits")
            decoded = chr(int(pair, 16))
            if decoded in "/\\":
                raise BadTarget("encoded_slash", "an encoded / or \\ in the path")
            if ord(decoded) < 0x20 or decoded == "\x7f":
                raise BadTarget("control_character", "an encoded control character")
            out.append(decoded if decoded in _UNRESERVED else "%" + pair.upper())
            i += 3
            continue
        if ch == "\\":
            raise BadTarget("backslash", "a backslash in the path")
        if ord(ch) < 0x20 or ch == "\x7f":
            raise BadTarget("control_character", "a control character in the path")
        out.append(ch if ch in _PCHAR else "".join(f"%{b:02X}" for b in ch.encode()))
        i += 1
    normal = "".join(out)
    if "%" in normal:
        _check_non_ascii(normal)
    return normal


def _check_non_ascii(segment: str) -> None:
    """Refuse encodings that some server decodes to a path delimiter."""
    raw = unquote_to_bytes(segment)
    if raw.isascii():
        return
    if _OVERLONG.search(raw):
        raise BadTarget("overlong_utf8", "an overlong UTF-8 encoding in the path")
    folded = unicodedata.normalize("NFKC", raw.decode("utf-8", "surrogateescape"))
    if "/" in folded or "\\" in folded or folded.partition(";")[0].rstrip(" ") in _DOT_SEGMENTS:
        raise BadTarget("confusable_delimiter", "characters that normalise to / \\ or a dot "
                        "segment")


def _merge(path: str) -> str:
    trailing = path.endswith("/") and path != "/"
    merged = "/" + "/".join(s for s in path.split("/") if s)
    return merged + "/" if trailing and merged != "/" else merged
