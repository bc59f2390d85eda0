"""OTLP wire helpers shared by every signal: parse, count, validate, check, split.

A signal is described once by `Shape` (its request type and the names of its three nested lists), so
one generic walk serves traces, metrics and logs instead of three near-identical copies.

`check(signal, data)` validates serialized traces and logs at about the cost of one upb parse, with no
Python bytecode run per span: upb parses the bytes against a view of the schema
(`pipelines.schema_views`) that rejects exactly what the real parse rejects (same DecodeError text)
and merges the request into one item whose id fields list every *occurrence*, in order. For traces, a
tiny second view gives each span's serialized bytes, and C-level maps check that every span begins
with a trace_id field of 16 bytes then a span_id field of 8 (as encoders write them) and that there
are as many occurrences as spans, so each is its span's only one; every parent_span_id occurrence
must be empty or 8 bytes; links alike. Where a check fails (or spans are laid out otherwise), the real
parse and `validate` (the precise per-span walk) decide and word the error.

One deliberate difference with `validate`: ids are checked per occurrence of the field, so a span or
log record with an id occurrence of a wrong length (neither the fixed length nor empty) is refused even
when a later occurrence of the same field, which a parser keeps, is right. The Collector's pdata
unmarshal refuses such bytes too, so they are never forwarded to one. (A repeated id field of a right
length is not refused: the precise walk decides, as `validate` does.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from pipelines import schema_views
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

# The gRPC method each signal is exported with (the OTLP services' one method, Export).
GRPC_EXPORT_PATHS: dict[str, str] = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}

_POINT_FIELDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def parse(signal: str, data: bytes) -> Any:
    return _decode(SHAPES[signal].request, signal, data)


def _decode(request: Any, signal: str, data: bytes) -> Any:
    try:
        return request.FromString(data)
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


class Checked:
    """What `check` learnt about a request's bytes, for the Batch that carries them (`Batch.ids`).

    The bytes parse with the real schema and their ids are valid. `msg` is a real parse where the
    check made one (metrics; traces or logs that needed the precise walk). For traces: `ids_first`,
    every span's bytes begin with its only trace_id field (16 bytes) then its only span_id field
    (8 bytes), so span i's trace id is `body[2:18]` of its serialized body; `plain_states`, no span
    has a non-empty trace_state."""

    __slots__ = ("ids_first", "msg", "plain_states")

    def __init__(self, msg: Any = None, ids_first: bool = False, plain_states: bool = False) -> None:
        self.msg = msg
        self.ids_first = ids_first
        self.plain_states = plain_states


def check(signal: str, data: bytes) -> tuple[int, Checked]:
    """Validate a serialized request as `parse` then `validate` do (but for the occurrence rule in the
    module docstring); return its item count and what was learnt. Raises PermanentError."""
    if signal == "traces":
        return _check_traces(data)
    if signal == "logs":
        return _check_logs(data)
    msg = parse(signal, data)
    return validate(signal, msg), Checked(msg)


_ITEMS = attrgetter("items")
_AT_18 = itemgetter(18)
_AT_19 = itemgetter(19)


def _item_bodies(data: bytes) -> list[Any]:
    """Per scope (traces or logs), the container of its items' serialized bodies."""
    resources = schema_views.COUNTS.FromString(data).resources
    return list(map(_ITEMS, chain.from_iterable(map(attrgetter("scopes"), resources))))


def _ids_first(bodies: list[bytes]) -> bool:
    """Each body (a span or a link) begins with field 1 of 16 bytes then field 2 of 8 bytes: tags 0x0a,
    0x12. Between the least and the greatest body, all share their first two bytes."""
    if not bodies:
        return True
    head = b"\n\x10"
    try:
        return (min(bodies).startswith(head) and max(bodies).startswith(head)
                and set(map(_AT_18, bodies)) == {0x12} and set(map(_AT_19, bodies)) == {8})
    except IndexError:  # a body of field 1 alone
        return False


def _check_traces(data: bytes) -> tuple[int, Checked]:
    span = _decode(schema_views.TRACES, "traces", data).resource_spans.scope_spans.spans  # all merged
    try:
        bodies = list(chain.from_iterable(_item_bodies(data)))
        n = len(bodies)
        # Every span starts with a trace_id and a span_id of the right lengths, and there are no other
        # occurrences: then each is its span's only one, the one a parser keeps.
        ok = (len(span.trace_id) == n == len(span.span_id) and _ids_first(bodies)
              and set(map(len, span.parent_span_id)) <= {0, 8})
        if ok and span.HasField("links"):
            link = span.links
            links = list(schema_views.LINKS.FromString(data).resource.scope.span.links)
            ok = len(link.trace_id) == len(links) == len(link.span_id) and _ids_first(links)
    except DecodeError:  # not expected once the view parsed: the precise path decides
        ok = False
    if not ok:
        return _check_precisely("traces", data)
    return n, Checked(ids_first=True, plain_states=not any(span.trace_state))


def _check_logs(data: bytes) -> tuple[int, Checked]:
    record = _decode(schema_views.LOGS, "logs", data).resource_logs.scope_logs.log_records  # all merged
    if set(map(len, record.trace_id)) <= {0, 16} and set(map(len, record.span_id)) <= {0, 8}:
        try:
            return sum(map(len, _item_bodies(data))), Checked()
        except DecodeError:
            pass
    return _check_precisely("logs", data)


def _check_precisely(signal: str, data: bytes) -> tuple[int, Checked]:
    """The real parse and the per-item walk (which name the error exactly), then the occurrence rule."""
    msg = parse(signal, data)
    n = validate(signal, msg)
    error = _occurrence_error(signal, data)
    if error:
        raise PermanentError(error)
    return n, Checked(msg)


def _occurrence_error(signal: str, data: bytes) -> str | None:
    """The first id occurrence of a wrong length (neither its fixed length nor empty), described."""
    shape = SHAPES[signal]
    view = (schema_views.TRACE_SCOPES if signal == "traces" else schema_views.LOG_SCOPES).FromString(data)
    for ri, res in enumerate(getattr(view, shape.resources)):
        for si, scope in enumerate(getattr(res, shape.scopes)):
            item = getattr(scope, shape.items)  # the scope's items, merged
            fields = [("", item, "trace_id", 16), ("", item, "span_id", 8)]
            if signal == "traces":
                fields += [("", item, "parent_span_id", 8), ("link ", item.links, "trace_id", 16),
                           ("link ", item.links, "span_id", 8)]
            for what, holder, name, want in fields:
                for value in getattr(holder, name):
                    if len(value) not in (0, want):
                        return (f"invalid {what}{name} at {shape.resources}[{ri}].{shape.scopes}[{si}]: "
                                f"a {shape.item_noun} has an occurrence of {len(value)} bytes, want {want} "
                                "(every occurrence of the field counts, not only the last)")
    return None


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
