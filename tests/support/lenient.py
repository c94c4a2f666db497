"""How the most lenient deployed server reads a path: the yardstick of the path-confusion tests.

It does everything some real server does: decodes percent-escapes twice (double-decoding
frameworks), decodes overlong UTF-8 (old IIS), folds Unicode with NFKC, reads `\\` as `/`,
drops `;params` (Tomcat), trims trailing spaces from dot segments (Windows), merges slashes
and resolves dot segments.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote_to_bytes

_OVERLONG = {b"\xc0\xaf": b"/", b"\xe0\x80\xaf": b"/", b"\xc1\x9c": b"\\", b"\xc0\xae": b"."}


def lenient_resolve(path: str) -> str:
    """The path a maximally lenient server serves for `path` (query excluded)."""
    raw = unquote_to_bytes(unquote_to_bytes(path.partition("?")[0]))
    for overlong, plain in _OVERLONG.items():
        raw = raw.replace(overlong, plain)
    text = unicodedata.normalize("NFKC", raw.decode("utf-8", "surrogateescape"))
    kept: list[str] = []
    for segment in text.replace("\\", "/").split("/"):
        name = segment.partition(";")[0]
        if name.rstrip(" ") == "..":
            if kept:
                kept.pop()
        elif name and name.rstrip(" ") != ".":
            kept.append(name)
    return "/" + "/".join(kept)
