"""A raw HTTP/1.1 client: sends the request line and headers exactly as given.

aiohttp's client normalises URLs; attacks on request targets need the bytes as written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

READ_TIMEOUT = 10.0


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_request(port: int, request_line: bytes, headers: dict[str, str] | None = None,
                      body: bytes = b"") -> RawResponse:
    """Send one request on a fresh connection to 127.0.0.1:port; read the whole answer."""
    lines = [request_line, b"Host: 127.0.0.1", b"Connection: close"]
    lines += [f"{k}: {v}".encode() for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}".encode())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        async with asyncio.timeout(READ_TIMEOUT):
            data = await reader.read(-1)
    finally:
        writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split(" ")[1]), parsed, rest)
