"""Jaeger Thrift (`jaeger.thrift`: Batch, Process, Span, Tag, Log, SpanRef) to the model: a Batch in the
binary protocol (`thrift_http`'s body), or the agent's `emitBatch` message in the binary or compact
protocol (a UDP packet). Structs as the public IDL declares them, read by `thrift_wire`."""

from __future__ import annotations

from typing import Any, Literal

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from pipelines.jaeger import model
from pipelines.jaeger.thrift_wire import (
    BOOL,
    DOUBLE,
    I32,
    I64,
    LIST,
    STRING,
    STRUCT,
    BinaryReader,
    CompactReader,
    Reader,
    Struct,
    ThriftError,
    read_struct,
    skip,
)
from pipelines.zipkin.attrs import Value

Protocol = Literal["binary", "compact"]
_MASK64 = (1 << 64) - 1


def _required(*names: str) -> frozenset[str]:
    return frozenset(names)


TAG = Struct("Tag", {1: ("key", STRING, STRING), 2: ("vType", I32, I32), 3: ("vStr", STRING, STRING),
                     4: ("vDouble", DOUBLE, DOUBLE), 5: ("vBool", BOOL, BOOL), 6: ("vLong", I64, I64),
                     7: ("vBinary", STRING, STRING)}, _required("key", "vType"))
LOG = Struct("Log", {1: ("timestamp", I64, I64), 2: ("fields", LIST, [TAG])}, _required("timestamp", "fields"))
SPAN_REF = Struct("SpanRef", {1: ("refType", I32, I32), 2: ("traceIdLow", I64, I64), 3: ("traceIdHigh", I64, I64),
                              4: ("spanId", I64, I64)}, _required("refType", "traceIdLow", "traceIdHigh", "spanId"))
SPAN = Struct("Span", {
    1: ("traceIdLow", I64, I64), 2: ("traceIdHigh", I64, I64), 3: ("spanId", I64, I64),
    4: ("parentSpanId", I64, I64), 5: ("operationName", STRING, STRING), 6: ("references", LIST, [SPAN_REF]),
    7: ("flags", I32, I32), 8: ("startTime", I64, I64), 9: ("duration", I64, I64), 10: ("tags", LIST, [TAG]),
    11: ("logs", LIST, [LOG]),
}, _required("traceIdLow", "traceIdHigh", "spanId", "parentSpanId", "operationName", "flags", "startTime",
             "duration"))
PROCESS = Struct("Process", {1: ("serviceName", STRING, STRING), 2: ("tags", LIST, [TAG])}, _required("serviceName"))
CLIENT_STATS = Struct("ClientStats", {1: ("fullQueueDroppedSpans", I64, I64), 2: ("tooLargeDroppedSpans", I64, I64),
                                      3: ("failedToEmitSpans", I64, I64)},
                      _required("fullQueueDroppedSpans", "tooLargeDroppedSpans", "failedToEmitSpans"))
BATCH = Struct("Batch", {1: ("process", STRUCT, PROCESS), 2: ("spans", LIST, [SPAN]), 3: ("seqNo", I64, I64),
                         4: ("stats", STRUCT, CLIENT_STATS)}, _required("process", "spans"))
EMIT_BATCH_ARGS = Struct("emitBatch_args", {1: ("batch", STRUCT, BATCH)})
_TYPE_NAMES = {0: "STRING", 1: "DOUBLE", 2: "BOOL", 3: "LONG", 4: "BINARY"}


def _str(raw: bytes) -> str:
    # Go keeps a string's bytes as they are; OTLP strings are UTF-8
    return raw.decode("utf-8", "replace")


def _tag(t: dict[str, Any]) -> model.Tag:
    vtype, v_str = t["vType"], _str(t.get("vStr", b""))
    value: Value
    if vtype == 0:
        value = ("s", v_str)
    elif vtype == 1:
        value = ("d", t.get("vDouble", 0.0))
    elif vtype == 2:
        value = ("b", t.get("vBool", False))
    elif vtype == 3:
        value = ("i", t.get("vLong", 0))
    elif vtype == 4:
        value = ("y", t.get("vBinary", b""))
    else:  # Go prints the enum's String() of an unknown value, "<UNSET>"
        value = ("s", '<Unknown Jaeger TagType "<UNSET>">')
    return model.Tag(_str(t["key"]), value, v_str)


def _tags(items: list[dict[str, Any]] | None) -> list[model.Tag]:
    return [_tag(t) for t in items or ()]


def _span(s: dict[str, Any]) -> model.Span | None:
    """None for a span with every field at its zero value, which the Collector skips."""
    start, duration = s["startTime"], s["duration"]
    if not any((s["traceIdLow"], s["traceIdHigh"], s["spanId"], s["parentSpanId"], s["operationName"], s["flags"],
                start, duration)) and not any(k in s for k in ("references", "tags", "logs")):
        return None
    return model.Span(
        trace_high=s["traceIdHigh"] & _MASK64, trace_low=s["traceIdLow"] & _MASK64, span_id=s["spanId"] & _MASK64,
        name=_str(s["operationName"]), start=(start * 1000) & _MASK64, end=((start + duration) * 1000) & _MASK64,
        flags=s["flags"], parent_span_id=s["parentSpanId"] & _MASK64,
        refs=[model.Ref(r["refType"], r["traceIdHigh"] & _MASK64, r["traceIdLow"] & _MASK64, r["spanId"] & _MASK64)
              for r in s.get("references", ())],
        tags=_tags(s.get("tags")),
        logs=[model.Log((log["timestamp"] * 1000) & _MASK64, _tags(log["fields"])) for log in s.get("logs", ())],
    )


def _request(batch: dict[str, Any]) -> trace_service_pb2.ExportTraceServiceRequest:
    process = batch["process"]
    spans = [span for span in map(_span, batch["spans"]) if span is not None]
    return model.thrift_request(model.Process(_str(process["serviceName"]), _tags(process.get("tags"))), spans)


def _read(reader: Reader, schema: Struct) -> dict[str, Any]:
    try:
        return read_struct(reader, schema)
    except RecursionError:
        raise ThriftError("thrift: nested too deep") from None


def decode_batch(body: bytes) -> trace_service_pb2.ExportTraceServiceRequest:
    """A `thrift_http` body: one Batch in the binary protocol (bytes after it are ignored, as there)."""
    return _request(_read(BinaryReader(body), BATCH))


def decode_agent(packet: bytes, protocol: Protocol) -> trace_service_pb2.ExportTraceServiceRequest | None:
    """An agent UDP packet: the `emitBatch` message; None when it carries no batch."""
    reader: Reader = BinaryReader(packet) if protocol == "binary" else CompactReader(packet)
    name = reader.message_begin()
    if name != "emitBatch":
        if name == "emitZipkinBatch":
            raise ThriftError("thrift: emitZipkinBatch (Zipkin spans) is not supported by the jaeger receiver")
        skip(reader, STRUCT)
        raise ThriftError(f"thrift: unknown function {name[:100]!r}")
    args = _read(reader, EMIT_BATCH_ARGS)
    return _request(args["batch"]) if "batch" in args else None
