"""Zipkin v1 JSON (`POST /api/v1/spans`) to OTLP, as the Collector's `zipkinv1` JSON translator:
the span kind and the service come from the first core annotation (`cs`, `cr`, `sr`, `ss`, `ms`, `mr`)
with a named endpoint, the other annotations are events, binary annotations are attributes (`lc`
becomes `component` and names the service when no annotation did), and the status comes from the
census, OTel, `error` and HTTP tags in that order of precedence. One resource per endpoint, with
`ipv4`, `ipv6` and `port` attributes. A span with no timestamp anywhere gets the time of decoding and
`otel.zipkin.absentField.startTime`, as there."""

from __future__ import annotations

import re
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from pipelines.errors import PermanentError
from pipelines.zipkin.attrs import Value, put
from pipelines.zipkin.attrs import parse_tag as _parse
from pipelines.zipkin.model import START_TIME_ABSENT
from pipelines.zipkin.v2_json import fields, loads, typed

_HEX = re.compile(r"[0-9a-fA-F]*")
UNKNOWN_SERVICE = "unknown-service"
_CORE = {"cs": trace_pb2.Span.SPAN_KIND_CLIENT, "cr": trace_pb2.Span.SPAN_KIND_CLIENT,
         "ms": trace_pb2.Span.SPAN_KIND_PRODUCER, "mr": trace_pb2.Span.SPAN_KIND_CONSUMER,
         "ss": trace_pb2.Span.SPAN_KIND_SERVER, "sr": trace_pb2.Span.SPAN_KIND_SERVER}
INT64 = 1 << 63
INT32 = 1 << 31


def _int(value: Any, what: str, limit: int = INT64) -> int:
    n = typed(value, int, what)
    if n is None:
        return 0
    if not -limit <= n < limit:
        raise PermanentError(f"zipkinv1: cannot unmarshal number {n} into {what}")
    return int(n)


def _str(value: Any, what: str) -> str:
    return typed(value, str, what) or ""


def _hex_id(text: str, size: int, what: str) -> bytes:
    want = (16, 32) if size == 16 else (16,)
    if len(text) not in want:
        raise PermanentError(f"{what}: hex {'traceId span' if size == 16 else 'Id'} has wrong length "
                             f"(expected {' or '.join(map(str, want))})")
    if not _HEX.fullmatch(text):
        raise PermanentError(f"{what}: invalid hex {text[:40]!r}")
    raw = bytes.fromhex(text).rjust(size, b"\0")
    if not any(raw):
        raise PermanentError(f"{what}: {'traceId' if size == 16 else 'ID'} is zero")
    return raw


def _endpoint(value: Any, what: str) -> tuple[str, str, str, int] | None:
    obj = typed(value, dict, what)
    if obj is None:
        return None
    f = fields(obj)
    return (_str(f.get("servicename"), f"{what}.serviceName"), _str(f.get("ipv4"), f"{what}.ipv4"),
            _str(f.get("ipv6"), f"{what}.ipv6"), _int(f.get("port"), f"{what}.port", INT32))


def _ts(micros: int) -> int:
    return 0 if micros <= 0 else (micros * 1000) & ((1 << 64) - 1)


def _annotations(annos: list[Any], span: trace_pb2.Span) -> tuple[str, str, str, int]:
    early, late = INT64, -INT64 - 1
    endpoint: tuple[str, str, str, int] | None = None
    kind_set = False
    for i, raw in enumerate(annos):
        a = fields(typed(raw, dict, f"annotations[{i}]") or {})
        ts = _int(a.get("timestamp"), f"annotations[{i}].timestamp")
        value = _str(a.get("value"), f"annotations[{i}].value")
        ep = _endpoint(a.get("endpoint"), f"annotations[{i}].endpoint")
        if raw is None or not value:
            continue
        core = value in _CORE
        if endpoint is None and ep is not None and ep[0] not in ("", UNKNOWN_SERVICE) and core:
            endpoint = ep
        if not kind_set and core:
            span.kind = _CORE[value]
            kind_set = True
        if ts < early:
            early = ts
            span.start_time_unix_nano = _ts(ts)
        if ts > late:
            late = ts
            span.end_time_unix_nano = _ts(ts)
        if not core:
            event = span.events.add()
            event.time_unix_nano = _ts(ts)
            event.name = value
    return endpoint or (UNKNOWN_SERVICE, "", "", 0)


class _Status:
    def __init__(self) -> None:
        self.census: list[Any] = [None, ""]
        self.otel: list[Any] = [None, ""]
        self.http: list[Any] = [None, ""]
        self.error: int | None = None

    def take(self, key: str, value: Value) -> bool:
        """Note what a binary annotation says of the status; True when it is not an attribute."""
        if key == "census.status_code":
            code = _code(value)
            if code is not None:
                self.census[0] = 1 if code == 0 else 2
            return True
        if key in ("census.status_description", "opencensus.status_description"):
            self.census[1] = _text(value)
            return True
        if key == "otel.status_code":
            code = _code(value)
            if code is not None:
                self.otel[0] = code
            return True
        if key == "otel.status_description":
            self.otel[1] = _text(value)
            return True
        if key in ("http.status_code", "http.response.status_code"):
            code = _code(value)
            if code is not None:
                self.http[0] = 0 if 100 <= code < 400 else 2
        elif key == "http.status_message":
            self.http[1] = _text(value)
        elif key == "error":
            self.error = 2
            return True
        return False

    def apply(self, status: trace_pb2.Status) -> None:
        if self.census[0] is not None:
            code, message = self.census
        elif self.otel[0] is not None:
            code, message = self.otel
        elif self.error is not None:
            code, message = self.error, self.census[1] or self.otel[1]
        elif self.http[0] is not None:
            code, message = self.http
        else:
            return
        status.code = code
        status.message = message


def _text(value: Value) -> str:
    """pcommon's Str() of a value: the string, or "" for any other type."""
    return str(value[1]) if value[0] == "s" else ""


def _code(value: Value) -> int | None:
    kind, v = value
    if kind == "i":
        n = v
    elif kind == "s" and re.fullmatch(r"[+-]?[0-9]+", v):
        n = int(v)
    else:
        return None
    return int(n) if -INT32 <= n < INT32 else None


def _binary_annotations(annos: list[Any], span: trace_pb2.Span, parse_string_tags: bool) -> str:
    fallback, local_component = "", ""
    status = _Status()
    attrs: dict[str, Value] = {}
    for i, raw in enumerate(annos):
        b = fields(typed(raw, dict, f"binaryAnnotations[{i}]") or {})
        key, text = _str(b.get("key"), "key"), _str(b.get("value"), f"binaryAnnotations[{i}].value")
        ep = _endpoint(b.get("endpoint"), f"binaryAnnotations[{i}].endpoint")
        if raw is None:
            raise PermanentError(f"zipkinv1: binaryAnnotations[{i}] is null")
        if ep is not None and ep[0]:
            fallback = ep[0]
        if key == "lc":
            key, local_component = "component", text
        value = _parse(text, parse_string_tags)
        if status.take(key, value):
            continue
        attrs[key] = value
    put(span.attributes, attrs)
    status.apply(span.status)
    return fallback or local_component


def _span(obj: Any, parse_string_tags: bool) -> tuple[trace_pb2.Span, tuple[str, str, str, int]]:
    if not isinstance(obj, dict):
        raise PermanentError("zipkinv1: a span must be a JSON object")
    f = fields(obj)
    trace_id = _hex_id(_str(f.get("traceid"), "traceId"), 16, "zipkinV1 span traceId")
    span_id = _hex_id(_str(f.get("id"), "id"), 8, "zipkinV1 span id")
    parent = _str(f.get("parentid"), "parentId")
    parent_id = _hex_id(parent, 8, "zipkinV1 span parentId") if parent else b""
    timestamp, duration = _int(f.get("timestamp"), "timestamp"), _int(f.get("duration"), "duration")
    _str(f.get("name"), "name")
    typed(f.get("debug"), bool, "debug")
    span = trace_pb2.Span()
    endpoint = _annotations(typed(f.get("annotations"), list, "annotations") or [], span)
    local_component = _binary_annotations(typed(f.get("binaryannotations"), list, "binaryAnnotations") or [],
                                          span, parse_string_tags)
    if endpoint[0] == UNKNOWN_SERVICE and local_component:
        endpoint = (local_component, *endpoint[1:])
    if timestamp:
        span.start_time_unix_nano = _ts(timestamp)
        span.end_time_unix_nano = _ts((timestamp + duration + INT64) % (1 << 64) - INT64)
    span.name = f.get("name") or ""
    span.trace_id, span.span_id, span.parent_span_id = trace_id, span_id, parent_id
    if span.start_time_unix_nano == 0:
        span.start_time_unix_nano = span.end_time_unix_nano = time.time_ns()
        kv = span.attributes.add()
        kv.key = START_TIME_ABSENT
        kv.value.bool_value = True
    return span, endpoint


def decode(body: bytes, parse_string_tags: bool) -> trace_service_pb2.ExportTraceServiceRequest:
    spans = loads(body, "zipkinv1")
    if spans is not None and not isinstance(spans, list):
        raise PermanentError("zipkinv1: want a JSON array of spans")
    translated = [_span(obj, parse_string_tags) for obj in spans or ()]
    req = trace_service_pb2.ExportTraceServiceRequest()
    by_endpoint: dict[tuple[str, str, str, int], trace_pb2.ScopeSpans] = {}
    for span, endpoint in translated:
        ss = by_endpoint.get(endpoint)
        if ss is None:
            rs = req.resource_spans.add()
            service, ipv4, ipv6, port = endpoint
            attrs: dict[str, Value] = {"service.name": ("s", service)}
            if ipv4:
                attrs["ipv4"] = ("s", ipv4)
            if ipv6:
                attrs["ipv6"] = ("s", ipv6)
            if port:
                attrs["port"] = ("s", str(port))
            put(rs.resource.attributes, attrs)
            ss = by_endpoint[endpoint] = rs.scope_spans.add()
        ss.spans.append(span)
    return req
