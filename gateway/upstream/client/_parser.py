"""Reading responses off one connection with httptools (llhttp), within limits on their heads.

Where llhttp needs help:
- A response to HEAD has no body whatever its Content-Length says, and llhttp (which does not
  know the request method) would wait for one: the parser is stopped at the end of the head,
  and the bytes received are checked for anything after it.
- A body without Content-Length or chunked runs until the connection closes; llhttp cannot be
  told of EOF through httptools, so `end_of_stream()` completes it.
- Keep-alive is asked in on_message_complete: asked later, llhttp always answers no.
- Header size: llhttp has no limit, and httptools joins a header value split across reads by
  concatenation, so bytes fed without progress of the body are counted and cut at the limit.
"""

from __future__ import annotations

from typing import Protocol

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
    HttpResponseParser,
)

from gateway.upstream.client._exceptions import RemoteProtocolError

Header = tuple[str, str]


class ResponseEvents(Protocol):
    """What a parser tells its connection."""

    def head_received(self) -> None: ...

    def body_received(self, chunk: bytes) -> None: ...

    def message_complete(self) -> None: ...


class _HeadResponseComplete(Exception):
    """Stops llhttp after the head of a response to HEAD."""


class _UnsolicitedResponse(Exception):
    """Stops llhttp at bytes that follow a complete response: they answer nothing we asked."""


class ResponseParser:
    """The response to the current request, parsed as its bytes arrive.

    `start()` before each request; `feed()` with every byte received, which calls the events
    back and raises RemoteProtocolError for bytes that are not an acceptable response (malformed,
    a head over the limits, 101 Switching Protocols). Once `complete`, `keep_alive` says whether
    the upstream keeps the connection open and `spoiled` whether more bytes than the response
    came: a connection is reusable only with the first and without the second.
    """

    __slots__ = (
        "_body_until_eof", "_connection_tokens", "_events", "_head_raw", "_header_bytes",
        "_interim", "_is_head", "_llhttp", "_max_header_bytes", "_max_header_count",
        "_unproductive", "complete", "content_length", "head_done", "headers", "keep_alive",
        "reason", "spoiled", "status",
    )

    def __init__(self, events: ResponseEvents, *, max_header_bytes: int,
                 max_header_count: int) -> None:
        self._events = events
        self._max_header_bytes = max_header_bytes
        self._max_header_count = max_header_count
        self._llhttp: HttpResponseParser | None = None
        self.start(is_head=False)

    def start(self, *, is_head: bool) -> None:
        """Expect the response to a new request (`is_head`: the request is a HEAD)."""
        if self._llhttp is None:
            self._llhttp = HttpResponseParser(self)  # reused across keep-alive responses
        self._is_head = is_head
        self._head_raw: bytearray | None = bytearray() if is_head else None
        self.status = 0
        self.reason = b""
        self.headers: list[Header] = []
        self.content_length: int | None = None
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.spoiled = False
        self._header_bytes = 0
        self._connection_tokens = b""  # gathered for responses to HEAD only
        self._body_until_eof = True
        self._interim = 0
        self._unproductive = 0  # bytes fed since the last body byte (head, framing, trailers)

    def feed(self, data: bytes) -> None:
        """Parse received bytes; RemoteProtocolError if they are not an acceptable response."""
        llhttp = self._llhttp
        if llhttp is None or self.complete:
            self.spoiled = True  # bytes after the response: they answer nothing we asked
            return
        self._unproductive += len(data)
        if self._head_raw is not None:
            self._head_raw += data
        try:
            llhttp.feed_data(data)
        except HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _HeadResponseComplete):
                self._complete_head_response()
            elif isinstance(cause, RemoteProtocolError):
                self._llhttp = None
                raise cause from None
            else:
                self._stopped_early(f"malformed response: {exc}", exc)
        except HttpParserUpgrade:
            self._stopped_early("the upstream switched protocols")
        except HttpParserError as exc:
            self._stopped_early(f"malformed response: {exc}", exc)
        else:
            if self._unproductive > self._max_header_bytes and not self.complete:
                raise RemoteProtocolError(
                    f"response head or trailers exceed {self._max_header_bytes} bytes")

    def end_of_stream(self) -> bool:
        """The connection ended: True when that completes a body that runs until close."""
        if self.head_done and not self.complete and self._body_until_eof:
            self.keep_alive = False
            self.complete = True
            self._events.message_complete()
            return True
        return False

    def _stopped_early(self, message: str, exc: BaseException | None = None) -> None:
        self._llhttp = None  # llhttp is in an error state: a new one for the next response
        if self.complete:  # the response stands; what followed it spoils the connection
            self.spoiled = True
            return
        raise RemoteProtocolError(message) from exc

    def _complete_head_response(self) -> None:
        # llhttp stopped at the end of the final head. Every head ends at its first CRLF CRLF
        # (llhttp is strict: no bare LF, no folded lines), so the final one ends at the
        # (interim + 1)-th; any byte after it is a body the upstream sent anyway.
        self._llhttp = None
        raw = self._head_raw or b""
        end = -4
        for _ in range(self._interim + 1):
            end = raw.find(b"\r\n\r\n", end + 4)
            if end < 0:
                break
        self.spoiled = end < 0 or len(raw) != end + 4
        self.complete = True
        self._events.message_complete()

    def _head_keeps_alive(self) -> bool:
        # llhttp's should_keep_alive() says no to a HEAD response without Content-Length or
        # chunked (it expects a body until EOF); a response to HEAD never has a body.
        assert self._llhttp is not None
        tokens = {token.strip() for token in self._connection_tokens.split(b",")}
        if self._llhttp.get_http_version() == "1.0":
            return b"keep-alive" in tokens and b"close" not in tokens
        return b"close" not in tokens

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise _UnsolicitedResponse

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            return  # a trailer: dropped (the unproductive-bytes limit bounds them)
        self._header_bytes += len(name) + len(value) + 4
        headers = self.headers
        headers.append((name.decode("utf-8", "surrogateescape"),
                        value.decode("utf-8", "surrogateescape")))
        if len(headers) > self._max_header_count:
            raise RemoteProtocolError(
                f"the response has more than {self._max_header_count} header fields")
        if self._header_bytes > self._max_header_bytes:
            raise RemoteProtocolError(
                f"the response head exceeds {self._max_header_bytes} bytes")
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            self.content_length = int(value)  # llhttp has checked it is all digits
            self._body_until_eof = False
        elif size == 10 and self._is_head and name.lower() == b"connection":
            self._connection_tokens += value.lower() + b","
        elif size == 17 and name.lower() == b"transfer-encoding":
            last_coding = value.rsplit(b",", 1)[-1].strip().lower()
            self._body_until_eof = last_coding != b"chunked"

    def on_headers_complete(self) -> None:
        assert self._llhttp is not None
        status = self._llhttp.get_status_code()
        if status < 200:
            if status == 101:
                raise RemoteProtocolError("101 Switching Protocols: upgrades are not handled here")
            self._interim += 1  # 100 Continue, 103 Early Hints, ...: skipped
            self.reason = b""
            self.headers = []
            self.content_length = None
            self._connection_tokens = b""
            self._body_until_eof = True
            return
        self.status = status
        self.head_done = True
        self._unproductive = 0
        if self._is_head:
            self.keep_alive = self._head_keeps_alive()
            raise _HeadResponseComplete
        self._events.head_received()

    def on_body(self, body: bytes) -> None:
        self._unproductive = 0
        self._events.body_received(body)

    def on_message_complete(self) -> None:
        if not self.head_done:
            return  # the end of an interim (1xx) response
        assert self._llhttp is not None
        self.keep_alive = self._llhttp.should_keep_alive()  # only true here, never later
        self.complete = True
        self._events.message_complete()
