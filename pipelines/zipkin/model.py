"""The Zipkin v2 span model and its translation to OTLP, rule for rule as the Collector's
`zipkinv2.ToTranslator` (contrib v0.161.0, its feature gates at their defaults: the beta network
gates on, so endpoints become `network.local.address`, `network.peer.address` and
`service.peer.name`; the alpha HTTP, scope and cloud gates off).

Spans are grouped by local service name, then by instrumentation scope (the `otel.scope.name` or
`otel.library.name` tag); the first span of a service gives the resource its attributes (resource
tags are taken off every span). Tags become attributes, except those the translation consumes:
`w3c.tracestate`, `otel.status_code` (+ `otel.status_description`), `error` = "true", `span.kind`
(only when the span has no Zipkin kind), `otlp.link.N` (links), and the resource and scope tags.
Annotations become events, `name|{json attributes}|dropped count` read back into attributes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from pipelines.errors import PermanentError
from pipelines.zipkin.attrs import Value, json_attrs, parse_tag, put

NO_SERVICE_NAME = "OTLPResourceNoServiceName"
START_TIME_ABSENT = "otel.zipkin.absentField.startTime"
SERVICE_NAME_SOURCE = "otlp.service.name.source"
_MASK64 = (1 << 64) - 1

RESOURCE_KEYS = frozenset({
    "cloud.provider", "cloud.account.id", "cloud.region", "cloud.availability_zone", "cloud.platform",
    "aws.ecs.container.arn", "aws.ecs.cluster.arn", "aws.ecs.launchtype", "aws.ecs.task.arn",
    "aws.ecs.task.family", "aws.ecs.task.revision", "aws.eks.cluster.arn", "aws.log.group.names",
    "aws.log.group.arns", "aws.log.stream.names", "aws.log.stream.arns", "container.name", "container.id",
    "container.runtime", "container.image.name", "container.image.tag", "deployment.environment", "device.id",
    "device.model.identifier", "device.model.name", "device.manufacturer", "faas.name", "faas.id",
    "cloud.resource_id", "faas.version", "faas.instance", "faas.max_memory", "host.id", "host.name", "host.type",
    "host.arch", "host.image.name", "host.image.id", "host.image.version", "k8s.cluster.name", "k8s.node.name",
    "k8s.node.uid", "k8s.namespace.name", "k8s.pod.uid", "k8s.pod.name", "k8s.container.name",
    "k8s.container.restart_count", "k8s.replicaset.uid", "k8s.replicaset.name", "k8s.deployment.uid",
    "k8s.deployment.name", "k8s.statefulset.uid", "k8s.statefulset.name", "k8s.daemonset.uid",
    "k8s.daemonset.name", "k8s.job.uid", "k8s.job.name", "k8s.cronjob.uid", "k8s.cronjob.name", "os.type",
    "os.description", "os.name", "os.version", "process.pid", "process.executable.name",
    "process.executable.path", "process.command", "process.command_line", "process.command_args",
    "process.owner", "process.runtime.name", "process.runtime.version", "process.runtime.description",
    "service.name", "service.namespace", "service.instance.id", "service.version", "telemetry.sdk.name",
    "telemetry.sdk.language", "telemetry.sdk.version", "telemetry.auto.version", "webengine.name",
    "webengine.version", "webengine.description",
    "opencensus.starttime", "opencensus.exporterversion", "opencensus.resourcetype",
})
SCOPE_KEYS = ("otel.library.name", "otel.scope.name", "otel.library.version", "otel.scope.version")
# Never span attributes: taken to the resource or the scope, or dropped.
NON_SPAN_KEYS = RESOURCE_KEYS | {SERVICE_NAME_SOURCE, *SCOPE_KEYS}

KINDS = {"CLIENT": trace_pb2.Span.SPAN_KIND_CLIENT, "SERVER": trace_pb2.Span.SPAN_KIND_SERVER,
         "PRODUCER": trace_pb2.Span.SPAN_KIND_PRODUCER, "CONSUMER": trace_pb2.Span.SPAN_KIND_CONSUMER}
STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2, "Unset": 0, "Ok": 1, "Error": 2}
MAX_LINKS = 128


@dataclass
class Endpoint:
    service_name: str = ""
    ipv4: str | None = None  # the address as text, as Go's net.IP prints it
    ipv6: str | None = None
    port: int = 0


@dataclass
class ZSpan:
    trace_id: bytes  # 16 bytes, zeros when absent
    id: int
    parent_id: int | None = None
    name: str = ""
    kind: str = ""
    timestamp: int | None = None  # ns since the epoch; None: not given (Go's zero time)
    duration: int = 0  # ns
    local: Endpoint | None = None
    remote: Endpoint | None = None
    annotations: list[tuple[int, str]] = field(default_factory=list)  # (ns, value)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.local.service_name if self.local is not None and self.local.service_name else NO_SERVICE_NAME

    @property
    def scope(self) -> str:
        return self.tags.get("otel.scope.name", self.tags.get("otel.library.name", ""))


def to_request(spans: list[ZSpan], parse_string_tags: bool) -> trace_service_pb2.ExportTraceServiceRequest:
    req = trace_service_pb2.ExportTraceServiceRequest()
    prev_service, prev_scope = "", ""
    rs: trace_pb2.ResourceSpans | None = None
    ss: trace_pb2.ScopeSpans | None = None
    for zspan in sorted(spans, key=lambda s: (s.service.encode(), s.scope.encode())):
        tags = dict(zspan.tags)
        service = zspan.service
        new_resource = service != prev_service
        if new_resource or rs is None:
            prev_service, prev_scope = service, ""
            rs = req.resource_spans.add()
            _resource(tags, service, rs)
        scope = zspan.scope
        if scope != prev_scope or new_resource or ss is None:
            prev_scope = scope
            ss = rs.scope_spans.add()
            _scope(tags, scope, ss)
        _span(zspan, tags, ss.spans.add(), parse_string_tags)
    return req


def _resource(tags: dict[str, str], service: str, rs: trace_pb2.ResourceSpans) -> None:
    if service == NO_SERVICE_NAME:
        return
    attrs: dict[str, Value] = {}
    source = tags.pop(SERVICE_NAME_SOURCE, "")
    attrs[source or "service.name"] = ("s", service)
    for key in RESOURCE_KEYS:
        if key in tags:
            attrs[key] = ("s", tags.pop(key))
    put(rs.resource.attributes, attrs)


def _scope(tags: dict[str, str], scope: str, ss: trace_pb2.ScopeSpans) -> None:
    if not scope:
        return
    for key in SCOPE_KEYS:
        if key in tags:
            value = tags.pop(key)
            if key.endswith("name"):
                ss.scope.name = value
            else:
                ss.scope.version = value


def _span(zspan: ZSpan, tags: dict[str, str], span: trace_pb2.Span, parse_string_tags: bool) -> None:
    if any(zspan.trace_id):
        span.trace_id = zspan.trace_id
    if zspan.id:
        span.span_id = zspan.id.to_bytes(8, "big")
    if "w3c.tracestate" in tags:
        span.trace_state = tags.pop("w3c.tracestate")
    if zspan.parent_id and zspan.parent_id != zspan.id:
        span.parent_span_id = zspan.parent_id.to_bytes(8, "big")
    span.name = zspan.name
    span.kind = _kind(zspan.kind, tags)
    _status(tags, span.status)
    _links(tags, span)
    attrs = {key: parse_tag(value, parse_string_tags) for key, value in tags.items() if key not in NON_SPAN_KEYS}
    if zspan.remote is not None and zspan.remote.service_name:
        attrs["service.peer.name"] = ("s", zspan.remote.service_name)
    for ep, address, port in ((zspan.local, "network.local.address", "net.host.port"),
                              (zspan.remote, "network.peer.address", "net.peer.port")):
        if ep is None:
            continue
        for ip in (ep.ipv4, ep.ipv6):  # both given: the IPv6 one wins
            if ip is not None:
                attrs[address] = ("s", ip)
        if ep.port > 0:
            attrs[port] = ("i", ep.port)
    start = zspan.timestamp or 0
    span.start_time_unix_nano = start & _MASK64
    span.end_time_unix_nano = (start + zspan.duration) & _MASK64
    if zspan.timestamp is None:
        attrs[START_TIME_ABSENT] = ("b", True)
    put(span.attributes, attrs)
    for ts, value in zspan.annotations:
        _event(ts, value, span.events.add())


def _kind(kind: str, tags: dict[str, str]) -> trace_pb2.Span.SpanKind.ValueType:
    if kind in KINDS:
        return KINDS[kind]
    if "span.kind" in tags and tags.pop("span.kind") == "internal":
        return trace_pb2.Span.SPAN_KIND_INTERNAL
    return trace_pb2.Span.SPAN_KIND_UNSPECIFIED


def _status(tags: dict[str, str], status: trace_pb2.Status) -> None:
    if "otel.status_code" in tags:
        status.code = STATUS_CODES.get(tags.pop("otel.status_code"), 0)  # type: ignore[assignment]
        if "otel.status_description" in tags:
            status.message = tags.pop("otel.status_description")
    if "error" in tags:
        status.code = trace_pb2.Status.STATUS_CODE_ERROR
        if tags["error"] == "true":
            del tags["error"]


def _hex_id(text: str, size: int) -> bytes:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not text:
        return b""
    if len(text) != 2 * size:
        raise PermanentError("invalid length for ID")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != size or not text.isascii() or not all(c in "0123456789abcdefABCDEF" for c in text):
        raise PermanentError(f"cannot unmarshal ID from string '{text}': invalid byte")
    return b"" if not any(raw) else raw


def _json_attrs(text: str) -> dict[str, Value]:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PermanentError(f"invalid JSON attributes {text[:100]!r}: {exc}") from None
    if obj is not None and not isinstance(obj, dict):
        raise PermanentError(f"JSON attributes {text[:100]!r} are not an object")
    return json_attrs(obj)


def _dropped(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) >= 1 << 32:
        raise PermanentError(f"invalid dropped attributes count {text[:100]!r}")
    return int(text)


def _links(tags: dict[str, str], span: trace_pb2.Span) -> None:
    for i in range(MAX_LINKS):
        value = tags.pop(f"otlp.link.{i}", None)
        if value is None:
            return
        parts = value.split("|")
        if len(parts) < 5:
            continue
        link = span.links.add()
        link.trace_id = _hex_id(parts[0], 16)
        link.span_id = _hex_id(parts[1], 8)
        link.trace_state = parts[2]
        put(link.attributes, _json_attrs("|".join(parts[3:-1])))
        link.dropped_attributes_count = _dropped(parts[-1])


def _event(ts: int, value: str, event: trace_pb2.Span.Event) -> None:
    event.time_unix_nano = ts & _MASK64
    parts = value.split("|")
    event.name = parts[0]
    if len(parts) < 3:
        return
    put(event.attributes, _json_attrs("|".join(parts[1:-1])))
    event.dropped_attributes_count = _dropped(parts[-1])
