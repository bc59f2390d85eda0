"""`service.workers: 2`: two processes share the ports; spans sent over many connections arrive once,
/metrics adds the workers up, health speaks for both, a killed worker comes back, SIGTERM drains."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.workers import _parse, aggregate, render
from tests.harness import GatewayProcess, Ports, Sink, basic_config, running, wait_until

PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _config(ports: Ports, sink: Sink, batch: str = "batch: {timeout: 50ms}") -> str:
    exporters = f"""  otlp:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}
"""
    return basic_config(ports, exporters, "[otlp]", processors=batch).replace("service:\n", "service:\n  workers: 2\n")


def _request(conn: int, i: int, spans: int) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for k in range(spans):
        span = ss.spans.add()
        span.trace_id = os.urandom(16)
        span.span_id = os.urandom(8)
        span.name = f"c{conn}-r{i}-s{k}"
    return req.SerializeToString()


def _send(port: int, connections: int, requests: int, spans: int) -> set[str]:
    """Each connection is its own channel (no subchannel sharing), so the kernel spreads them."""
    names = set()
    for c in range(connections):
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            call = ch.unary_unary(PATH)
            for i in range(requests):
                call(_request(c, i, spans), timeout=10)
                names.update(f"c{c}-r{i}-s{k}" for k in range(spans))
    return names


def _workers(gw: GatewayProcess) -> list[int]:
    assert gw.proc is not None
    children = Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def test_spans_over_many_connections_arrive_once_and_metrics_add_up(ports: Ports, sink: Sink) -> None:
    with running(_config(ports, sink), ports) as gw:
        assert len(_workers(gw)) == 2
        names = _send(ports.grpc, connections=24, requests=3, spans=10)
        spans = sink.wait_spans(len(names))
        got = [span.name for _, _, span in spans]
        assert sorted(got) == sorted(names), "every span exactly once"
        wait_until(lambda: gw.metric("otelcol_exporter_sent_spans_total") == len(names), what="sent counted")
        assert gw.metric("otelcol_receiver_accepted_spans_total", transport="grpc") == len(names)
        assert gw.metric("otelcol_gateway_pipeline_incoming_items_total") == len(names)
        assert gw.metric("otelcol_gateway_workers") == 2
        assert gw.metric("otelcol_process_memory_rss") > 0
        assert gw.health() == 200


def test_sigterm_drains_every_worker_and_exits_zero(ports: Ports, sink: Sink) -> None:
    # A long batch timeout: the spans are still held in the workers' batches when SIGTERM comes.
    gw = GatewayProcess(_config(ports, sink, "batch: {timeout: 60s}"), ports=ports).start()
    try:
        names = _send(ports.grpc, connections=12, requests=2, spans=5)
        assert sink.span_count() == 0
        assert gw.stop(signal.SIGTERM) == 0, gw.stderr()
        assert sorted(span.name for _, _, span in sink.spans()) == sorted(names)
        assert "gateway stopped" in gw.stderr()
    finally:
        gw.kill()


def test_a_dead_worker_is_restarted_and_logged(ports: Ports, sink: Sink) -> None:
    with running(_config(ports, sink), ports) as gw:
        victim = _workers(gw)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: gw.metric("otelcol_gateway_worker_restarts_total") == 1, 30, "the restart")
        wait_until(lambda: gw.health() == 200 and len(_workers(gw)) == 2, 30, "both workers healthy")
        assert victim not in _workers(gw)
        assert f"pid {victim}) exited with code -9" in gw.stderr()
        names = _send(ports.grpc, connections=8, requests=1, spans=5)
        assert len(sink.wait_spans(len(names))) == len(names)


def test_aggregate_sums_counters_and_histograms_and_takes_the_longest_uptime() -> None:
    def scrape(accepted: float, bucket: float, uptime: float, rss: float) -> str:
        return f"""# TYPE otelcol_receiver_accepted_spans_total counter
otelcol_receiver_accepted_spans_total{{receiver="otlp",transport="grpc"}} {accepted}
# TYPE otelcol_processor_batch_batch_send_size histogram
otelcol_processor_batch_batch_send_size_bucket{{processor="batch",le="10.0"}} {bucket}
otelcol_processor_batch_batch_send_size_bucket{{processor="batch",le="+Inf"}} {bucket}
otelcol_processor_batch_batch_send_size_sum{{processor="batch"}} {bucket * 5}
otelcol_processor_batch_batch_send_size_count{{processor="batch"}} {bucket}
# TYPE otelcol_process_uptime_seconds_total counter
otelcol_process_uptime_seconds_total {uptime}
# TYPE otelcol_process_memory_rss gauge
otelcol_process_memory_rss {rss}
"""

    text = render(aggregate([_parse(scrape(10, 2, 5, 100)), _parse(scrape(32, 3, 7, 50))])).decode()
    assert 'otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 42.0' in text
    assert 'otelcol_processor_batch_batch_send_size_bucket{le="10.0",processor="batch"} 5.0' in text
    assert 'otelcol_processor_batch_batch_send_size_count{processor="batch"} 5.0' in text
    assert "otelcol_process_uptime_seconds_total 7.0" in text
    assert "otelcol_process_memory_rss 150.0" in text
    assert "# TYPE otelcol_receiver_accepted_spans_total counter" in text


def test_worker_config_moves_health_and_metrics_private_and_splits_storage(tmp_path: Path) -> None:
    from gateway.config.load import load_text
    from gateway.workers import worker_config

    loaded = load_text(f"""
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:4317"}}}}}}}}
exporters: {{debug: {{}}}}
extensions:
  health_check: {{endpoint: "0.0.0.0:13133"}}
  file_storage: {{directory: "{tmp_path}"}}
service:
  workers: 3
  extensions: [health_check, file_storage]
  pipelines: {{traces: {{receivers: [otlp], exporters: [debug]}}}}
  telemetry: {{metrics: {{readers: [{{pull: {{exporter: {{prometheus: {{host: 0.0.0.0, port: 8888}}}}}}}}]}}}}
""")
    cfg = worker_config(loaded.config, 2)
    assert cfg.extensions["health_check"].endpoint == "127.0.0.1:0"
    assert cfg.extensions["file_storage"].directory == str(tmp_path / "worker-2")
    assert cfg.metrics_address() == "127.0.0.1:0"
    assert cfg.service.workers == 1
    assert cfg.receivers == loaded.config.receivers
