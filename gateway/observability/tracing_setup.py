"""Choosing the tracing at start: off, or OpenTelemetry as the OTEL_* variables ask.

`setup_tracing()` reads the process environment once and returns either the shared do-nothing
facade (`TRACING_OFF`) or `gateway.observability.otel.OtelTracing`. It lives apart from the
facade (gateway.observability.tracing) because it imports the OpenTelemetry implementation,
which itself imports the facade's attribute allow-list: keeping the choice here leaves the
import graph one-directional (tracing <- otel <- tracing_setup).
"""

from __future__ import annotations

import os
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

import structlog

from gateway.observability.tracing import TRACING_OFF, Tracing

if TYPE_CHECKING:
    from collections.abc import Mapping

# The lines keep the logger name they were written under before this module was split out:
# operators filter `tracing_on` / `tracing_off` by it.
log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("gateway.observability.tracing")

_SUPPORTED_PROTOCOLS = frozenset({"", "http/protobuf"})
_WARNINGS: Final = MappingProxyType({
    "unsupported_protocol": "the gateway exports OTLP over HTTP/protobuf only: set "
                            "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and point the endpoint "
                            "at the collector's HTTP port (4318)",
    "unsupported_exporter": "the gateway exports traces with OTLP only: set "
                            "OTEL_TRACES_EXPORTER=otlp (or none)",
    "otel_extra_missing": "an OTLP endpoint is set but OpenTelemetry is not installed: "
                          "install cognito-gateway[otel]",
    "invalid_settings": "OpenTelemetry refused the batching settings: OTEL_BSP_* values must "
                        "be positive, and OTEL_BSP_MAX_EXPORT_BATCH_SIZE at most "
                        "OTEL_BSP_MAX_QUEUE_SIZE",
})


def reason_tracing_is_off(environ: Mapping[str, str]) -> str | None:
    """Why these OTEL_* variables leave tracing off (a bounded label), or None to trace.

    `no_endpoint` and `sdk_disabled` and `exporter_none` are choices; `unsupported_protocol`
    (gRPC or JSON asked for) and `unsupported_exporter` are mistakes worth a warning.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "sdk_disabled"
    exporters = {name.strip().lower()
                 for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}
    if "otlp" not in exporters:
        return "exporter_none" if exporters <= {"none", ""} else "unsupported_exporter"
    if not (environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
            or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()):
        return "no_endpoint"
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip())
    if protocol.lower() not in _SUPPORTED_PROTOCOLS:
        return "unsupported_protocol"
    return None


def setup_tracing() -> Tracing:
    """The tracing the process environment asks for, decided once.

    Call it at start in each serving process (after any fork): the exporter's thread belongs
    to the process that made it. A mistake in the OTEL_* variables logs `tracing_off` with a
    hint and leaves tracing off (values the SDK can repair it repairs, with its own warning);
    it never stops the gateway.
    """
    reason = reason_tracing_is_off(os.environ)
    if reason is None:
        try:
            from gateway.observability.otel import OtelTracing  # noqa: PLC0415 - the extra
        except ImportError:
            reason = "otel_extra_missing"
        else:
            try:
                tracing = OtelTracing.from_environment()
            except ValueError:  # the SDK refuses some OTEL_BSP_* combinations outright
                reason = "invalid_settings"
            else:
                log.info("tracing_on", service_name=tracing.service_name,
                         sampler=tracing.sampler)
                return tracing
    if reason in _WARNINGS:
        log.warning("tracing_off", reason=reason, hint=_WARNINGS[reason])
    return TRACING_OFF
