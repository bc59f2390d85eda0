"""The Collector-named metrics at /metrics are exact: a known number of spans over both transports,
in request sizes that make every batch decision deterministic (no timer races)."""

from __future__ import annotations

import grpc

from tests.e2e.support import grpc_export, http_request, spans_request
from tests.harness import Ports, Sink, basic_config, running, wait_until


def test_counts_match_what_was_sent(sink: Sink, ports: Ports) -> None:
    exporters = f"""  otlp:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}
  debug: {{verbosity: basic}}
"""
    # Each request of 50 spans fills exactly one batch (size trigger); the last 30 wait for the timer.
    cfg = basic_config(ports, exporters, "[otlp, debug]",
                       processors="batch: {send_batch_size: 50, send_batch_max_size: 50, timeout: 200ms}")
    with running(cfg, ports) as gw:
        for i in range(4):
            body = spans_request(50, name=f"g{i}").SerializeToString()
            assert grpc_export(ports.grpc, body)[0] == grpc.StatusCode.OK
        for i in range(3):
            body = spans_request(50, name=f"h{i}").SerializeToString()
            assert http_request(ports.http, body, headers={"Content-Type": "application/x-protobuf"}).status == 200
        body = spans_request(30, name="last").SerializeToString()
        assert http_request(ports.http, body, headers={"Content-Type": "application/x-protobuf"}).status == 200
        sink.wait_spans(380)
        wait_until(lambda: gw.metric("otelcol_exporter_sent_spans_total", exporter="debug") == 380,
                   what="debug exporter counts")
        m = gw.metrics()
        assert m['otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"}'] == 200
        assert m['otelcol_receiver_accepted_spans_total{receiver="otlp",transport="http"}'] == 180
        assert m['otelcol_receiver_refused_spans_total{receiver="otlp",transport="grpc"}'] == 0
        assert m['otelcol_receiver_refused_spans_total{receiver="otlp",transport="http"}'] == 0
        assert m['otelcol_exporter_sent_spans_total{exporter="otlp"}'] == 380
        assert m['otelcol_exporter_sent_spans_total{exporter="debug"}'] == 380
        assert m['otelcol_exporter_send_failed_spans_total{exporter="otlp"}'] == 0
        assert m['otelcol_processor_batch_batch_send_size_count{processor="batch"}'] == 8
        assert m['otelcol_processor_batch_batch_send_size_sum{processor="batch"}'] == 380
        assert m['otelcol_processor_batch_batch_send_size_bucket{le="25.0",processor="batch"}'] == 0
        assert m['otelcol_processor_batch_batch_send_size_bucket{le="50.0",processor="batch"}'] == 8
        assert m['otelcol_processor_batch_batch_size_trigger_send_total{processor="batch"}'] == 7
        assert m['otelcol_processor_batch_timeout_trigger_send_total{processor="batch"}'] == 1
        assert m['otelcol_gateway_pipeline_incoming_items_total{pipeline="traces"}'] == 380
        assert m['otelcol_gateway_pipeline_outgoing_items_total{pipeline="traces"}'] == 380
        assert len(sink.requests("traces")) == 8
        assert not any(key.endswith("_created") or "_created{" in key for key in m), "no _created series"
        assert gw.stop() == 0
