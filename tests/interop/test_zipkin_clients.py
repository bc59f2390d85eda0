"""End to end with real clients: the OpenTelemetry SDK's Zipkin exporters (JSON and protobuf) send
to a running gateway's `zipkin` receiver, which delivers OTLP to a backend (the Sink)."""

from __future__ import annotations

import yaml
from opentelemetry.exporter.zipkin.json import ZipkinExporter as JsonExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.harness import Ports, Sink, running
from tests.interop import _zipkin


def test_sdk_zipkin_exporters_through_the_gateway_to_the_backend(ports: Ports, sink: Sink) -> None:
    config = yaml.safe_dump({
        "receivers": {"zipkin": {"endpoint": f"127.0.0.1:{ports.http}"}},
        "processors": {"batch": {"timeout": "50ms"}},
        "exporters": {"otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True}}},
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{ports.health}"}},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"traces": {"receivers": ["zipkin"], "processors": ["batch"],
                                             "exporters": ["otlp/backend"]}},
                    "telemetry": {"metrics": {"address": f"127.0.0.1:{ports.metrics}"}}},
    })
    url = f"http://127.0.0.1:{ports.http}/api/v2/spans"
    with running(config, ports) as gw:
        assert JsonExporter(endpoint=url).export(_zipkin.sdk_spans("json")) is SpanExportResult.SUCCESS
        proto = _zipkin.sdk_proto_exporter().ZipkinExporter(endpoint=url)
        assert proto.export(_zipkin.sdk_spans("proto")) is SpanExportResult.SUCCESS
        spans = sink.wait_spans(6)
        assert gw.metric("otelcol_receiver_accepted_spans_total", transport="http_v2_json") == 3
        assert gw.metric("otelcol_receiver_accepted_spans_total", transport="http_v2_proto") == 3
    by_service: dict[str, list[str]] = {}
    for resource, _scope, span in spans:
        service = next(kv.value.string_value for kv in resource.attributes if kv.key == "service.name")
        by_service.setdefault(service, []).append(span.name)
    assert {k: sorted(v) for k, v in by_service.items()} == {
        "sdk-json": ["child", "root", "send"], "sdk-proto": ["child", "root", "send"]}
    root = next(span for _r, _s, span in spans if span.name == "root")
    # The SDK writes an event as a JSON annotation, which the Collector's translation (and ours, compared
    # with it in test_zipkin_side_by_side.py) keeps whole as the event's name.
    assert root.kind == 2 and [e.name for e in root.events] == ['{"started": {"step": 1, "why": "because"}}']
