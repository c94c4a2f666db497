"""JSON logging for the gateway and the libraries under it, with secrets redacted.

One JSON object per line on stdout: `timestamp`, `level`, `event`, plus `request_id` for lines
that belong to a request (bound with structlog's contextvars). `redact` runs on every line,
structlog's and the standard library's alike, so a token cannot reach the log even by mistake.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

import structlog
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


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_PARAM.sub(r"\1=" + REDACTED, _JWT_LIKE.sub(REDACTED, value))
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
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger for a gateway module."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger

