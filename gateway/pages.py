"""What the gateway itself answers: JSON errors for programs, small HTML pages for people.

Pages show an error code, a hint, the request id and a way on; never a token, a secret or a
stack trace. Every value is HTML-escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from aiohttp import web

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;
color:#222}}code{{background:#f3f3f3;padding:.1rem .3rem}}.muted{{color:#666}}
button,a.button{{font:inherit;padding:.4rem 1rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
}


def html_page(status: int, title: str, body: str,
              headers: dict[str, str] | None = None) -> web.Response:
    """An HTML page; `body` must already be escaped markup."""
    return web.Response(status=status, text=_PAGE.format(title=escape(title), body=body),
                        content_type="text/html", headers={**SECURITY_HEADERS, **(headers or {})})


def json_response(status: int, payload: dict[str, Any],
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json",
                        headers={"Cache-Control": "no-store", **(headers or {})})


def error_page(status: int, *, title: str, code: str, hint: str, request_id: str,
               retry_url: str | None) -> web.Response:
    """The page a person sees when sign-in or the IdP fails."""
    retry = (f'<p><a class="button" href="{escape(retry_url)}">Try again</a></p>'
             if retry_url else "")
    body = (f"<p>Error: <code>{escape(code)}</code></p><p>{escape(hint)}</p>{retry}"
            f'<p class="muted">Request id: <code>{escape(request_id)}</code></p>')
    return html_page(status, title, body)
