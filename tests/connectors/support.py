"""Gateway configs whose pipelines are joined by connectors, for the delivery tests through them."""

from __future__ import annotations

import collections
import os

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.harness import SERVICES, Ports, Sink


def connected_config(ports: Ports, exporters: list[str], connectors: str, pipelines: str,
                     processors: str = "batch: {timeout: 50ms}", extensions: str = "",
                     service_extensions: str = "", otlp_extra: str = "") -> str:
    """The OTLP receiver, health and metrics on `ports`, the given exporters, connectors and pipelines
    (a `pipelines:` body, indented by 4)."""
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports.grpc}"{otlp_extra}}}
      http: {{endpoint: "127.0.0.1:{ports.http}"{otlp_extra}}}
processors:
  {processors}
connectors:
{connectors}
exporters:
{"".join(exporters)}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
{extensions}
service:
  extensions: [health_check{service_extensions}]
  pipelines:
{pipelines}
  telemetry:
    metrics: {{address: "127.0.0.1:{ports.metrics}"}}
"""


def services_request(spans_by_service: dict[str, list[str]]) -> bytes:
    """One export request with a resource per service, holding a span per name."""
    resources = []
    for service, names in spans_by_service.items():
        resource = resource_pb2.Resource(
            attributes=[common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value=service))])
        spans = [trace_pb2.Span(trace_id=os.urandom(16), span_id=os.urandom(8), name=name, start_time_unix_nano=1,
                                end_time_unix_nano=2) for name in names]
        resources.append(trace_pb2.ResourceSpans(resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=spans)]))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=resources).SerializeToString()


class ExportClient:
    """Sends raw export requests over gRPC, optionally with a bearer token; remembers what was
    acknowledged and refused by span name."""

    def __init__(self, grpc_port: int, token: str | None = None) -> None:
        self._channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        self._call = self._channel.unary_unary(f"/{SERVICES['traces']}/Export", request_serializer=None,
                                               response_deserializer=None)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.acked: list[str] = []
        self.refused: list[str] = []
        self.codes: collections.Counter[str] = collections.Counter()

    def send(self, spans_by_service: dict[str, list[str]]) -> bool:
        names = [n for ns in spans_by_service.values() for n in ns]
        try:
            self._call(services_request(spans_by_service), timeout=10, metadata=self._metadata)
        except grpc.RpcError as exc:
            self.refused.extend(names)
            self.codes[exc.code().name] += 1  # type: ignore[attr-defined]
            return False
        self.acked.extend(names)
        self.codes["OK"] += 1
        return True

    def close(self) -> None:
        self._channel.close()


def services_at(sink: Sink) -> dict[str, str]:
    """Span name -> the service.name of its resource, for every span the sink received (a name seen
    twice is reported by `names_at`)."""
    out: dict[str, str] = {}
    for req in sink.requests("traces"):
        for rs in req.request.resource_spans:
            service = next((kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"), "")
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    out[sp.name] = service
    return out
