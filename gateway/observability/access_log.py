"""aiohttp's access log as one JSON line per request (the path, never the query string).

The line has the same shape as every other log line (timestamp, level, logger, event,
request_id) but is rendered here directly, field by field, and queued for the sink's batched
writes: going through structlog, stdlib logging and the `redact` processor cost about a third
of the gateway's CPU per proxied request. Its fields are known: numbers, the peer address, the
gateway's own ids, and four strings the client chose (method, path, user agent, a request id it
sent), which pass `scrub`, the redaction every other line gets, so the guarantee is the same:
no JWT-shaped string and no `code=`/`token=`-like parameter (a `;param` in a path, say)
reaches the log. The query string, where sign-in codes and state travel, is never logged.
"""

from __future__ import annotations

import logging
from json.encoder import encode_basestring_ascii as json_string
from time import gmtime, strftime
from time import time as wall_clock
from typing import TYPE_CHECKING

from aiohttp.abc import AbstractAccessLogger

from gateway.auth.policy import RULE
from gateway.observability.logging import scrub, write_rendered
from gateway.observability.request_id import REQUEST_ID
from gateway.observability.tracing import TRACE_ID
from gateway.target import TARGET

if TYPE_CHECKING:
    from aiohttp import web

LOGGER_NAME = "gateway.access"
MAX_PATH = 256  # of a refused target's raw path; a decided path is logged whole


class JsonAccessLogger(AbstractAccessLogger):
    """Logs `event="request"` with method, path, status, duration and the request id, and the
    deciding rule (`rule`) of a request the guard decided on."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.log_fields(request_id=request.get(REQUEST_ID), method=request.method,
                        path=_path(request), status=response.status, time=time,
                        bytes_sent=response.body_length, remote=request.remote,
                        user_agent=request.headers.get("User-Agent"),
                        trace_id=request.get(TRACE_ID), rule=request.get(RULE))

    def log_fields(self, *, request_id: str | None, method: str, path: str,  # noqa: PLR0913 - the line's fields
                   status: int, time: float, bytes_sent: int, remote: str | None,
                   user_agent: str | None, trace_id: str | None, rule: str | None) -> None:
        """`log`, from the line's fields (the express lane has no aiohttp request)."""
        if self.logger.disabled:  # `log.access_log = false`, perhaps since a reload
            return
        write_rendered(
            f'{{"event": "request", "request_id": {_text(request_id)}, '
            f'"method": {_text(method)}, "path": {_text(path)}, '
            f'"status": {status}, "duration_ms": {round(time * 1000, 2)!r}, '
            f'"bytes_sent": {bytes_sent}, "remote": {_text(remote)}, '
            f'"user_agent": {_text(user_agent)}, "level": "info", '
            f'"logger": "{LOGGER_NAME}", "timestamp": "{_timestamp()}"'
            + (f', "trace_id": {json_string(trace_id)}' if trace_id is not None else "")
            + (f', "rule": {json_string(rule)}}}' if rule is not None else "}"))

    @property
    def enabled(self) -> bool:
        """Asked by aiohttp once per connection: False skips even the timing."""
        return not self.logger.disabled and self.logger.isEnabledFor(logging.INFO)


def _text(value: str | None) -> str:
    """A client-chosen string as JSON, redacted like any log value; null for None."""
    return "null" if value is None else json_string(scrub(value))


def _path(request: web.BaseRequest) -> str:
    """The normalised path decided on, or the raw one (shortened) for a refused target."""
    target = request.get(TARGET)
    return target.path if target is not None else request.raw_path.partition("?")[0][:MAX_PATH]


class _Timestamps:
    """Now in UTC as ISO 8601 with microseconds and a Z; the calendar part is made once a
    second (datetime.now().isoformat() was 1.5 us a line)."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self) -> str:
        now = wall_clock()
        second = int(now)
        if second != self._second:
            self._second, self._text = second, strftime("%Y-%m-%dT%H:%M:%S", gmtime(second))
        return f"{self._text}.{int((now - second) * 1_000_000):06d}Z"


_timestamp = _Timestamps()
