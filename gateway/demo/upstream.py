"""The demo upstream: the app a gateway protects in the demo, compose and the end-to-end tests.

It shows who the gateway says you are (name, username, email, groups), when your tokens are
refreshed next (the `exp` of `x-amzn-oidc-data`, verified like an ALB app verifies it), a
sign-out button, and every header it received: whatever it shows is what a real app behind
the gateway sees. `Accept: application/json` gets the method, path and headers as JSON.

    python -m gateway.demo.upstream [--host 127.0.0.1] [--port 8080] [--public-keys-url URL]
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from gateway.demo.assertion import AssertionReader
from gateway.demo.page import Visitor, render_page

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

READER = web.AppKey("assertion_reader", AssertionReader)
HTTP = web.AppKey("http", aiohttp.ClientSession)
REFRESH_BEFORE = web.AppKey("refresh_before_seconds", int)


async def show_request(request: web.Request) -> web.StreamResponse:
    """The page (or JSON) describing this request."""
    headers = sorted(request.headers.items())
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"method": request.method, "path": request.raw_path,
                                  "headers": dict(headers)})
    data = request.headers.get("X-Amzn-Oidc-Data")
    assertion = (await request.app[READER].read(request.app[HTTP], data)
                 if data is not None else None)
    groups = request.headers.get("X-Auth-Request-Groups", "")
    visitor = Visitor(
        username=request.headers.get("X-Auth-Request-User"),
        email=request.headers.get("X-Auth-Request-Email"),
        groups=tuple(g for g in groups.split(",") if g),
        assertion=assertion,
    )
    page = render_page(visitor, request.method, request.raw_path, headers,
                       refresh_before_seconds=request.app[REFRESH_BEFORE])
    return web.Response(text=page, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


def create_upstream_app(*, public_keys_url: str | None = None,
                        refresh_before_seconds: int = 120) -> web.Application:
    """The demo app; `public_keys_url` is the gateway's `<public_url>/oauth2/public-keys`.

    `refresh_before_seconds` is the gateway's session.refresh_before_expiry_seconds, so the
    page can say when the next refresh happens.
    """
    app = web.Application()
    app[READER] = AssertionReader(public_keys_url)
    app[REFRESH_BEFORE] = refresh_before_seconds

    async def http_client(app: web.Application) -> AsyncIterator[None]:
        app[HTTP] = aiohttp.ClientSession()
        yield
        await app[HTTP].close()

    app.cleanup_ctx.append(http_client)
    app.router.add_route("*", "/{tail:.*}", show_request)
    return app


def command_line() -> argparse.ArgumentParser:
    """The arguments of `python -m gateway.demo.upstream`."""
    parser = argparse.ArgumentParser(prog="python -m gateway.demo.upstream",
                                     description="The demo app behind cognito-gateway.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--public-keys-url",
                        help="the gateway's <url>/oauth2/public-keys, to verify x-amzn-oidc-data")
    parser.add_argument("--refresh-before-seconds", type=int, default=120,
                        help="the gateway's session.refresh_before_expiry_seconds")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Serve the demo app until interrupted."""
    args = command_line().parse_args(argv)
    app = create_upstream_app(public_keys_url=args.public_keys_url,
                              refresh_before_seconds=args.refresh_before_seconds)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
