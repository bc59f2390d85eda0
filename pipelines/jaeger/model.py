"""The Jaeger span model both wire formats decode to, and its translation to OTLP rule for rule as the
Collector's `ThriftToTraces` and `ProtoToTraces` (contrib v0.161.0, the HTTP convention gates at their
alpha defaults: `http.response.status_code` is written as `http.status_code`).

Both: ids from the 64-bit halves (a 64-bit trace id has high = 0); the sampled flag; the parent from
the Thrift `parentSpanId` or the first CHILD_OF reference of the same trace (else the first
FOLLOWS_FROM); other references as links with `opentracing.ref_type`; tags as attributes of their
type; `span.kind` to the kind; status from a bool `error` = true (with `otel.status_description` or
`http.status_message`), else `otel.status_code`, else the HTTP status code; logs as events named by
their `event` field; the process's service name and tags as the resource (`hostname` to `host.name`,
`jaeger.version` to `opencensus.exporterversion`). Protobuf only: `w3c.tracestate` to the trace
state, `otel.scope.name`/`otel.scope.version` to the scope, spans grouped by their own process, and
the `OTLPResourceNoServiceName` process as an empty resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from pipelines.zipkin.attrs import Value, put

NO_SERVICE_NAME = "OTLPResourceNoServiceName"
CHILD_OF = 0
_MASK64 = (1 << 64) - 1
_INT64_MAX = (1 << 63) - 1
_KINDS = {"client": trace_pb2.Span.SPAN_KIND_CLIENT, "server": trace_pb2.Span.SPAN_KIND_SERVER,
          "producer": trace_pb2.Span.SPAN_KIND_PRODUCER, "consumer": trace_pb2.Span.SPAN_KIND_CONSUMER,
          "internal": trace_pb2.Span.SPAN_KIND_INTERNAL}
_HTTP_STATUS_KEYS = ("http.status_code", "http.response.status_code")
_UNSET, _OK, _ERROR = 0, 1, 2


@dataclass
class Tag:
    key: str
    value: Value
    v_str: str = ""  # the string field whatever the type, which the scope lookup reads


@dataclass
class Ref:
    ref_type: int
    trace_high: int  # unsigned 64-bit halves
    trace_low: int
    span_id: int


@dataclass
class Log:
    time: int  # ns since the epoch, as uint64
    fields: list[Tag]


@dataclass
class Process:
    service_name: str
    tags: list[Tag]


@dataclass
class Span:
    trace_high: int
    trace_low: int
    span_id: int
    name: str
    start: int  # ns, as uint64
    end: int
    flags: int = 0
    parent_span_id: int = 0  # Thrift only
    refs: list[Ref] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)
    process: Process | None = None  # protobuf only: the span's own process


def _text(value: Value) -> str:
    """pcommon's `Str()`: the string, or "" for a value of another type."""
    return str(value[1]) if value[0] == "s" else ""


def attributes(tags: list[Tag]) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for tag in tags:
        out["http.status_code" if tag.key in _HTTP_STATUS_KEYS else tag.key] = tag.value
    return out


def _resource(process: Process | None, rs: trace_pb2.ResourceSpans) -> None:
    if process is None:
        return
    attrs: dict[str, Value] = {"service.name": ("s", process.service_name)} if process.service_name else {}
    attrs.update(attributes(process.tags))
    if "hostname" in attrs and "host.name" not in attrs:
        attrs["host.name"] = attrs.pop("hostname")
    if "jaeger.version" in attrs and "opencensus.exporterversion" not in attrs:
        attrs["opencensus.exporterversion"] = ("s", "Jaeger-" + _text(attrs.pop("jaeger.version")))
    put(rs.resource.attributes, attrs)


def _parent(span: Span) -> int:
    if span.parent_span_id:
        return span.parent_span_id
    follows = None
    for ref in span.refs:
        if (ref.trace_high, ref.trace_low) != (span.trace_high, span.trace_low):
            continue
        if ref.ref_type == CHILD_OF:
            return ref.span_id
        if follows is None and ref.ref_type == 1:
            follows = ref.span_id
    return follows or 0


def _http_code(value: Value) -> int | None:
    if value[0] == "i":
        return int(value[1])
    if value[0] != "s":
        return None
    text = str(value[1])
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits.lstrip("0")) > 19:
        return None  # past 19 digits it is past int64, where Go's ParseInt fails (and Python's int() is slow)
    n = int(text)
    return n if -_INT64_MAX - 1 <= n <= _INT64_MAX else None  # Go's ParseInt fails past int64


def _status(attrs: dict[str, Value], kind: int, status: trace_pb2.Status) -> None:
    code, message, exists = _UNSET, "", False
    if attrs.get("error") == ("b", True):
        code, exists = _ERROR, True
        del attrs["error"]
        if "otel.status_description" in attrs:
            message = _text(attrs.pop("otel.status_description"))
        elif "http.status_message" in attrs:
            message = _text(attrs["http.status_message"])
    if "otel.status_code" in attrs:
        value = attrs.pop("otel.status_code")
        if not exists:
            exists = True
            code = {"OK": _OK, "ERROR": _ERROR}.get(_text(value).upper(), _UNSET)
            if "otel.status_description" in attrs:
                message = _text(attrs.pop("otel.status_description"))
    elif not exists and "http.status_code" in attrs:
        http = _http_code(attrs["http.status_code"])
        if http is not None:
            if 400 <= http < 500 and kind in (trace_pb2.Span.SPAN_KIND_CLIENT, trace_pb2.Span.SPAN_KIND_SERVER):
                from_http = _ERROR if kind == trace_pb2.Span.SPAN_KIND_CLIENT else _UNSET
            else:
                from_http = _UNSET if 100 <= http < 399 else _ERROR
            if from_http != _UNSET:
                code, exists = from_http, True
            if "http.status_message" in attrs:
                message = _text(attrs["http.status_message"])
    if exists:
        status.code = code  # type: ignore[assignment]
        status.message = message


def _span(span: Span, out: trace_pb2.Span, proto: bool) -> None:
    out.trace_id = span.trace_high.to_bytes(8, "big") + span.trace_low.to_bytes(8, "big")
    out.span_id = span.span_id.to_bytes(8, "big")
    out.name = span.name
    out.start_time_unix_nano = span.start
    out.end_time_unix_nano = span.end
    if span.flags & 1:
        out.flags = 1
    parent = _parent(span)
    if parent:
        out.parent_span_id = parent.to_bytes(8, "big")
    attrs = attributes(span.tags)
    if "span.kind" in attrs:
        out.kind = _KINDS.get(_text(attrs.pop("span.kind")), trace_pb2.Span.SPAN_KIND_UNSPECIFIED)
    _status(attrs, out.kind, out.status)
    if proto and "w3c.tracestate" in attrs:
        out.trace_state = _text(attrs.pop("w3c.tracestate"))
    put(out.attributes, attrs)
    for log in span.logs:
        event = out.events.add(time_unix_nano=log.time)
        fields = attributes(log.fields)
        if "event" in fields:
            event.name = _text(fields.pop("event"))
        put(event.attributes, fields)
    refs = span.refs
    if len(refs) == 1 and refs[0].span_id == parent and refs[0].ref_type == CHILD_OF:
        return
    for ref in refs:
        if ref.span_id == parent and ref.ref_type == CHILD_OF:
            continue
        link = out.links.add(trace_id=ref.trace_high.to_bytes(8, "big") + ref.trace_low.to_bytes(8, "big"),
                             span_id=ref.span_id.to_bytes(8, "big"))
        ref_type = "child_of" if ref.ref_type == CHILD_OF else "follows_from"
        put(link.attributes, {"opentracing.ref_type": ("s", ref_type)})


def thrift_request(process: Process, spans: list[Span]) -> trace_service_pb2.ExportTraceServiceRequest:
    """One Thrift batch: one resource, one scope (Thrift spans carry none)."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    _resource(process, rs)
    if spans:
        ss = rs.scope_spans.add()
        for span in spans:
            _span(span, ss.spans.add(), False)
    return req


def _scope(span: Span) -> tuple[str, str]:
    """Takes the first `otel.scope.name` tag, and then the first `otel.scope.version`, off the span."""
    found: list[str] = []
    for key in ("otel.scope.name", "otel.scope.version"):
        index = next((i for i, tag in enumerate(span.tags) if tag.key == key), None)
        if index is None:
            break
        found.append(span.tags.pop(index).v_str)
    name, version, *_ = [*found, "", ""]
    return name, version


def proto_request(groups: list[tuple[Process | None, list[Span]]]) -> trace_service_pb2.ExportTraceServiceRequest:
    """Spans grouped by process (`proto.regroup`): a resource each, a scope per scope name and version."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    for process, spans in groups:
        if process is None and not spans:
            continue
        rs = req.resource_spans.add()
        if process is not None and process.service_name != NO_SERVICE_NAME:
            _resource(process, rs)
        scopes: dict[tuple[str, str], trace_pb2.ScopeSpans] = {}
        for span in spans:
            key = _scope(span)
            ss = scopes.get(key)
            if ss is None:
                ss = scopes[key] = rs.scope_spans.add()
                ss.scope.name, ss.scope.version = key
            _span(span, ss.spans.add(), True)
    return req
