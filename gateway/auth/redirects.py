"""Return targets after sign-in and sign-out: same-origin paths only.

Accepted: an absolute path (`/a/b?c`) that is not protocol-relative (`//evil`, `/\\evil`) and
has no control characters or backslashes, or an absolute URL on public_url's own origin
(reduced to its path). Anything else becomes "/".
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def safe_return_path(target: str | None, public_url: str) -> str:
    """`target` reduced to a same-origin path, or "/" when it is not safe."""
    if not target or any(ord(ch) < 0x20 or ch in "\\\x7f" for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        origin = urlsplit(public_url)
        if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
            return "/"
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//"):
        return "/"
    return urlunsplit(("", "", path, parts.query, ""))
