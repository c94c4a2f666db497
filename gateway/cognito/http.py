"""The IdP client's HTTP plumbing: JSON GETs with bounded timeouts and typed failures."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from gateway.errors import IdPError, network_failure_reason

IDP_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=3, sock_read=5)


async def fetch_json(http: aiohttp.ClientSession, url: str, *,
                     error: type[IdPError]) -> dict[str, Any]:
    """GET `url` and return its JSON object, or raise `error` with a bounded reason."""
    try:
        async with http.get(url, timeout=IDP_TIMEOUT, allow_redirects=False) as resp:
            body = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = network_failure_reason(exc) or "network_error"
        raise error(f"GET {url} failed: {reason}", reason=reason) from exc
    if status != 200:
        raise error(f"GET {url} answered HTTP {status}", reason=f"http_{status}")
    try:
        doc = json.loads(body)
    except ValueError:
        raise error(f"GET {url} did not return JSON", reason="malformed") from None
    if not isinstance(doc, dict):
        raise error(f"GET {url} did not return a JSON object", reason="malformed")
    return doc
