"""A real OTLP/HTTP trace receiver on 127.0.0.1, for tests of the gateway's tracing.

`OtlpReceiver` serves a small aiohttp app from its own thread and event loop, so the SDK's
exporter (blocking HTTP from its batch thread, or from `force_flush()` on the test's loop
thread) never waits on the loop it is blocking. It accepts `POST /v1/traces` with
`Content-Type: application/x-protobuf` (plain, gzip or deflate, as the exporter's
`OTEL_EXPORTER_OTLP_COMPRESSION` chooses), decodes the
`ExportTraceServiceRequest`, keeps every span as a `ReceivedSpan`, and answers as the OTLP
specification says: 200 with an `ExportTraceServiceResponse`; 415 for another content type; 400
with a `google.rpc.Status` for a body that is not an export request.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from aiohttp import web
from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType

    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

PROTOBUF = "application/x-protobuf"
START_WITHIN = 10.0
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # the exporter's own limit (max_request_size)
INVALID_ARGUMENT = 3  # google.rpc.Code

AttributeValue: TypeAlias = (str | bool | int | float | bytes | list["AttributeValue"]
                             | dict[str, "AttributeValue"])


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, decoded: ids in lowercase hex, enums by their short names."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str  # SERVER, CLIENT, INTERNAL, ...
    attributes: dict[str, AttributeValue]
    status: str  # UNSET, OK, ERROR
    status_message: str
    events: list[str]
    resource: dict[str, AttributeValue]
    scope: str


def _value(value: AnyValue) -> AttributeValue:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if which is None:
        return ""
    decoded: AttributeValue = getattr(value, which)
    return decoded


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, AttributeValue]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _spans(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(ReceivedSpan(
                    name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex() or None,
                    kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                    attributes=_attributes(span.attributes),
                    status=Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
                    status_message=span.status.message,
                    events=[event.name for event in span.events],
                    resource=resource, scope=scope_spans.scope.name))
    return spans


def rpc_status(code: int, message: str) -> bytes:
    """A protobuf-encoded `google.rpc.Status` (code: field 1, message: field 2), both short."""
    text = message.encode()
    assert code < 128, "a one-byte varint"
    assert len(text) < 128, "a one-byte length"
    return bytes([0x08, code, 0x12, len(text)]) + text


class OtlpReceiver:
    """An OTLP/HTTP endpoint on a free loopback port; `with` starts and stops it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self._bodies: list[bytes] = []
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="otlp-receiver", daemon=True)
        self.port = 0

    @property
    def endpoint(self) -> str:
        """The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT` (the SDK appends /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far, in arrival order."""
        with self._lock:
            return list(self._spans)

    @property
    def bodies(self) -> list[bytes]:
        """Every accepted request body, decompressed: what left the process, byte for byte."""
        with self._lock:
            return list(self._bodies)

    def span(self, name: str) -> ReceivedSpan:
        """The one span received with this name (fails when there are none or several)."""
        found = [span for span in self.spans if span.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans]}"
        return found[0]

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        if not self._started.wait(START_WITHIN):
            raise RuntimeError(f"the OTLP receiver did not start within {START_WITHIN} s")
        if self._failure is not None:
            raise RuntimeError("the OTLP receiver failed to start") from self._failure
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_WITHIN)
        assert not self._thread.is_alive(), "the OTLP receiver did not stop"

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - start() raises from it
            self._failure = exc
            self._started.set()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/v1/traces", self._export)
        runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._started.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _export(self, request: web.Request) -> web.Response:
        if request.content_type != PROTOBUF:
            return web.Response(status=415, body=rpc_status(
                INVALID_ARGUMENT, "only application/x-protobuf"), content_type=PROTOBUF)
        body = await request.read()
        encoding = request.headers.get("Content-Encoding", "").lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            export = ExportTraceServiceRequest.FromString(body)
        except (DecodeError, OSError, EOFError, zlib.error):
            return web.Response(status=400, body=rpc_status(
                INVALID_ARGUMENT, "not an ExportTraceServiceRequest"), content_type=PROTOBUF)
        spans = _spans(export)
        with self._lock:
            self._bodies.append(body)
            self._spans.extend(spans)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type=PROTOBUF)
