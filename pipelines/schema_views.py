"""Views of the OTLP schema that upb parses a request with to validate it cheaply (`otlp.check`).

A view is a copy of the real FileDescriptorProtos (same names, in a private descriptor pool) with
field *labels* changed. Field numbers and wire types stay, so a view parses exactly the bytes the real
schema parses and rejects exactly what it rejects, with the same DecodeError text (the type names are
the real ones): every field keeps its real type, so upb decodes all nested content as the real parse
does, UTF-8 of proto3 strings included. What changes is what the parse keeps:

- every repeated message field is made singular: protobuf merges every occurrence of a singular
  message, concatenating repeated fields, so a request parses into one merged resource, scope, span,
  attribute... (fewer objects than the real parse; every occurrence is still decoded);
- the id fields (`trace_id`, `span_id`, ...) and `Span.trace_state` are made repeated, so the merged
  item lists every *occurrence* of them, in order (a real parse keeps the last one per item).

The `*_SCOPES` views keep resources and scopes as lists (only the items under a scope merge), to say
where a problem is. `COUNTS` and `LINKS` are small hand-written views: each item of each scope as its
serialized bytes (any signal: field 2 of field 2 of field 1), and all the spans' links as bytes.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FileDescriptor
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

_F = descriptor_pb2.FieldDescriptorProto
# Field numbers by message full name.
Fields = dict[str, tuple[int, ...]]


def _file_protos(file: FileDescriptor) -> list[descriptor_pb2.FileDescriptorProto]:
    """`file` and every file it depends on, dependencies first."""
    out: list[descriptor_pb2.FileDescriptorProto] = []
    seen: set[str] = set()

    def visit(f: FileDescriptor) -> None:
        if f.name in seen:
            return
        seen.add(f.name)
        for dep in f.dependencies:
            visit(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        f.CopyToProto(proto)
        out.append(proto)

    visit(file)
    return out


def schema_view(request: Any, repeated: Fields, keep: Fields) -> Any:
    """The message class of `request`'s schema with every repeated message field made singular but
    those in `keep` (and map fields), and the fields in `repeated` made repeated."""
    files = _file_protos(request.DESCRIPTOR.file)
    maps: set[str] = set()

    def find_maps(prefix: str, messages: Any) -> None:
        for m in messages:
            if m.options.map_entry:
                maps.add(f"{prefix}.{m.name}")
            find_maps(f"{prefix}.{m.name}", m.nested_type)

    for proto in files:
        find_maps(proto.package, proto.message_type)
    todo = {name: set(numbers) for name, numbers in repeated.items()}

    def edit(prefix: str, messages: Any) -> None:
        for m in messages:
            name = f"{prefix}.{m.name}"
            for fld in m.field:
                if fld.number in todo.get(name, ()):
                    todo[name].discard(fld.number)
                    fld.label = _F.LABEL_REPEATED
                elif (fld.label == _F.LABEL_REPEATED and fld.type == _F.TYPE_MESSAGE
                      and fld.number not in keep.get(name, ()) and fld.type_name[1:] not in maps):
                    fld.label = _F.LABEL_OPTIONAL
            edit(name, m.nested_type)

    for proto in files:
        edit(proto.package, proto.message_type)
    missing = {name: numbers for name, numbers in todo.items() if numbers}
    if missing:
        raise LookupError(f"schema view: no such fields {missing}")
    pool = descriptor_pool.DescriptorPool()
    for proto in files:
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(request.DESCRIPTOR.full_name))


_TRACE = "opentelemetry.proto.trace.v1"
_TRACE_IDS: Fields = {
    f"{_TRACE}.Span": (1, 2, 3, 4),  # trace_id, span_id, trace_state, parent_span_id
    f"{_TRACE}.Span.Link": (1, 2),  # trace_id, span_id
}
_TRACE_REQUEST = trace_service_pb2.ExportTraceServiceRequest
TRACES = schema_view(_TRACE_REQUEST, _TRACE_IDS, {})
TRACE_SCOPES = schema_view(_TRACE_REQUEST, _TRACE_IDS, {
    _TRACE_REQUEST.DESCRIPTOR.full_name: (1,), f"{_TRACE}.ResourceSpans": (2,)})

_LOGS = "opentelemetry.proto.logs.v1"
_LOG_IDS: Fields = {f"{_LOGS}.LogRecord": (9, 10)}  # trace_id, span_id
_LOG_REQUEST = logs_service_pb2.ExportLogsServiceRequest
LOGS = schema_view(_LOG_REQUEST, _LOG_IDS, {})
LOG_SCOPES = schema_view(_LOG_REQUEST, _LOG_IDS, {
    _LOG_REQUEST.DESCRIPTOR.full_name: (1,), f"{_LOGS}.ResourceLogs": (2,)})


def _bytes_views() -> tuple[Any, Any]:
    fd = descriptor_pb2.FileDescriptorProto(name="otel_gateway_bytes_view.proto", package="otelgw.bytes",
                                            syntax="proto3")

    def message(name: str, field: str, number: int, label: int, type_name: str | None) -> None:
        fld = fd.message_type.add(name=name).field.add(name=field, number=number, label=label,
                                                       type=_F.TYPE_MESSAGE if type_name else _F.TYPE_BYTES)
        if type_name:
            fld.type_name = f".otelgw.bytes.{type_name}"

    # Items: request.1 (resources) -> .2 (scopes) -> .2 (items, as bytes: not parsed).
    message("Scope", "items", 2, _F.LABEL_REPEATED, None)
    message("Resource", "scopes", 2, _F.LABEL_REPEATED, "Scope")
    message("Request", "resources", 1, _F.LABEL_REPEATED, "Resource")
    # Links: the same path to spans, all merged, then .13 (links, as bytes).
    message("LinkSpan", "links", 13, _F.LABEL_REPEATED, None)
    message("LinkScope", "span", 2, _F.LABEL_OPTIONAL, "LinkSpan")
    message("LinkResource", "scope", 2, _F.LABEL_OPTIONAL, "LinkScope")
    message("LinkRequest", "resource", 1, _F.LABEL_OPTIONAL, "LinkResource")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"otelgw.bytes.{name}"))
                 for name in ("Request", "LinkRequest"))  # type: ignore[return-value]


COUNTS, LINKS = _bytes_views()
