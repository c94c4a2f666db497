"""The demo upstream: a page that shows the request it received and the identity headers in it.

It is the app a gateway protects in the demo and in the end-to-end tests: whatever it shows is
what a real app behind the gateway would see.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

IDENTITY_PREFIXES = ("x-auth-request-", "x-amzn-oidc-", "x-forwarded-", "x-request-id")


async def show_request(request: web.Request) -> web.StreamResponse:
    headers = sorted(request.headers.items())
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"method": request.method, "path": request.raw_path,
                                  "headers": dict(headers)})
    identity = [(k, v) for k, v in headers if k.lower().startswith(IDENTITY_PREFIXES)]
    rows = "".join(f"<tr><th>{escape(k)}</th><td><code>{escape(v[:300])}</code></td></tr>"
                   for k, v in identity)
    others = "".join(f"<tr><th>{escape(k)}</th><td><code>{escape(v[:300])}</code></td></tr>"
                     for k, v in headers if (k, v) not in identity)
    user = escape(request.headers.get("X-Auth-Request-User", "nobody"))
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Demo app</title><style>body{{font-family:system-ui,sans-serif;margin:2rem}}
th{{text-align:left;padding-right:1rem;vertical-align:top}}code{{word-break:break-all}}</style>
</head><body><h1>Hello, <span id="user">{user}</span></h1>
<p>This page is the demo upstream. The gateway verified who you are and told it in these
headers; a client cannot forge them.</p>
<h2>Identity headers</h2><table id="identity">{rows}</table>
<h2>Request</h2><p><code>{escape(request.method)} {escape(request.raw_path)}</code></p>
<table id="headers">{others}</table>
<form method="post" action="/oauth2/sign_out"><button type="submit">Sign out</button></form>
</body></html>"""
    return web.Response(text=html, content_type="text/html")


def create_upstream_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", show_request)
    return app
