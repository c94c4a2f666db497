"""Typed keys for what the app and each request carry between layers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.context import GatewayContext  # noqa: F401 - named in the AppKey below
    from gateway.target import RequestTarget  # noqa: F401 - named in a RequestKey below
    from gateway.websocket import SocketDeadline  # noqa: F401 - named in a RequestKey below

BeforePrepare = Callable[[web.StreamResponse], Awaitable[None]]

CONTEXT = web.AppKey["GatewayContext"]("context")
REQUEST_ID = web.RequestKey("request_id", str)
TARGET = web.RequestKey["RequestTarget"]("target")
UPSTREAM_IDENTITY = web.RequestKey("upstream_identity", dict[str, str])
BEFORE_PREPARE = web.RequestKey("before_prepare", list[BeforePrepare])
SOCKET_DEADLINE = web.RequestKey["SocketDeadline"]("socket_deadline")


async def run_before_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Let earlier layers put cookies on a response before its headers are sent."""
    for hook in request.get(BEFORE_PREPARE, ()):
        await hook(response)
