"""Test hooks under /_admin/ (not part of Cognito's surface).

Each route maps to one operation on the IdP state; the same operations are methods of DevIdp.
Unknown users or clients answer 404, malformed fault requests 400, all with JSON bodies.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gateway.devidp.faults import Fault
from gateway.devidp.keys import SigningKeys
from gateway.devidp.responses import json_response
from gateway.devidp.state import IdpState, state_of

if TYPE_CHECKING:
    from aiohttp import web

_FAULT_KEYS = {"endpoint", "status", "delay_seconds", "body", "content_type", "count"}


def rotate_keys(st: IdpState, keys: SigningKeys | None = None) -> None:
    """Replace both signing keys (with `keys`, else new ones with new kids); the old keys
    disappear from the JWKS at once."""
    st.keys = keys or SigningKeys.generate()


def global_sign_out(st: IdpState, username: str) -> None:
    """Revoke all of the user's refresh tokens and their access tokens; KeyError if unknown."""
    user = st.pool.user(username)
    if user is None:
        raise KeyError(username)
    st.grants.revoke_user(user.username)


def set_client_enabled(st: IdpState, client_id: str, enabled: bool) -> None:
    """Enable or disable an app client; KeyError if unknown."""
    client = st.pool.client(client_id)
    if client is None:
        raise KeyError(client_id)
    client.enabled = enabled


def fault_from_json(data: Any) -> tuple[str, Fault]:
    """The endpoint and fault a POST /_admin/faults body describes; ValueError if malformed."""
    if not isinstance(data, dict):
        raise ValueError("body: must be a JSON object")
    unknown = sorted(set(data) - _FAULT_KEYS)
    if unknown:
        raise ValueError(f"unknown keys {unknown}")
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str):
        raise ValueError("endpoint: required")
    for key in ("status", "count"):
        value = data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"{key}: must be an integer")
    try:
        fault = Fault(
            status=data.get("status"),
            delay_seconds=float(data.get("delay_seconds", 0.0)),
            body=str(data.get("body", "")),
            content_type=str(data.get("content_type", "text/html")),
            remaining=data.get("count"),
        )
    except TypeError as exc:
        raise ValueError(f"bad value: {exc}") from exc
    return endpoint, fault


async def _rotate_keys(request: web.Request) -> web.Response:
    st = state_of(request)
    rotate_keys(st)
    return json_response({"kids": {"id": st.keys.id.kid, "access": st.keys.access.kid}})


async def _global_sign_out(request: web.Request) -> web.Response:
    try:
        global_sign_out(state_of(request), request.match_info["username"])
    except KeyError:
        return json_response({"error": "unknown user"}, status=404)
    return json_response({})


async def _set_enabled(request: web.Request) -> web.Response:
    enabled = request.match_info["action"] == "enable"
    try:
        set_client_enabled(state_of(request), request.match_info["client_id"], enabled)
    except KeyError:
        return json_response({"error": "unknown client"}, status=404)
    return json_response({"enabled": enabled})


async def _add_fault(request: web.Request) -> web.Response:
    try:
        endpoint, fault = fault_from_json(await request.json())
        state_of(request).faults.add(endpoint, fault)
    except (ValueError, json.JSONDecodeError) as exc:
        return json_response({"error": str(exc)}, status=400)
    return json_response({"endpoint": endpoint})


async def _clear_faults(request: web.Request) -> web.Response:
    state_of(request).faults.clear()
    return json_response({})


async def _stats(request: web.Request) -> web.Response:
    return json_response({"token_requests": dict(state_of(request).token_requests)})


async def _reset_stats(request: web.Request) -> web.Response:
    state_of(request).token_requests.clear()
    return json_response({})


def add_admin_routes(app: web.Application) -> None:
    """Register every /_admin/ route on the app."""
    app.router.add_post("/_admin/rotate-keys", _rotate_keys)
    app.router.add_post("/_admin/users/{username}/global-sign-out", _global_sign_out)
    app.router.add_post("/_admin/clients/{client_id}/{action:enable|disable}", _set_enabled)
    app.router.add_post("/_admin/faults", _add_fault)
    app.router.add_delete("/_admin/faults", _clear_faults)
    app.router.add_get("/_admin/stats", _stats)
    app.router.add_post("/_admin/stats/reset", _reset_stats)
