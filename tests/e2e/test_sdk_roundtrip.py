"""The real OpenTelemetry Python SDK sends spans into a running gateway, which forwards them over
both OTLP exporters; every span arrives once at each backend with its attributes and resource."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from tests.harness import Ports, Sink, basic_config, running

N = 50


def _send(exporter: SpanExporter, tag: str) -> set[str]:
    provider = TracerProvider(resource=Resource.create({"service.name": f"svc-{tag}", "team": "core"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=16))
    tracer = provider.get_tracer("e2e", "1.2.3")
    names = set()
    for i in range(N):
        with tracer.start_as_current_span(f"{tag}-{i}", attributes={"i": i, "tag": tag, "ok": True}):
            names.add(f"{tag}-{i}")
    assert provider.force_flush(10_000)
    provider.shutdown()
    return names


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_spans_arrive_once_at_both_exporters(transport: str, ports: Ports) -> None:
    grpc_sink = Sink().start()
    http_sink = Sink().start()
    try:
        exporters = f"""  otlp/grpc-backend:
    endpoint: "127.0.0.1:{grpc_sink.grpc_port}"
    tls: {{insecure: true}}
  otlphttp/http-backend:
    endpoint: "http://127.0.0.1:{http_sink.http_port}"
"""
        cfg = basic_config(ports, exporters, "[otlp/grpc-backend, otlphttp/http-backend]")
        with running(cfg, ports) as gw:
            if transport == "grpc":
                exporter: SpanExporter = GrpcSpanExporter(endpoint=f"127.0.0.1:{ports.grpc}", insecure=True)
            else:
                exporter = HttpSpanExporter(endpoint=f"http://127.0.0.1:{ports.http}/v1/traces")
            names = _send(exporter, transport)
            for s in (grpc_sink, http_sink):
                spans = s.wait_spans(N)
                got = [span.name for _, _, span in spans]
                assert sorted(got) == sorted(names), "every span exactly once"
                for resource, scope, span in spans:
                    res = {kv.key: kv.value.string_value for kv in resource.attributes}
                    assert res["service.name"] == f"svc-{transport}"
                    assert res["team"] == "core"
                    assert (scope.name, scope.version) == ("e2e", "1.2.3")
                    attrs = {kv.key: kv.value for kv in span.attributes}
                    assert attrs["i"].int_value == int(span.name.split("-")[1])
                    assert attrs["tag"].string_value == transport
                    assert attrs["ok"].bool_value is True
            assert gw.metric("otelcol_receiver_accepted_spans_total", transport=transport) == N
            assert gw.metric("otelcol_exporter_sent_spans_total", exporter="otlp/grpc-backend") == N
            assert gw.metric("otelcol_exporter_sent_spans_total", exporter="otlphttp/http-backend") == N
            assert gw.metric("otelcol_receiver_refused_spans_total") == 0
            assert gw.stop() == 0
    finally:
        grpc_sink.stop()
        http_sink.stop()
