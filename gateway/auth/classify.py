"""What kind of request this is, from its method and headers alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


def is_navigation(request: web.BaseRequest) -> bool:
    """A browser page load: GET/HEAD wanting HTML, not XHR/fetch (by Sec-Fetch-Mode or
    X-Requested-With). Only navigations are ever redirected to sign in or shown HTML pages."""
    if request.method not in {"GET", "HEAD"}:
        return False
    headers = request.headers
    if headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
        return False
    mode = headers.get("Sec-Fetch-Mode")
    if mode is not None and mode != "navigate":
        return False
    return "text/html" in headers.get("Accept", "")


def bearer_token(request: web.BaseRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
