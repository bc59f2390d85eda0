"""Jaeger api_v2 protobuf (`CollectorService/PostSpans`: `PostSpansRequest{batch: Batch{spans, process}}`)
to the model, with the rules of the Collector's gogo-generated decoder: a trace id of 8 or 16 bytes when
present (8: high = 0), a span id of exactly 8; a field on the wire with another wire type than its own
fails the request (upb would keep it as an unknown field: `_check` looks); timestamps and durations
in their valid ranges; strings are not checked for UTF-8. The messages are declared here from the public
wire format, in a private descriptor pool, proto2 so that a present-but-empty id is seen. Spans that
carry their own process are grouped by it, as `regroup` in the Collector: processes equal byte for byte
in the order its hash reads them share a resource."""

from __future__ import annotations

import struct
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from pipelines.errors import PermanentError
from pipelines.jaeger import model
from pipelines.zipkin.attrs import Value

_F = descriptor_pb2.FieldDescriptorProto
_PKG = "gateway.jaeger.api_v2"
_MASK64 = (1 << 64) - 1
_MIN_SECONDS, _MAX_SECONDS = -62135596800, 253402300800  # 0001-01-01 and 10000-01-01
_MAX_DURATION_SECONDS = 315576000000
_TYPE_NAMES = {0: "STRING", 1: "BOOL", 2: "INT64", 3: "FLOAT64", 4: "BINARY"}

# message -> (field, number, type, repeated, message type)
_MESSAGES: dict[str, list[tuple[str, int, int, bool, str]]] = {
    "Time": [("seconds", 1, _F.TYPE_INT64, False, ""), ("nanos", 2, _F.TYPE_INT32, False, "")],
    "KeyValue": [("key", 1, _F.TYPE_BYTES, False, ""), ("v_type", 2, _F.TYPE_INT32, False, ""),
                 ("v_str", 3, _F.TYPE_BYTES, False, ""), ("v_bool", 4, _F.TYPE_BOOL, False, ""),
                 ("v_int64", 5, _F.TYPE_INT64, False, ""), ("v_float64", 6, _F.TYPE_DOUBLE, False, ""),
                 ("v_binary", 7, _F.TYPE_BYTES, False, "")],
    "Log": [("timestamp", 1, _F.TYPE_MESSAGE, False, "Time"), ("fields", 2, _F.TYPE_MESSAGE, True, "KeyValue")],
    "SpanRef": [("trace_id", 1, _F.TYPE_BYTES, False, ""), ("span_id", 2, _F.TYPE_BYTES, False, ""),
                ("ref_type", 3, _F.TYPE_INT32, False, "")],
    "Process": [("service_name", 1, _F.TYPE_BYTES, False, ""), ("tags", 2, _F.TYPE_MESSAGE, True, "KeyValue")],
    "Span": [("trace_id", 1, _F.TYPE_BYTES, False, ""), ("span_id", 2, _F.TYPE_BYTES, False, ""),
             ("operation_name", 3, _F.TYPE_BYTES, False, ""), ("references", 4, _F.TYPE_MESSAGE, True, "SpanRef"),
             ("flags", 5, _F.TYPE_UINT32, False, ""), ("start_time", 6, _F.TYPE_MESSAGE, False, "Time"),
             ("duration", 7, _F.TYPE_MESSAGE, False, "Time"), ("tags", 8, _F.TYPE_MESSAGE, True, "KeyValue"),
             ("logs", 9, _F.TYPE_MESSAGE, True, "Log"), ("process", 10, _F.TYPE_MESSAGE, False, "Process"),
             ("process_id", 11, _F.TYPE_BYTES, False, ""), ("warnings", 12, _F.TYPE_BYTES, True, "")],
    "Batch": [("spans", 1, _F.TYPE_MESSAGE, True, "Span"), ("process", 2, _F.TYPE_MESSAGE, False, "Process")],
    "PostSpansRequest": [("batch", 1, _F.TYPE_MESSAGE, False, "Batch")],
}


def _classes() -> dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(name="gateway_jaeger_api_v2.proto", package=_PKG, syntax="proto2")
    for name, fields in _MESSAGES.items():
        msg = file.message_type.add(name=name)
        for fname, number, ftype, repeated, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype,
                              label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
            if type_name:
                f.type_name = f".{_PKG}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PKG}.{name}")) for name in _MESSAGES}


MESSAGES = _classes()
PostSpansRequest = MESSAGES["PostSpansRequest"]
# the field numbers each message knows: one of them among the unknown fields had another wire type
_KNOWN = {name: frozenset(f[1] for f in fields) for name, fields in _MESSAGES.items()}


def _unknown(msg: Any) -> list[Any]:
    fields: list[Any] = list(UnknownFieldSet(msg))  # type: ignore[call-overload]
    return fields


def _check(msg: Any) -> None:
    """Fails when `msg` or a message in it holds a known field of the wrong wire type."""
    known = _KNOWN[msg.DESCRIPTOR.name]
    for f in _unknown(msg):
        if f.field_number in known:
            raise PermanentError(f"proto: wrong wireType = {f.wire_type} for field {f.field_number} "
                                 f"of {msg.DESCRIPTOR.name}")
    for fd, value in msg.ListFields():
        if fd.message_type is not None:
            for sub in (value if fd.is_repeated else (value,)):
                _check(sub)


def _str(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _trace_id(msg: Any) -> tuple[int, int]:
    if not msg.HasField("trace_id"):
        return 0, 0
    raw = msg.trace_id
    if len(raw) == 16:
        return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")
    if len(raw) == 8:
        return 0, int.from_bytes(raw, "big")
    raise PermanentError("invalid length for TraceID")


def _span_id(msg: Any) -> int:
    if not msg.HasField("span_id"):
        return 0
    if len(msg.span_id) != 8:
        raise PermanentError("invalid length for SpanID")
    return int.from_bytes(msg.span_id, "big")


def _time(msg: Any, present: bool) -> int:
    """ns since the epoch, wrapped to 64 bits as Go's UnixNano; absent: Go's zero time (year 1)."""
    if not present:
        return (_MIN_SECONDS * 10**9) & _MASK64
    if not _MIN_SECONDS <= msg.seconds < _MAX_SECONDS or not 0 <= msg.nanos < 10**9:
        raise PermanentError(f"timestamp out of range: {msg.seconds}s {msg.nanos}ns")
    return int(msg.seconds * 10**9 + msg.nanos)


def _duration(msg: Any) -> int:
    s, n = msg.seconds, msg.nanos
    if abs(s) > _MAX_DURATION_SECONDS or not -10**9 < n < 10**9 or (s < 0 < n) or (n < 0 < s):
        raise PermanentError(f"duration out of range: {s}s {n}ns")
    d = int(s * 10**9 + n)
    if not -(1 << 63) <= d < 1 << 63:
        raise PermanentError(f"duration out of range for time.Duration: {s}s {n}ns")
    return d


def _tag(kv: Any) -> model.Tag:
    t, v_str = kv.v_type, _str(kv.v_str)
    value: Value
    if t == 0:
        value = ("s", v_str)
    elif t == 1:
        value = ("b", kv.v_bool)
    elif t == 2:
        value = ("i", kv.v_int64)
    elif t == 3:
        value = ("d", kv.v_float64)
    elif t == 4:
        value = ("y", kv.v_binary)
    else:  # Go prints an unknown enum value as its number
        value = ("s", f'<Unknown Jaeger TagType "{t}">')
    return model.Tag(_str(kv.key), value, v_str)


def _process(p: Any) -> tuple[model.Process, bytes]:
    """The process, and the bytes its hash is taken over (name, then each tag's key, type and value,
    up to an unknown type, where Go's hash stops)."""
    key = [p.service_name]
    for kv in p.tags:
        key += [kv.key, (kv.v_type & 0xFFFF).to_bytes(2, "big")]
        if kv.v_type not in _TYPE_NAMES:
            break
        key.append((kv.v_str, bytes([kv.v_bool]), struct.pack(">q", kv.v_int64), struct.pack(">d", kv.v_float64),
                    kv.v_binary)[kv.v_type])
    return model.Process(_str(p.service_name), [_tag(kv) for kv in p.tags]), b"".join(key)


def _span(s: Any, has_no_unknown: bool) -> model.Span | None:
    high, low = _trace_id(s)
    span_id = _span_id(s)
    refs = []
    for r in s.references:
        ref_high, ref_low = _trace_id(r)
        refs.append(model.Ref(r.ref_type, ref_high, ref_low, _span_id(r)))
    start = _time(s.start_time, s.HasField("start_time"))
    duration = _duration(s.duration)
    logs = [model.Log(_time(log.timestamp, log.HasField("timestamp")) & _MASK64, [_tag(kv) for kv in log.fields])
            for log in s.logs]
    blank_start = not s.HasField("start_time") or (s.start_time.seconds, s.start_time.nanos) == (_MIN_SECONDS, 0)
    if (has_no_unknown and blank_start and not (high or low or span_id or s.operation_name or refs or s.flags
                                                or duration or s.tags or logs or s.HasField("process")
                                                or s.process_id or s.warnings)):
        return None  # every field at its zero value: the Collector skips it
    return model.Span(trace_high=high, trace_low=low, span_id=span_id, name=_str(s.operation_name),
                      start=start & _MASK64, end=(start + duration) & _MASK64, flags=s.flags, refs=refs,
                      tags=[_tag(kv) for kv in s.tags], logs=logs)


def decode(body: bytes) -> list[tuple[model.Process | None, list[model.Span]]]:
    """The request's spans grouped by process, in the order each process is first seen."""
    msg = PostSpansRequest()
    try:
        msg.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise PermanentError(f"jaeger api_v2 protobuf: cannot decode: {exc}") from None
    _check(msg)
    batch = msg.batch
    groups: dict[bytes, tuple[model.Process | None, list[model.Span]]] = {}

    def group(p: Any, present: bool) -> list[model.Span]:
        process, key = _process(p) if present else (None, b"")
        return groups.setdefault(key, (process, []))[1]

    own = group(batch.process, batch.HasField("process"))
    for s in batch.spans:
        span = _span(s, not _unknown(s))
        target = group(s.process, True) if s.HasField("process") else own
        if span is not None:
            target.append(span)
    return list(groups.values())
