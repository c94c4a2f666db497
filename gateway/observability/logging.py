"""JSON logging for the gateway and the libraries under it, with secrets redacted.

One JSON object per line on stdout: `timestamp`, `level`, `event`, plus `request_id` for lines
that belong to a request (bound with structlog's contextvars). `redact` runs on every line,
structlog's and the standard library's alike, so a token cannot reach the log even by mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import re
import sys
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from gateway.observability.tracing import add_trace_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from structlog.typing import EventDict, Processor, WrappedLogger

SENSITIVE_KEYS = frozenset({
    "access_token", "authorization", "client_secret", "code", "code_verifier", "cookie",
    "id_token", "id_token_hint", "password", "refresh_token", "secret", "set-cookie",
    "token", "x-amzn-oidc-accesstoken", "x-amzn-oidc-data", "x-auth-request-access-token",
})
_JWT_LIKE = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*(\.[\w-]*\.[\w-]*)?")
_SECRET_PARAM = re.compile(
    r"(?i)\b(code|state|token|refresh_token|access_token|id_token|id_token_hint|client_secret"
    r"|code_verifier|password)=([^&\s\"']+)")
REDACTED = "[redacted]"


def scrub(text: str) -> str:
    """`text` with JWT-shaped strings and secret query parameters masked.

    Most text holds neither "eyJ" (where every JWT starts) nor "=" (in every parameter): two
    substring searches then spare it the regular expressions.
    """
    if "eyJ" not in text and "=" not in text:
        return text
    return _SECRET_PARAM.sub(r"\1=" + REDACTED, _JWT_LIKE.sub(REDACTED, text))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _scrub(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Mask values of sensitive keys, JWT-shaped strings and secret query parameters."""
    for key, value in list(event_dict.items()):
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(value)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        add_trace_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one JSON renderer on `stream` (stdout)."""
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *_shared_processors(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *_shared_processors()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer()],
    )
    global _handler  # noqa: PLW0603 - one process-wide log sink, like logging's own root
    handler = _handler = _Handler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def set_log_level(level: str) -> None:
    """Change the level of every logger at once (a reload)."""
    logging.getLogger().setLevel(level.upper())


ACCESS_FLUSH_SECONDS = 0.1


class _Handler(logging.StreamHandler[TextIO]):
    """The log sink. Rendered access lines wait up to ACCESS_FLUSH_SECONDS and leave in one
    write (with PYTHONUNBUFFERED, as in the image, each line was a write syscall: ~60 us per
    proxied request under load); any other record flushes them first, so order is kept.

    A failing destination (a full disk: ENOSPC; a closed pipe) never reaches the code that
    logs: the lines are dropped and counted (`on_dropped`), stderr hears of it once per
    outage (if it can), and the first write that succeeds again starts with a
    `log_lines_dropped` line saying how many were lost.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.pending: list[str] = []
        self.flush_scheduled = False
        self.on_dropped: Callable[[int], None] | None = None
        self._dropped = 0  # lines lost in the current outage

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - a bug in a processor: logging's own report of it
            self.handleError(record)
            return
        self.pending.append(line + self.terminator)
        self.flush_pending()

    def flush_pending(self) -> None:
        self.flush_scheduled = False
        if not self.pending:
            return
        lines, self.pending = self.pending, []
        with self.lock or nullcontext():
            text = "".join(lines)
            if self._dropped:
                text = _dropped_line(self._dropped) + text
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError) as exc:  # ValueError: the stream was closed
                self._lost(len(lines), exc)
            else:
                self._dropped = 0

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().flush()

    def _lost(self, count: int, exc: Exception) -> None:
        first = not self._dropped
        self._dropped += count
        if self.on_dropped is not None:
            self.on_dropped(count)
        if first:
            errno_name = errno.errorcode.get(getattr(exc, "errno", None) or 0, "")
            cause = f"{errno_name}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
            with contextlib.suppress(OSError, ValueError, AttributeError):  # stderr may be None
                sys.stderr.write(f"cognito-gateway: the log cannot be written ({cause}); "
                                 "its lines are dropped until it can\n")
                sys.stderr.flush()


def _dropped_line(count: int) -> str:
    return json.dumps({
        "event": "log_lines_dropped", "count": count, "level": "warning",
        "logger": "gateway.logging",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")}) + "\n"


_handler: _Handler | None = None


def count_dropped_lines(on_dropped: Callable[[int], None]) -> None:
    """Call `on_dropped(n)` whenever n log lines are lost to a failing destination."""
    if _handler is not None:
        _handler.on_dropped = on_dropped


def write_rendered(line: str) -> None:
    """Queue an already rendered (and redacted) JSON line for the log sink."""
    handler = _handler
    if handler is None:
        return
    handler.pending.append(line + "\n")
    if handler.flush_scheduled:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        handler.flush_pending()
        return
    handler.flush_scheduled = True
    loop.call_later(ACCESS_FLUSH_SECONDS, handler.flush_pending)


def flush_logs() -> None:
    """Write out queued access lines now (at shutdown, and before tests read the log)."""
    if _handler is not None:
        _handler.flush_pending()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger for a gateway module."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger

