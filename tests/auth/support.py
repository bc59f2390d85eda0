"""What the authenticator tests share: a gateway config with extensions and exporters spliced in,
the OpenTelemetry SDK exporters sending spans with credentials, and raw requests showing status codes."""

from __future__ import annotations

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.e2e.support import grpc_export, http_request
from tests.harness import Ports


def gateway_config(ports: Ports, exporters: str, pipeline_exporters: str, extensions: str = "",
                   extension_ids: str = "", receiver_options: str = "", processors: str = "[batch]") -> str:
    """The OTLP receiver (gRPC and HTTP, with `receiver_options` added to both), a batch processor,
    the given exporters (YAML, indented 2) and extensions (YAML, indented 2, enabled by id)."""
    opts = f", {receiver_options}" if receiver_options else ""
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports.grpc}"{opts}}}
      http: {{endpoint: "127.0.0.1:{ports.http}"{opts}}}
processors:
  batch: {{timeout: 20ms}}
exporters:
{exporters}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
{extensions}
service:
  extensions: [health_check{", " + extension_ids if extension_ids else ""}]
  pipelines:
    traces:
      receivers: [otlp]
      processors: {processors}
      exporters: {pipeline_exporters}
  telemetry:
    metrics: {{address: "127.0.0.1:{ports.metrics}"}}
"""


def send_spans(ports: Ports, transport: str, names: list[str], headers: dict[str, str],
               service: str = "svc") -> None:
    """Spans named `names`, one export per span, by the OpenTelemetry SDK's exporter for `transport`
    carrying `headers` (its `headers=` is how an application sends credentials)."""
    if transport == "grpc":
        exporter: GrpcSpanExporter | HttpSpanExporter = GrpcSpanExporter(
            endpoint=f"127.0.0.1:{ports.grpc}", insecure=True, headers={k.lower(): v for k, v in headers.items()})
    else:
        exporter = HttpSpanExporter(endpoint=f"http://127.0.0.1:{ports.http}/v1/traces", headers=headers)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("auth-tests")
    for name in names:
        with tracer.start_as_current_span(name):
            pass
    provider.shutdown()


def one_span() -> bytes:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 8, name="x")
    return req.SerializeToString()


def grpc_status(ports: Ports, authorization: str | None) -> tuple[grpc.StatusCode, str]:
    metadata = (("authorization", authorization),) if authorization is not None else ()
    return grpc_export(ports.grpc, one_span(), metadata=metadata)


def http_status(ports: Ports, authorization: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/x-protobuf"}
    if authorization is not None:
        headers["Authorization"] = authorization
    answer = http_request(ports.http, one_span(), headers=headers)
    return answer.status, answer.body.decode(errors="replace")
