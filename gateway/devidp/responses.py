"""Response shapes Cognito uses: JSON bodies, OAuth errors, redirects and its HTML error page."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Mapping

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
HTML_CONTENT_TYPE = "text/html;charset=UTF-8"
ERROR_PAGE_TEXT = "An error was encountered with the requested page."


def json_response(
    body: Mapping[str, Any], *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response with Cognito's `application/json;charset=UTF-8` content type."""
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
    )


def oauth_error(
    error: str,
    description: str | None = None,
    *,
    status: int = 400,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An OAuth error body `{"error": ...}`, with `error_description` only when given."""
    body = {"error": error}
    if description is not None:
        body["error_description"] = description
    return json_response(body, status=status, headers=headers)


def redirect(location: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """A 302 to `location`."""
    return web.Response(status=302, headers={"Location": location, **(headers or {})})


def html_page(body: str, *, status: int = 200) -> web.Response:
    """An HTML page with the hosted UI's content type."""
    return web.Response(
        status=status, body=body.encode(), headers={"Content-Type": HTML_CONTENT_TYPE}
    )


def error_page(detail: str | None = None, *, status: int = 400) -> web.Response:
    """Cognito's hosted-UI error page: the fixed sentence, then the detail if any."""
    text = ERROR_PAGE_TEXT if detail is None else f"{ERROR_PAGE_TEXT} {detail}"
    return html_page(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Error</title>'
        f'</head>\n<body><div class="error-page"><p>{html.escape(text, quote=False)}</p></div>'
        "</body></html>\n",
        status=status,
    )
