"""Zipkin v2 protobuf (`ListOfSpans`, Content-Type application/x-protobuf) to the v2 model, with
zipkin-go's `zipkin_proto3.ParseSpans` rules: the trace id must be 16 bytes, a span id 8 (required),
a parent id 8 or none; the timestamp is taken as given, so 0 is the epoch, not "absent"; the port is
truncated to 16 bits. The messages are declared here, field for field from the public wire format,
in a private descriptor pool: upb parses them (and refuses invalid UTF-8 in strings, as Go does)."""

from __future__ import annotations

import ipaddress
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from pipelines.errors import PermanentError
from pipelines.zipkin import model
from pipelines.zipkin.model import ZSpan

_F = descriptor_pb2.FieldDescriptorProto
_MASK64 = (1 << 64) - 1
_KIND_NAMES = {0: "SPAN_KIND_UNSPECIFIED", 1: "CLIENT", 2: "SERVER", 3: "PRODUCER", 4: "CONSUMER"}


def _message(file: descriptor_pb2.FileDescriptorProto, name: str,
             fields: list[tuple[str, int, int, int, str]]) -> descriptor_pb2.DescriptorProto:
    msg = file.message_type.add(name=name)
    for fname, number, ftype, label, type_name in fields:
        f = msg.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name
    return msg


def _classes() -> Any:
    file = descriptor_pb2.FileDescriptorProto(name="gateway_zipkin_v2.proto", package="gateway.zipkin.v2",
                                              syntax="proto3")
    one, many = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    _message(file, "Endpoint", [("service_name", 1, _F.TYPE_STRING, one, ""), ("ipv4", 2, _F.TYPE_BYTES, one, ""),
                                ("ipv6", 3, _F.TYPE_BYTES, one, ""), ("port", 4, _F.TYPE_INT32, one, "")])
    _message(file, "Annotation", [("timestamp", 1, _F.TYPE_FIXED64, one, ""), ("value", 2, _F.TYPE_STRING, one, "")])
    span = _message(file, "Span", [
        ("trace_id", 1, _F.TYPE_BYTES, one, ""), ("parent_id", 2, _F.TYPE_BYTES, one, ""),
        ("id", 3, _F.TYPE_BYTES, one, ""), ("kind", 4, _F.TYPE_ENUM, one, ".gateway.zipkin.v2.Span.Kind"),
        ("name", 5, _F.TYPE_STRING, one, ""), ("timestamp", 6, _F.TYPE_FIXED64, one, ""),
        ("duration", 7, _F.TYPE_UINT64, one, ""),
        ("local_endpoint", 8, _F.TYPE_MESSAGE, one, ".gateway.zipkin.v2.Endpoint"),
        ("remote_endpoint", 9, _F.TYPE_MESSAGE, one, ".gateway.zipkin.v2.Endpoint"),
        ("annotations", 10, _F.TYPE_MESSAGE, many, ".gateway.zipkin.v2.Annotation"),
        ("tags", 11, _F.TYPE_MESSAGE, many, ".gateway.zipkin.v2.Span.TagsEntry"),
        ("debug", 12, _F.TYPE_BOOL, one, ""), ("shared", 13, _F.TYPE_BOOL, one, ""),
    ])
    kind = span.enum_type.add(name="Kind")
    for number, name in _KIND_NAMES.items():
        kind.value.add(name=name, number=number)
    entry = span.nested_type.add(name="TagsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=one)
    entry.field.add(name="value", number=2, type=_F.TYPE_STRING, label=one)
    _message(file, "ListOfSpans", [("spans", 1, _F.TYPE_MESSAGE, many, ".gateway.zipkin.v2.Span")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return [message_factory.GetMessageClass(pool.FindMessageTypeByName(f"gateway.zipkin.v2.{name}"))
            for name in ("ListOfSpans", "Span", "Endpoint", "Annotation")]


ListOfSpans, Span, Endpoint, Annotation = _classes()


def _ip(raw: bytes) -> str | None:
    """Go's net.IP String() of the bytes as given."""
    if not raw:
        return None
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if len(raw) == 16:
        ip = ipaddress.IPv6Address(raw)
        return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)
    return "?" + raw.hex()


def _endpoint(msg: Any, present: bool) -> model.Endpoint | None:
    if not present:
        return None
    return model.Endpoint(msg.service_name, _ip(msg.ipv4), _ip(msg.ipv6), msg.port & 0xFFFF)


def _id(raw: bytes, what: str) -> int | None:
    if not raw:
        return None
    if len(raw) != 8:
        raise PermanentError(f"invalid {what}: has length {len(raw)} yet wanted length 8")
    return int.from_bytes(raw, "big")


def decode(body: bytes) -> list[ZSpan]:
    msg = ListOfSpans()
    try:
        msg.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise PermanentError(f"zipkin v2 protobuf: cannot decode: {exc}") from None
    out = []
    for s in msg.spans:
        if len(s.trace_id) != 16:
            raise PermanentError(f"invalid TraceID: has length {len(s.trace_id)} yet wanted length 16")
        parent = _id(s.parent_id, "ParentID")
        sid = _id(s.id, "SpanID")
        if sid is None:
            raise PermanentError("expected a non-nil SpanID")
        out.append(ZSpan(
            trace_id=s.trace_id, id=sid, parent_id=parent, name=s.name,
            kind=_KIND_NAMES.get(s.kind, str(s.kind)),
            timestamp=(s.timestamp * 1000) & _MASK64, duration=(s.duration * 1000) & _MASK64,
            local=_endpoint(s.local_endpoint, s.HasField("local_endpoint")),
            remote=_endpoint(s.remote_endpoint, s.HasField("remote_endpoint")),
            annotations=[((a.timestamp * 1000) & _MASK64, a.value) for a in s.annotations],
            tags=dict(s.tags),
        ))
    return out
