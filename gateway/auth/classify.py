"""What kind of request this is, from its method and headers alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiohttp import web


def is_navigation(request: web.BaseRequest) -> bool:
    """A browser page load: GET/HEAD wanting HTML, not XHR/fetch (by Sec-Fetch-Mode or
    X-Requested-With). Only navigations are ever redirected to sign in or shown HTML pages."""
    return navigation_of(request.method, request.headers)


def navigation_of(method: str, headers: Mapping[str, str]) -> bool:
    """`is_navigation` of a request's method and headers."""
    if method not in {"GET", "HEAD"}:
        return False
    if headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
        return False
    mode = headers.get("Sec-Fetch-Mode")
    if mode is not None and mode != "navigate":
        return False
    return "text/html" in headers.get("Accept", "")


def bearer_token(request: web.BaseRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    return bearer_token_in(request.headers)


def bearer_token_in(headers: Mapping[str, str]) -> str | None:
    """`bearer_token` of a request's headers."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
