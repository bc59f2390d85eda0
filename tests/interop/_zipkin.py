"""Zipkin payloads for the differential and end-to-end tests: hand-written v2 and v1 JSON spans that
walk every translation rule (kinds, status tags, links and events packed in tags and annotations,
ids of each width, endpoints, resource and scope tags, absent timestamps), v2 protobuf of the same
spans, and what the OpenTelemetry SDK's Zipkin encoders make of SDK spans."""

from __future__ import annotations

import importlib
import ipaddress
import json
import sys
import types
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipelines.zipkin import v2_proto

T0 = 1_700_000_000_000_000  # microseconds


def _ids(variant: int, i: int) -> tuple[str, str]:
    return f"{variant:04x}{i:012x}{'ab' * 8}", f"{variant:04x}{i + 1:012x}"


def v2_spans(variant: int) -> list[dict[str, Any]]:
    """Spans exercising the v2 rules; `variant` makes the ids of one call unique."""
    spans: list[dict[str, Any]] = []

    def span(**extra: Any) -> dict[str, Any]:
        i = len(spans)
        trace_id, span_id = _ids(variant, i)
        s: dict[str, Any] = {"traceId": trace_id, "id": span_id, "name": f"op-{i}", "timestamp": T0 + i,
                             "duration": 1000 + i,
                             "localEndpoint": {"serviceName": "checkout", "ipv4": "10.1.2.3", "port": 8080}}
        s.update(extra)
        spans.append({k: v for k, v in s.items() if v is not None})
        return s

    res = {"host.name": "node-1", "service.namespace": "shop", "process.pid": "42", "faas.id": "fn-1"}
    for kind in ("CLIENT", "SERVER", "PRODUCER", "CONSUMER", "client", None):
        span(kind=kind, tags={**res, "i": "1", "ratio": "0.25", "ok": "true", "big": "99999999999999999999",
                              "neg": "-7", "txt": "hello", "empty": "", "js": '{"a":1}', "arr": "[1,2]"})
    span(kind=None, tags={**res, "span.kind": "internal"})
    span(kind=None, tags={**res, "span.kind": "server"})
    span(tags={**res, "otel.status_code": "Error", "otel.status_description": "it broke"})
    span(tags={**res, "otel.status_code": "STATUS_CODE_OK"})
    span(tags={**res, "otel.status_description": "no code"})
    span(tags={**res, "error": "true"})
    span(tags={**res, "error": "timeout"})
    span(tags={**res, "otel.status_code": "Ok", "error": "true", "http.status_code": "503"})
    span(tags={**res, "w3c.tracestate": "vendor=a,other=b"})
    link_a = f"{'12' * 16}|{'34' * 8}|k=v|" + '{"s":"x","n":3,"f":1.5,"b":true,"nested":{"x":1},"nul":null}|2'
    link_b = f"\"{'56' * 16}\"|\"{'78' * 8}\"||" + '{"pipe":"a|b"}|0'
    span(tags={**res, "otlp.link.0": link_a, "otlp.link.1": "too|few", "otlp.link.2": link_b,
               "otlp.link.4": "not read"})
    span(annotations=[{"timestamp": T0 + 5, "value": "plain"},
                      {"timestamp": T0 + 6, "value": 'cache.miss|{"key":"u1","n":2,"hit":false}|1'},
                      {"timestamp": T0 + 7, "value": 'a|{"p":"x|y"}|0'},
                      {"timestamp": T0 + 8, "value": "two|parts"}], tags=res)
    span(parentId=None, tags=res)
    s = span(tags=res)
    s["parentId"] = s["id"]  # a parent equal to the span's own id is no parent
    span(parentId=_ids(variant, 99)[1], tags=res)
    span(traceId=f"{variant:04x}{len(spans):012x}", tags=res)  # 64-bit trace id
    span(traceId=f"{variant:04X}{len(spans):012X}ABCDEF0123456789", tags=res)  # upper case
    span(timestamp=None, tags=res)
    span(duration=None, tags=res)
    span(remoteEndpoint={"serviceName": "db", "ipv6": "2001:db8::1", "port": 5432}, tags=res)
    span(remoteEndpoint={"ipv4": "192.168.0.9"}, tags=res)
    span(remoteEndpoint={"ipv6": "::ffff:10.0.0.1"}, tags=res)
    span(localEndpoint={"serviceName": "checkout", "ipv4": "10.1.2.3", "ipv6": "fe80::1", "port": 8080}, tags=res)
    span(localEndpoint={"serviceName": "checkout"}, tags={**res, "otel.library.name": "lib-a",
                                                          "otel.library.version": "1.2"})
    span(localEndpoint={"serviceName": "checkout"}, tags={**res, "otel.scope.name": "scope-b",
                                                          "otel.scope.version": "3", "otel.library.name": "lib-x"})
    other = {"host.name": "node-2", "otlp.service.name.source": "peer.service"}
    span(localEndpoint={"serviceName": "billing"}, tags=other)
    # The resource comes from the first span of its service in the Collector's (unstable) sort: the
    # spans of one service carry the same resource tags, so that which one is first does not matter.
    span(localEndpoint={"serviceName": "billing"}, tags=other)
    span(localEndpoint={"ipv4": "10.9.9.9"}, tags={"host.name": "dropped", "x": "kept"})
    span(localEndpoint=None, tags={"x": "y"})
    span(localEndpoint={"serviceName": "inventory"})
    span(localEndpoint={"serviceName": "warehouse"}, tags={"service.name": "renamed"})
    return spans


def v2_json(variant: int) -> bytes:
    return json.dumps(v2_spans(variant)).encode()


def _ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def v2_protobuf(variant: int) -> bytes:
    """The v2 spans as a protobuf ListOfSpans (timestamps given, as protobuf has no 'absent')."""
    out = v2_proto.ListOfSpans()
    kinds = {"CLIENT": 1, "SERVER": 2, "PRODUCER": 3, "CONSUMER": 4}
    for s in v2_spans(variant):
        if len(s["traceId"]) != 32:
            continue  # the protobuf trace id is always 16 bytes
        p = out.spans.add()
        p.trace_id = bytes.fromhex(s["traceId"])
        p.id = bytes.fromhex(s["id"])
        if s.get("parentId"):
            p.parent_id = bytes.fromhex(s["parentId"])
        p.name = s["name"]
        p.kind = kinds.get(s.get("kind") or "", 0)
        p.timestamp = s.get("timestamp") or 0
        p.duration = s.get("duration") or 0
        for field in ("localEndpoint", "remoteEndpoint"):
            ep = s.get(field)
            if ep is None:
                continue
            dest = p.local_endpoint if field == "localEndpoint" else p.remote_endpoint
            dest.SetInParent()
            dest.service_name = ep.get("serviceName", "")
            if "ipv4" in ep:
                dest.ipv4 = _ip(ep["ipv4"])
            if "ipv6" in ep:
                dest.ipv6 = _ip(ep["ipv6"])
            dest.port = ep.get("port", 0)
        for a in s.get("annotations", ()):
            pa = p.annotations.add()
            pa.timestamp, pa.value = a["timestamp"], a["value"]
        p.tags.update(s.get("tags", {}))
    return bytes(out.SerializeToString())


def v1_json(variant: int) -> bytes:
    """v1 spans: core annotations naming kind and service, binary annotations, status tags."""
    spans = []
    ep_a = {"serviceName": "frontend", "ipv4": "10.0.0.1", "port": 80}
    ep_b = {"serviceName": "backend", "ipv6": "2001:db8::2"}
    cases: list[tuple[list[Any], list[Any]]] = [
        ([("cs", ep_a), ("cr", ep_a)], [("http.url", "/a"), ("http.status_code", "200")]),
        ([("sr", ep_b), ("custom", None), ("ss", ep_b)], [("lc", "db"), ("census.status_code", "5"),
                                                          ("census.status_description", "bad")]),
        ([("ms", ep_a)], [("otel.status_code", "2"), ("otel.status_description", "x")]),
        ([("mr", None)], [("lc", "worker"), ("error", "oops"), ("otel.status_description", "via otel")]),
        ([("mr", {"serviceName": "q"}), ("wr", None)], [("http.status_code", "404"),
                                                        ("http.status_message", "nf")]),
        ([], [("k", "v", ep_b), ("n", "12")]),
        ([("cs", ep_a)], [("ok", "true"), ("d", "1.5"), ("http.status_code", "abc")]),
    ]
    for i, (annos, bins) in enumerate(cases):
        trace_id, span_id = _ids(variant, i)
        spans.append({
            "traceId": trace_id if i % 2 else trace_id[16:], "id": span_id, "name": f"v1-{i}",
            "parentId": _ids(variant, 50)[1] if i == 1 else None, "timestamp": T0 + 10 * i, "duration": 7 + i,
            "annotations": [{"timestamp": T0 + 10 * i + j, "value": v, **({"endpoint": e} if e else {})}
                            for j, (v, e) in enumerate(annos)],
            "binaryAnnotations": [{"key": b[0], "value": b[1], **({"endpoint": b[2]} if len(b) > 2 else {})}
                                  for b in bins],
        })
    return json.dumps(spans).encode()


# ---------------------------------------------------------------- the OpenTelemetry SDK's encoders


def sdk_spans(tag: str) -> list[Any]:
    """Finished SDK spans: kinds, attributes of each type, events, links, an error status."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"sdk-{tag}", "deployment.environment":
                                                        "test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("zipkin-interop", "0.9")
    with tracer.start_as_current_span("root", kind=trace.SpanKind.SERVER,
                                      attributes={"s": "x", "i": 3, "f": 0.5, "b": True, "arr": [1, 2]}) as root:
        root.add_event("started", {"step": 1, "why": "because"})
        with tracer.start_as_current_span("child", kind=trace.SpanKind.CLIENT,
                                          links=[trace.Link(root.get_span_context(), {"rel": "parent"})]) as child:
            child.set_status(trace.Status(trace.StatusCode.ERROR, "downstream failed"))
        with tracer.start_as_current_span("send", kind=trace.SpanKind.PRODUCER) as send:
            send.set_status(trace.Status(trace.StatusCode.OK))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def _local(tag: str) -> Any:
    from opentelemetry.exporter.zipkin.node_endpoint import NodeEndpoint
    node = NodeEndpoint("10.2.3.4", port=9000)
    node.service_name = f"sdk-{tag}"  # as the exporters do, from the spans' resource
    return node


def sdk_json(tag: str, version: int) -> bytes:
    from opentelemetry.exporter.zipkin.json.v1 import JsonV1Encoder
    from opentelemetry.exporter.zipkin.json.v2 import JsonV2Encoder
    encoder = JsonV2Encoder() if version == 2 else JsonV1Encoder()
    return encoder.serialize(sdk_spans(tag), _local(tag)).encode()


def sdk_proto_exporter() -> Any:
    """The SDK's Zipkin protobuf exporter module. Its generated `zipkin_pb2` predates protobuf 4 and
    no longer loads; the same messages (`pipelines.zipkin.v2_proto`, declared from the same wire
    format) stand in for it, so the exporter's own encoding and sending run unchanged."""
    name = "opentelemetry.exporter.zipkin.proto.http.v2.gen.zipkin_pb2"
    if name not in sys.modules:
        shim = types.ModuleType(name)
        shim.ListOfSpans, shim.Span = v2_proto.ListOfSpans, v2_proto.Span  # type: ignore[attr-defined]
        shim.Endpoint, shim.Annotation = v2_proto.Endpoint, v2_proto.Annotation  # type: ignore[attr-defined]
        sys.modules[name] = shim
    return importlib.import_module("opentelemetry.exporter.zipkin.proto.http")


def sdk_proto(tag: str) -> bytes:
    sdk_proto_exporter()
    from opentelemetry.exporter.zipkin.proto.http.v2 import ProtobufEncoder
    return bytes(ProtobufEncoder().serialize(sdk_spans(tag), _local(tag)))
