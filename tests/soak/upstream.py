"""The app behind the gateway during a soak: `python -m tests.soak.upstream PORT`.

Every path answers 200 with a small page and tells the soak, in response headers, whom the
gateway said the request came from and until when that user's tokens are valid:
`X-Soak-User` (from `X-Auth-Request-User`) and `X-Soak-Token-Exp` (the `exp` of the ALB-style
`X-Amzn-Oidc-Data` assertion, which the gateway sets to its tokens' expiry). `/_soak/ready`
answers the readiness poll. It runs as its own process so the soak can SIGKILL it and start it
again on the same port.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys

from aiohttp import web

PAGE = "<!doctype html><title>soak</title><p>ok</p>\n"


def assertion_exp(assertion: str) -> str:
    """The `exp` claim of an x-amzn-oidc-data JWT (not verified: the gateway just made it)."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return ""
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(segment))
    except (binascii.Error, ValueError):
        return ""
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return str(exp) if isinstance(exp, int | float) else ""


async def page(request: web.Request) -> web.Response:
    """A small page carrying the identity the gateway vouched for."""
    return web.Response(text=PAGE, content_type="text/html", headers={
        "X-Soak-User": request.headers.get("X-Auth-Request-User", ""),
        "X-Soak-Token-Exp": assertion_exp(request.headers.get("X-Amzn-Oidc-Data", "")),
    })


async def ready(_request: web.Request) -> web.Response:
    return web.Response(text="ready")


def create_upstream() -> web.Application:
    app = web.Application()
    app.router.add_get("/_soak/ready", ready)
    app.router.add_route("*", "/{tail:.*}", page)
    return app


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m tests.soak.upstream PORT", file=sys.stderr)
        return 2
    web.run_app(create_upstream(), host="127.0.0.1", port=int(argv[0]), access_log=None,
                print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
