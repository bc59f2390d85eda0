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
    transport: Literal["grpc", "http", "http-json"] = "grpc"
    persistent: bool = False
    # A tail sampler holding each trace this many seconds (0: none). The payload then has traces of
    # 5-50 spans spread over consecutive requests (bench/payload.py), not one span per trace, and the
    # report adds memory per pending span.
    decision_wait: float = 0.0
    # Extra command-line flags for otelcol-ref (feature gates); the config stays the same.
    collector_flags: tuple[str, ...] = ()
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

# Issue 15's scenario f: tail sampling with the policy set operators start from. Three policies, as the
# Collector's README writes them: the Collector keeps a trace when any policy samples it (errors, or
# slower than 500 ms, or 10% of everything by trace id hash), and so do we. `decision_wait` is 2 s, not
# the default 30 s: a bench run lasts about 8 s, and at 30 s nothing would be decided (or delivered)
# until long after the load, so the CPU window would hold no decision work and the memory would be that
# of a pipeline still filling up; at 2 s as many traces are decided per second as arrive from the
# first half of the load on, where steady RSS is sampled. `num_traces` is far above what either side
# holds at these rates (both keep a decided trace's id in that table too, with no `decision_cache`:
# some 6,000 traces a second at 150,000 spans/s, under 60,000 in an 8 s run), so neither evicts (the
# Collector) or decides early (the gateway) for want of room. `sample_on_first_match` keeps the same
# traces (any policy sampling keeps a trace either way) but stops at the first that samples, so the
# Collector's per-policy span counts add up: the spans it drops are those the last policy saw and did
# not sample (`runner.dropped_in_pipeline`); it counts spans per policy only behind a feature gate.
_TAIL_WAIT = 2.0
_TAIL = f"""  tail_sampling:
    decision_wait: {_TAIL_WAIT:g}s
    num_traces: 200000
    sample_on_first_match: true
    policies:
      - {{name: errors, type: status_code, status_code: {{status_codes: [ERROR]}}}}
      - {{name: slow, type: latency, latency: {{threshold_ms: 500}}}}
      - {{name: ten-percent, type: probabilistic, probabilistic: {{sampling_percentage: 10}}}}
  batch: {{}}"""

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
        Scenario("f", "tail sampling: errors, latency > 500 ms, 10% of the rest", _TAIL, "tail_sampling, batch",
                 decision_wait=_TAIL_WAIT,
                 collector_flags=("--feature-gates=processor.tailsamplingprocessor.metricstatcountspanssampled",)),
        Scenario("g", "load-balancing to 3 endpoints (routing_key traceID)", _BATCH, "batch", loadbalancing=True),
        Scenario("h", "OTTL: filter (name, attribute regex) + 3-statement transform", _OTTL,
                 "filter/drop, transform/tidy, batch"),
        Scenario("j", "OTLP/HTTP JSON in (batch)", _BATCH, "batch", transport="http-json"),
    )
}
