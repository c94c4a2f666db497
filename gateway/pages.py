"""What the gateway itself answers: JSON errors for programs, small HTML pages for people.

Pages show an error code, a hint, the request id and a way on; never a token, a secret or a
stack trace. Every value is HTML-escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Mapping

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
    """A JSON response with `Cache-Control: no-store` (plus any `headers`)."""
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


def access_denied_page(status: int, *, username: str | None, groups: tuple[str, ...],
                       signed_in_with: str | None, required: Mapping[str, Any],
                       request_id: str, return_to: str) -> web.Response:
    """The page a person sees when a rule refuses them: who they are, what was required, a
    button to sign out (and sign in as someone else, back at `return_to`), the request id."""
    if username is None:
        who = "<p>You are not signed in.</p>"
    else:
        how = "with an access token of" if signed_in_with == "bearer" else "as"
        member = (f' (groups: {", ".join(f"<code>{escape(g)}</code>" for g in groups)})'
                  if groups else " (no groups)")
        who = f"<p>You are signed in {how} <strong>{escape(username)}</strong>{member}.</p>"
    needs = "".join(f"<li>{line}</li>" for line in requirement_lines(required))
    sign_out = ""
    if signed_in_with == "session":
        action = escape(f"/oauth2/sign_out?rd={quote(return_to, safe='/')}")
        sign_out = (f'<form method="post" action="{action}"><button type="submit">Sign out'
                    "</button> and sign in as someone else</form>")
    body = (f"{who}<p>This page requires:</p><ul>{needs}</ul>{sign_out}"
            f'<p class="muted">Request id: <code>{escape(request_id)}</code></p>')
    return html_page(status, "Access denied", body)


def requirement_lines(required: Mapping[str, Any]) -> list[str]:
    """What a rule requires, one escaped HTML line per requirement."""
    def codes(values: Any) -> str:
        return ", ".join(f"<code>{escape(str(v))}</code>" for v in values)

    if required.get("action") == "deny":
        return ["nobody: this path is closed to everyone"]
    lines = []
    if "groups" in required:
        lines.append(f"membership of one of the groups {codes(required['groups'])}")
    if "scopes" in required:
        lines.append(f"an access token with all of the scopes {codes(required['scopes'])}")
    if "principal" in required:
        lines.append("a browser sign-in (a session)" if required["principal"] == "session"
                     else "an API access token (Authorization: Bearer)")
    for name, values in dict(required.get("claims", {})).items():
        lines.append(f"the claim <code>{escape(str(name))}</code> equal to one of "
                     f"{codes(values)}")
    return lines or ["a signed-in user"]
