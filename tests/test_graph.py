"""The pipeline graph as the service builds it: nodes, edges, the batching policy given to exporters
(through connectors too), and the order pipelines joined by connectors are built in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.config.load import load_file, load_text
from gateway.config.model import PipelineConfig, pipeline_order
from gateway.exporters.helper import Exporter
from gateway.graph import ExporterNodeData, Graph
from gateway.service import Service
from pipelines.errors import RetryableError
from tests.processors.build import batch_of, span_request

REPO = Path(__file__).resolve().parent.parent

CONNECTED = """
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:1"}}}
processors:
  batch: {send_batch_size: 100, send_batch_max_size: 300, timeout: 2s, metadata_keys: [X-Tenant]}
  attributes/a: {actions: [{key: a, value: b, action: insert}]}
connectors:
  forward: {}
exporters:
  debug: {}
  otlp/a: {endpoint: "127.0.0.1:9", tls: {insecure: true}}
service:
  pipelines:
    traces/in:
      receivers: [otlp]
      processors: [batch]
      exporters: [forward]
    traces/a:
      receivers: [forward]
      processors: [attributes/a]
      exporters: [otlp/a]
    traces/b:
      receivers: [forward, otlp]
      exporters: [debug]
"""


def test_the_shipped_config_builds_the_graph_the_readme_shows() -> None:
    graph = Service(load_file(REPO / "config.yaml").config).build()
    assert graph.describe() == "\n".join([
        "pipeline traces: [receiver otlp] -> entry -> processor batch -> exit -> [exporter debug]",
        "exporter debug batches by processor:traces:batch",
        "edges:",
        "  receiver:otlp -> entry:traces",
        "  entry:traces -> processor:traces:batch",
        "  processor:traces:batch -> exit:traces",
        "  exit:traces -> exporter:debug",
    ])


def test_connected_pipelines_as_nodes_and_edges() -> None:
    graph = Service(load_text(CONNECTED, env={}).config).build()
    assert list(graph.pipelines) == ["traces/in", "traces/a", "traces/b"]
    assert [n.key for n in graph.pipelines["traces/a"]] == [
        "entry:traces/a", "processor:traces/a:attributes/a", "exit:traces/a"]
    edges = {(a.key, b.key) for a, b in graph.edges()}
    assert ("exit:traces/in", "connector:forward:traces") in edges
    assert ("connector:forward:traces", "entry:traces/a") in edges
    assert ("connector:forward:traces", "entry:traces/b") in edges
    assert ("receiver:otlp", "entry:traces/b") in edges
    assert ("receiver:otlp", "entry:traces/a") not in edges
    receiver = graph.receivers["otlp"]
    reachable = {n.key for n in Graph.downstream(receiver)}
    assert {"exporter:otlp/a", "exporter:debug", "connector:forward:traces"} <= reachable


def test_the_batch_policy_reaches_exporters_through_connectors() -> None:
    graph = Service(load_text(CONNECTED, env={}).config).build()
    assert graph.batching == {"otlp/a": "processor:traces/in:batch", "debug": "processor:traces/in:batch"}
    for xid in ("otlp/a", "debug"):
        node = graph.exporters[xid]
        assert isinstance(node, ExporterNodeData) and isinstance(node.component, Exporter)
        policy = node.component.policy
        assert (policy.send_batch_size, policy.send_batch_max_size, policy.timeout) == (100, 300, 2.0)
        assert policy.metadata_keys == ("x-tenant",)
        assert policy.processor == "batch"


def test_an_exporter_without_batch_upstream_merges_what_is_queued() -> None:
    text = CONNECTED.replace("      processors: [batch]\n", "")
    graph = Service(load_text(text, env={}).config).build()
    assert graph.batching == {}
    component = graph.exporters["otlp/a"].component
    assert isinstance(component, Exporter) and component.policy.processor is None


def test_pipelines_a_connector_feeds_are_built_first() -> None:
    p = PipelineConfig
    pipes = {
        "traces/in": p(receivers=("otlp",), exporters=("forward/1",)),
        "traces/mid": p(receivers=("forward/1",), exporters=("forward/2", "debug")),
        "traces/out": p(receivers=("forward/2",), exporters=("debug",)),
        "logs": p(receivers=("otlp",), exporters=("debug",)),
    }
    order = pipeline_order(pipes, frozenset({"forward/1", "forward/2"}))
    assert order == ["traces/out", "traces/mid", "traces/in", "logs"]
    with pytest.raises(ValueError, match="traces/in -> traces/mid -> traces/in"):
        pipeline_order({**pipes, "traces/mid": p(receivers=("forward/1",), exporters=("forward/3",)),
                        "traces/in": p(receivers=("otlp", "forward/3"), exporters=("forward/1",))},
                       frozenset({"forward/1", "forward/2", "forward/3"}))


def test_stages_stop_upstream_first_through_connectors_whatever_the_config_order() -> None:
    config = """
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:1"}}}
processors:
  tail_sampling/in: {policies: [{name: all, type: always_sample}]}
  tail_sampling/out: {policies: [{name: all, type: always_sample}]}
  batch: {}
connectors:
  forward: {}
exporters:
  debug: {}
service:
  pipelines:
    traces/out: {receivers: [forward], processors: [tail_sampling/out, batch], exporters: [debug]}
    traces/in: {receivers: [otlp], processors: [tail_sampling/in], exporters: [forward]}
"""
    service = Service(load_text(config, env={}).config)
    stop_order = [name for name, _ in service._phases(service.build())[1]]
    assert stop_order == ["processor:traces/in:tail_sampling/in", "connector:forward:traces",
                          "processor:traces/out:tail_sampling/out", "processor:traces/out:batch"]


def test_processors_after_batch_get_a_join_and_a_last_batch_does_not() -> None:
    seeds = CONNECTED.replace("      processors: [attributes/a]\n", "      processors: [batch, attributes/a]\n")
    graph = Service(load_text(seeds, env={}).config).build()
    assert [n.key for n in graph.pipelines["traces/a"]] == [
        "entry:traces/a", "processor:traces/a:batch", "join:traces/a:batch", "processor:traces/a:attributes/a",
        "exit:traces/a"]
    # Nothing runs after traces/in's batch: no join there (the exporters' queues batch).
    assert [n.kind for n in graph.pipelines["traces/in"]] == ["entry", "processor", "exit"]


def test_a_join_never_groups_more_than_a_sending_queue_holds() -> None:
    """With `sizer: items` and a queue smaller than send_batch_size, a group as large as the batch would
    be refused for good where each request fits: the join's groups stay within the queue."""
    from gateway.join import RequestJoiner

    text = CONNECTED.replace("      processors: [attributes/a]\n", "      processors: [batch, attributes/a]\n").replace(
        'otlp/a: {endpoint: "127.0.0.1:9", tls: {insecure: true}}',
        'otlp/a: {endpoint: "127.0.0.1:9", tls: {insecure: true}, sending_queue: {sizer: items, queue_size: 50}}')
    graph = Service(load_text(text, env={}).config).build()
    join = next(n for n in graph.pipelines["traces/a"] if n.kind == "join")
    assert isinstance(join.consumer, RequestJoiner)
    assert join.consumer._max_items == 50


def test_tail_sampling_is_told_the_headers_downstream_batches_by_and_its_authenticators_read() -> None:
    config = """
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:1", include_metadata: true}}}
processors:
  tail_sampling: {policies: [{name: all, type: always_sample}]}
  batch: {metadata_keys: [X-Team]}
extensions:
  headers_setter: {headers: [{key: x-out, from_context: X-Org}, {key: x-t, from_context: x-team}]}
exporters:
  otlp/a: {endpoint: "127.0.0.1:9", tls: {insecure: true}, auth: {authenticator: headers_setter}}
service:
  extensions: [headers_setter]
  pipelines:
    traces: {receivers: [otlp], processors: [tail_sampling, batch], exporters: [otlp/a]}
"""
    graph = Service(load_text(config, env={}).config).build()
    stage = next(n.stage for n in graph.pipelines["traces"] if n.id == "tail_sampling")
    assert (stage.metadata_keys, stage.read_keys) == (("x-team",), ("x-org",))  # type: ignore[union-attr]


COUNTED = """
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:1"}}}
processors:
  # A limit of its own: no other test's stage shares this limiter.
  memory_limiter: {check_interval: 1s, limit_mib: 987654}
  batch: {}
  attributes/a: {actions: [{key: a, value: b, action: insert}]}
exporters:
  debug: {}
service:
  telemetry: {metrics: {level: LEVEL}}
  pipelines:
    traces/a: {receivers: [otlp], processors: [memory_limiter, attributes/a, batch], exporters: [debug]}
    traces/b: {receivers: [otlp], processors: [memory_limiter], exporters: [debug]}
"""


def _counted(level: str = "normal") -> tuple[Service, Graph]:
    service = Service(load_text(COUNTED.replace("LEVEL", level), env={}).config)
    return service, service.build()


def _sample(service: Service, name: str, **labels: str) -> float | None:
    return service.telemetry.registry.get_sample_value(name, labels)


def test_processor_stages_count_their_items_with_no_layer_around_them() -> None:
    service, g = _counted()
    procs = [n for n in g.pipelines["traces/a"] if n.kind == "processor"]
    assert [n.consumer is n.stage for n in procs] == [True, True, True]

    async def run() -> None:
        await g.pipelines["traces/a"][0].consumer.consume(batch_of(span_request([{}] * 5)))

    asyncio.run(run())
    for p in ("memory_limiter", "attributes/a", "batch"):
        labels = {"processor": p, "otel_signal": "traces"}
        assert _sample(service, "otelcol_processor_incoming_items_total", **labels) == 5, p
        assert _sample(service, "otelcol_processor_outgoing_items_total", **labels) == 5, p


def test_a_level_that_hides_the_processor_counts_registers_none() -> None:
    service, _ = _counted("none")
    assert not [m for m in service.telemetry.registry.collect() if m.name.startswith("otelcol_processor_")]


def test_a_refusal_on_admission_counts_the_incoming_items_as_with_one_pipeline() -> None:
    """A receiver feeding two pipelines asks both `admit` first: the memory_limiter that refuses there
    counts what it was passed, as when one pipeline's `consume` reaches it."""
    service, g = _counted()
    limiter = g.pipelines["traces/a"][1].stage.limiter  # type: ignore[union-attr]
    limiter.state = "hard"
    fanout = g.receivers["otlp"].targets["traces"]

    async def run() -> None:
        with pytest.raises(RetryableError):
            await fanout.consume(batch_of(span_request([{}] * 7)))

    try:
        asyncio.run(run())
    finally:
        limiter.state = "ok"
    labels = {"processor": "memory_limiter", "otel_signal": "traces"}
    assert _sample(service, "otelcol_processor_incoming_items_total", **labels) == 7
    assert _sample(service, "otelcol_processor_outgoing_items_total", **labels) == 0
    assert _sample(service, "otelcol_processor_refused_spans_total", processor="memory_limiter") == 7
    assert _sample(service, "otelcol_gateway_pipeline_incoming_items_total", pipeline="traces/a") == 7
