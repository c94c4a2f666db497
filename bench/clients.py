"""The bench's own asyncio clients: a download, an upload, and WebSocket echo load.

wrk cannot stream a 100 MB body up or hold WebSockets, so these do, with aiohttp. The caller
bounds a transfer in time; the WebSocket load bounds itself. Each returns what it moved and how
long it took; a transfer also checks that every byte arrived (the download's length, the upload
sink's count) and raises TransferFailed otherwise.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

READ_BUFFER = 1 << 20
UPLOAD_CHUNK = 1_000_000


class TransferFailed(RuntimeError):
    """A transfer was refused, cut short, or did not finish in time."""


@dataclass(frozen=True)
class Transfer:
    """Bytes moved in one transfer and the seconds it took (request to last byte)."""

    bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class EchoLoad:
    """WebSocket messages echoed in one run, and their round-trip percentiles."""

    messages: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def _session() -> aiohttp.ClientSession:
    """A client session without an overall timeout: callers bound each load themselves."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                                 read_bufsize=READ_BUFFER, auto_decompress=False)


async def download(url: str, headers: Mapping[str, str], expected: int) -> Transfer:
    """GET `url` and read the whole body; it must be `expected` bytes long."""
    received = 0
    async with _session() as client:
        started = time.perf_counter()
        async with client.get(url, headers=headers, allow_redirects=False) as response:
            if response.status != 200:
                raise TransferFailed(f"GET {url}: status {response.status}")
            async for chunk in response.content.iter_any():
                received += len(chunk)
        seconds = time.perf_counter() - started
    if received != expected:
        raise TransferFailed(f"GET {url}: {received} bytes instead of {expected}")
    return Transfer(received, seconds)


async def upload(url: str, headers: Mapping[str, str], size: int) -> Transfer:
    """POST `size` bytes (with Content-Length) to the upload sink; it must count them all."""
    chunk = bytes(UPLOAD_CHUNK)

    async def body() -> AsyncIterator[bytes]:
        left = size
        while left > 0:
            piece = chunk if left >= len(chunk) else chunk[:left]
            left -= len(piece)
            yield piece

    request_headers = {**headers, "Content-Length": str(size),
                       "Content-Type": "application/octet-stream"}
    async with _session() as client:
        started = time.perf_counter()
        async with client.post(url, data=body(), headers=request_headers,
                               allow_redirects=False) as response:
            answer = await response.json(content_type=None) if response.status == 200 else None
        seconds = time.perf_counter() - started
    if not isinstance(answer, dict) or answer.get("bytes") != size:
        raise TransferFailed(f"POST {url}: status {response.status}, sink saw {answer!r}")
    return Transfer(size, seconds)


async def echo_load(url: str, headers: Mapping[str, str], *, connections: int,
                    duration: float, message_bytes: int = 100) -> EchoLoad:
    """Keep `connections` sockets busy for `duration` s, one message in flight on each."""
    message = "m" * message_bytes
    round_trips: list[float] = []
    async with _session() as client, asyncio.timeout(duration + 30):
        sockets = await asyncio.gather(*(client.ws_connect(url, headers=headers, autoping=False)
                                         for _ in range(connections)))
        deadline = time.perf_counter() + duration

        async def ping_pong(socket: aiohttp.ClientWebSocketResponse) -> None:
            while (sent := time.perf_counter()) < deadline:
                await socket.send_str(message)
                reply = await socket.receive()
                if reply.type != aiohttp.WSMsgType.TEXT or reply.data != message:
                    raise TransferFailed(f"{url}: the echo sent {reply.type!r} back")
                round_trips.append(time.perf_counter() - sent)

        started = time.perf_counter()
        async with asyncio.timeout(duration + 20):
            await asyncio.gather(*(ping_pong(s) for s in sockets))
        seconds = time.perf_counter() - started
        await asyncio.gather(*(s.close() for s in sockets))
    if not round_trips:
        raise TransferFailed(f"{url}: no message came back")
    quantiles = statistics.quantiles(round_trips, n=100) if len(round_trips) > 1 else (
        round_trips * 99)
    return EchoLoad(len(round_trips), seconds, quantiles[49] * 1000, quantiles[98] * 1000)
