"""The benchmark scenarios. Each is one Collector-format config, run unchanged by the gateway and by
otelcol-ref (the gateway only adds `service.workers`), so the comparison is the same work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Target = Literal["gateway", "collector"]


@dataclass(frozen=True)
class Ports:
    grpc: int
    http: int
    health: int
    metrics: int


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    processors: str  # YAML lines under `processors:`
    pipeline_processors: str
    exporters: int = 1  # fan-out: that many OTLP exporters to the sink
    transport: Literal["grpc", "http"] = "grpc"
    persistent: bool = False
    # One `loadbalancing` exporter (routing_key traceID) over three endpoints: the sink at 127.0.0.1-3.
    loadbalancing: bool = False
    # Items delivered per item accepted, when nothing is sampled out.
    @property
    def fanout(self) -> int:
        return self.exporters

    def config(self, target: Target, ports: Ports, sink: int, workdir: str, workers: int = 1) -> str:
        queue = "{storage: file_storage}" if self.persistent else "{enabled: true}"
        exporters = "\n".join(
            f"  otlp/{i}:\n"
            f"    endpoint: 127.0.0.1:{sink}\n"
            f"    tls: {{insecure: true}}\n"
            f"    compression: none\n"
            f"    sending_queue: {queue}"
            for i in range(self.exporters)
        )
        names = ", ".join(f"otlp/{i}" for i in range(self.exporters))
        if self.loadbalancing:
            exporters, names = _loadbalancing(sink), "loadbalancing"
        extensions = ["health_check"] + (["file_storage"] if self.persistent else [])
        storage = f"  file_storage:\n    directory: {workdir}/storage\n" if self.persistent else ""
        workers_line = f"  workers: {workers}\n" if target == "gateway" else ""
        return f"""receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports.grpc}"}}
      http: {{endpoint: "127.0.0.1:{ports.http}"}}
processors:
{self.processors}
exporters:
{exporters}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
{storage}service:
{workers_line}  extensions: [{", ".join(extensions)}]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [{self.pipeline_processors}]
      exporters: [{names}]
  telemetry:
    logs: {{level: warn}}
    metrics:
      readers:
        - pull: {{exporter: {{prometheus: {{host: "127.0.0.1", port: {ports.metrics}}}}}}}
"""


def _loadbalancing(sink: int) -> str:
    hostnames = ", ".join(f"127.0.0.{i}:{sink}" for i in (1, 2, 3))
    return f"""  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls: {{insecure: true}}
        compression: none
    resolver:
      static:
        hostnames: [{hostnames}]"""


_BATCH = "  batch: {}"
_SEEDS = """  batch: {}
  attributes/add_deployment:
    actions:
      - key: deployment.environment
        value: staging
        action: insert
  probabilistic_sampler:
    sampling_percentage: 50"""

# Issue 14's scenario: the OTTL processors as operators write them (batch last, as the Collector's
# docs recommend): health-check-like spans dropped by name and by an attribute pattern, then three
# statements (a resource attribute, a conditional span attribute, a deleted attribute).
_OTTL = """  batch: {}
  filter/drop:
    error_mode: ignore
    traces:
      span:
        - 'name == "GET /api/v1/items/0"'
        - 'IsMatch(attributes["attr.1"], "^[a-c]")'
  transform/tidy:
    error_mode: ignore
    trace_statements:
      - 'set(resource.attributes["deployment.environment"], "staging")'
      - 'set(span.attributes["http.route"], "/api/v1/items") where span.kind == SPAN_KIND_SERVER'
      - 'delete_key(span.attributes, "attr.7")'"""

SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("a", "passthrough (batch)", _BATCH, "batch"),
        Scenario("b", "seeds: batch + attributes insert + sampler 50%", _SEEDS,
                 "batch, attributes/add_deployment, probabilistic_sampler"),
        Scenario("c", "fan-out to 3 exporters", _BATCH, "batch", exporters=3),
        Scenario("d", "OTLP/HTTP in (batch)", _BATCH, "batch", transport="http"),
        Scenario("e", "persistent queue (file_storage)", _BATCH, "batch", persistent=True),
        Scenario("g", "load-balancing to 3 endpoints (routing_key traceID)", _BATCH, "batch", loadbalancing=True),
        Scenario("h", "OTTL: filter (name, attribute regex) + 3-statement transform", _OTTL,
                 "filter/drop, transform/tidy, batch"),
    )
}
