"""How a request leaves: its head (request line, headers, framing) and its streamed body."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.upstream.client._exceptions import LocalProtocolError

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Iterable

    from gateway.upstream.client._connection import UpstreamConnection

# Headers that decide framing or the connection's fate: the client owns them.
_CLIENT_OWNED = frozenset({"content-length", "transfer-encoding", "connection", "upgrade"})
_OWNED_OR_HOST = _CLIENT_OWNED | {"host"}
# Methods that define no meaning for a body: no `Content-Length: 0` when they have none.
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"})
# RFC 9110 9.2.2: repeating one of these has the same effect as sending it once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
CHUNKED = "Transfer-Encoding: chunked\r\n"
_LAST_CHUNK = b"0\r\n\r\n"


def framing_header(method: str, body: bytes | AsyncIterable[bytes] | None,
                   body_length: int | None) -> str:
    """The framing header line for this body ("" when none is due)."""
    if body is None:
        return "" if method in _BODYLESS_METHODS else "Content-Length: 0\r\n"
    if isinstance(body, bytes):
        return f"Content-Length: {len(body)}\r\n"
    if body_length is None:
        return CHUNKED
    if body_length < 0:
        raise LocalProtocolError(f"body_length must be >= 0, not {body_length}")
    return f"Content-Length: {body_length}\r\n"


def encode_head(method: str, target: str, headers: Iterable[tuple[str, str]],
                host_line: str, framing: str) -> bytes:
    """The request head as bytes, with Host added when the caller sent none.

    Raises LocalProtocolError for a header the client owns (framing and connection headers),
    and for CR, LF or NUL anywhere in the head: no input can add a line to the request.
    Text is encoded as UTF-8 with surrogateescape, the inverse of how aiohttp's server decodes
    a request, so a forwarded path or header goes out byte-exact.
    """
    if not method or not target or " " in method or " " in target:
        raise LocalProtocolError("the method and target must be non-empty and hold no space")
    # Four parts a line, joined once (no per-line string: profiled, issue #16).
    parts = [method, " ", target, " HTTP/1.1\r\n"]
    append = parts.append
    has_host = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in _OWNED_OR_HOST:
            if lowered != "host":
                raise LocalProtocolError(
                    f"{name} is set by the client from the body; do not pass it")
            has_host = True
        append(name)
        append(": ")
        append(value)
        append("\r\n")
    lines = len(parts) // 4 + 1  # the request line, each header line, and the blank line
    if not has_host:
        parts.append(host_line)
        lines += 1
    if framing:
        parts.append(framing)
        lines += 1
    parts.append("\r\n")
    text = "".join(parts)
    if text.count("\n") != lines or text.count("\r") != lines or "\x00" in text:
        raise LocalProtocolError("CR, LF or NUL in the method, target or a header")
    return text.encode("utf-8", "surrogateescape")


async def send_streamed_body(connection: UpstreamConnection, body: AsyncIterable[bytes],
                             body_length: int | None) -> None:
    """Write `body` as it comes, waiting whenever the transport's buffer is full.

    With `body_length` None the body is chunked; otherwise exactly that many bytes must come
    (LocalProtocolError if not). If the upstream answers before the body is sent, sending stops
    and the connection is marked not reusable: the response is still delivered.
    """
    chunked = body_length is None
    sent = 0
    try:
        async for chunk in body:
            if not chunk:
                continue  # an empty chunk would end a chunked body
            if connection.response_started:
                connection.abandon_request()
                return
            if chunked:
                connection.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                sent += len(chunk)
                if body_length is not None and sent > body_length:
                    raise LocalProtocolError(
                        f"the body is longer than body_length={body_length}")
                connection.write(chunk)
            await connection.drain()
        if chunked:
            connection.write(_LAST_CHUNK)
        elif sent != body_length:
            raise LocalProtocolError(
                f"the body ended after {sent} bytes; body_length={body_length}")
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()
