"""Path globs of rules: what they match, which can never match, and which cover others.

Globs have `fnmatch` syntax (`*` also crosses `/`, `?` one character, `[...]` a class) and are
matched against the decoded, normalised path of a request target (gateway/target.py), like
`auth.public_paths`. A normalised path starts with `/`, holds no `//`, no `.` or `..` segment,
no backslash and no control character, and is fully percent-decoded (an escaped escape is
refused): a glob that needs any of those can never match, and says so at start.
"""

from __future__ import annotations

import re
from fnmatch import translate
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

_MAGIC = frozenset("*?[")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def glob_source(globs: Sequence[str]) -> str:
    """One regular expression (source) matching a path any of `globs` matches."""
    return "|".join(translate(glob) for glob in globs)


def never_matches(glob: str) -> str | None:
    """Why `glob` can never match a normalised path, or None when it can."""
    if not glob.startswith("/"):
        return "a normalised path starts with /"
    if "\\" in glob:
        return "a path with a backslash is refused (400) before any rule"
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in glob):
        return "a path with a control character is refused (400) before any rule"
    if "//" in glob:
        return "runs of slashes are merged (// is never in a normalised path)"
    if any(segment in {".", ".."} for segment in glob.split("/")):
        return "dot segments are resolved (/./ and /../ are never in a normalised path)"
    if _ESCAPE.search(glob):
        return ("globs match the decoded path: write the character itself, not its "
                "percent-encoding")
    return None


def literal_prefix(glob: str) -> str:
    """The text every path matched by `glob` starts with (up to its first wildcard)."""
    for i, ch in enumerate(glob):
        if ch in _MAGIC:
            return glob[:i]
    return glob


def covers(earlier: str, later: str) -> bool:
    """True when every path `later` matches is matched by `earlier` too.

    Conservative: only the cases that can be told for sure from the text are detected, an
    identical glob, or `earlier` being a literal prefix followed by `*` (`/api/*`, `/**`) that
    `later`'s own literal prefix starts with.
    """
    if earlier == later:
        return True
    prefix = earlier.rstrip("*")
    if prefix == earlier or any(ch in _MAGIC for ch in prefix):
        return False
    return literal_prefix(later).startswith(prefix)
