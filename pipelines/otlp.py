"""OTLP wire helpers shared by every signal: parse, count, validate, split.

A signal is described once by `Shape` (its request type and the names of its three nested lists), so
one generic walk serves traces, metrics and logs instead of three near-identical copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from pipelines.errors import PermanentError


@dataclass(frozen=True, slots=True)
class Shape:
    request: Any
    response: Any
    resources: str
    scopes: str
    items: str
    item_noun: str


SHAPES: dict[str, Shape] = {
    "traces": Shape(
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        "resource_spans",
        "scope_spans",
        "spans",
        "span",
    ),
    "metrics": Shape(
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        "resource_metrics",
        "scope_metrics",
        "metrics",
        "metric",
    ),
    "logs": Shape(
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        "resource_logs",
        "scope_logs",
        "log_records",
        "log record",
    ),
}

_POINT_FIELDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def parse(signal: str, data: bytes) -> Any:
    try:
        return SHAPES[signal].request.FromString(data)
    except DecodeError as exc:
        raise PermanentError(f"cannot decode OTLP {signal} protobuf: {exc}") from exc


def metric_points(metric: Any) -> int:
    kind = metric.WhichOneof("data")
    if kind is None:
        return 0
    return len(getattr(metric, kind).data_points)


def count_items(signal: str, msg: Any) -> int:
    """Spans, metric data points or log records: the unit the Collector's metrics count."""
    shape = SHAPES[signal]
    if signal == "metrics":
        return sum(
            metric_points(m)
            for rm in msg.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
    return sum(
        len(getattr(scope, shape.items))
        for res in getattr(msg, shape.resources)
        for scope in getattr(res, shape.scopes)
    )


def _id_error(what: str, value: bytes, want: int, where: str) -> str:
    return f"invalid {what} at {where}: {len(value)} bytes, want {want}"


def validate(signal: str, msg: Any) -> int:
    """Check ids have their fixed lengths and return the item count; raise PermanentError if not."""
    if signal == "traces":
        return _validate_traces(msg)
    if signal == "logs":
        n = 0
        for ri, rl in enumerate(msg.resource_logs):
            for si, sl in enumerate(rl.scope_logs):
                for li, rec in enumerate(sl.log_records):
                    where = f"resource_logs[{ri}].scope_logs[{si}].log_records[{li}]"
                    if len(rec.trace_id) not in (0, 16):
                        raise PermanentError(_id_error("trace_id", rec.trace_id, 16, where))
                    if len(rec.span_id) not in (0, 8):
                        raise PermanentError(_id_error("span_id", rec.span_id, 8, where))
                n += len(sl.log_records)
        return n
    return count_items(signal, msg)


def _validate_traces(msg: Any) -> int:
    n = 0
    for ri, rs in enumerate(msg.resource_spans):
        for si, ss in enumerate(rs.scope_spans):
            spans = ss.spans
            for span in spans:
                # One cheap length test per id; the message is built only on failure.
                if len(span.trace_id) != 16 or len(span.span_id) != 8 or len(span.parent_span_id) not in (0, 8):
                    _raise_span_error(span, f"resource_spans[{ri}].scope_spans[{si}]")
                if span.links:
                    for link in span.links:
                        if len(link.trace_id) != 16 or len(link.span_id) != 8:
                            raise PermanentError(
                                f"invalid link in span {span.name!r} at resource_spans[{ri}].scope_spans[{si}]: "
                                "trace_id must be 16 bytes and span_id 8 bytes"
                            )
            n += len(spans)
    return n


def _raise_span_error(span: Any, where: str) -> None:
    where = f"{where} span {span.name!r}"
    if len(span.trace_id) != 16:
        raise PermanentError(_id_error("trace_id", span.trace_id, 16, where))
    if len(span.span_id) != 8:
        raise PermanentError(_id_error("span_id", span.span_id, 8, where))
    raise PermanentError(_id_error("parent_span_id", span.parent_span_id, 8, where))


def iter_items(signal: str, msg: Any) -> Iterator[tuple[Any, Any, Any]]:
    """Yield (resource_entry, scope_entry, item) for every item of a request."""
    shape = SHAPES[signal]
    for res in getattr(msg, shape.resources):
        for scope in getattr(res, shape.scopes):
            for item in getattr(scope, shape.items):
                yield res, scope, item


def _weight(signal: str, item: Any) -> int:
    return metric_points(item) if signal == "metrics" else 1


def split(signal: str, msg: Any, max_items: int, max_bytes: int) -> list[tuple[bytes, int]]:
    """Cut a request into serialized requests of at most `max_items` items and about `max_bytes`
    bytes each (0 = no bound), keeping each item with its resource and scope.

    A single item larger than `max_bytes` travels alone: it cannot be cut further.
    """
    shape = SHAPES[signal]
    out: list[tuple[bytes, int]] = []
    chunk = shape.request()
    chunk_items = 0
    chunk_bytes = 0
    cur_res_src: Any = None
    cur_scope_src: Any = None
    cur_scope: Any = None

    def flush() -> None:
        nonlocal chunk, chunk_items, chunk_bytes, cur_res_src, cur_scope_src
        if chunk_items or getattr(chunk, shape.resources):
            out.append((chunk.SerializeToString(), chunk_items))
        chunk = shape.request()
        chunk_items = 0
        chunk_bytes = 0
        cur_res_src = None
        cur_scope_src = None

    for res, scope, item in iter_items(signal, msg):
        w = _weight(signal, item)
        # 16 bytes of slack per item for the tags and lengths of the enclosing lists.
        size = item.ByteSize() + 16
        over_items = max_items and chunk_items and chunk_items + w > max_items
        over_bytes = max_bytes and chunk_items and chunk_bytes + size > max_bytes
        if over_items or over_bytes:
            flush()
        if res is not cur_res_src:
            new_res = getattr(chunk, shape.resources).add()
            new_res.resource.CopyFrom(res.resource)
            new_res.schema_url = res.schema_url
            cur_res_src = res
            cur_scope_src = None
            chunk_bytes += res.resource.ByteSize() + len(res.schema_url) + 16
            res_entry = new_res
        else:
            res_entry = getattr(chunk, shape.resources)[-1]
        if scope is not cur_scope_src:
            cur_scope = getattr(res_entry, shape.scopes).add()
            cur_scope.scope.CopyFrom(scope.scope)
            cur_scope.schema_url = scope.schema_url
            cur_scope_src = scope
            chunk_bytes += scope.scope.ByteSize() + len(scope.schema_url) + 16
        getattr(cur_scope, shape.items).append(item)
        chunk_items += w
        chunk_bytes += size
    if chunk_items:
        flush()
    return out


def split_at(signal: str, data: bytes, k: int) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
    """The first `k` items of a serialized request, and the rest, both serialized."""
    chunks = split(signal, parse(signal, data), k, 0)
    rest = chunks[1:]
    return chunks[0], (b"".join(c[0] for c in rest), sum(c[1] for c in rest))
