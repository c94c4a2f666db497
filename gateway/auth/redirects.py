"""Return targets after sign-in and sign-out: same-origin paths only.

Every return target, however it was remembered (`rd`, the navigation that needed a sign-in,
the retry link of an error page, the sign-out cookie), passes `safe_return_path`. Accepted: an
absolute path with an optional query (`/a/b?c`), or an absolute URL on public_url's own origin
(reduced to its path and query). The path is normalised like a request target, so it can
never turn protocol-relative (`//evil`, `/\\evil`, `/.//evil`) in a browser or a later hop.
Anything else (other origins, schemes, control characters or whitespace, which browsers strip
or read as `/`, backslashes, ambiguous encodings) becomes "/".
"""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway.errors import BadTarget
from gateway.target import normalise_path


def safe_return_path(target: str | None, public_url: str) -> str:
    """`target` reduced to a same-origin path and query, or "/" when it is not safe."""
    if not target or any(ord(ch) <= 0x20 or ch in "\\\x7f" for ch in target):
        return "/"
    try:
        parts = urlsplit(target)
    except ValueError:
        return "/"
    if parts.scheme or parts.netloc:
        origin = urlsplit(public_url)
        if (parts.scheme.lower(), parts.netloc.lower()) != (origin.scheme,
                                                            origin.netloc.lower()):
            return "/"
    elif not target.startswith("/") or target.startswith("//"):
        return "/"
    try:
        path = normalise_path(parts.path or "/")
    except BadTarget:
        return "/"
    return f"{path}?{parts.query}" if parts.query else path
