"""Metrics and logs pass through: the OpenTelemetry Python SDK's metric and log exporters, over gRPC
and OTLP/HTTP, into `metrics` and `logs` pipelines with `batch`, out through both OTLP exporters.
Every data point and log record arrives once at each backend, and the gateway counts them under the
Collector's metric names."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.harness import Ports, Sink, running, wait_until

LOGS = 40
# Three counter series and two histogram series: five data points in the one export at shutdown.
COUNTER_SERIES = ("a", "b", "c")
HISTOGRAM_SERIES = ("GET", "POST")
POINTS = len(COUNTER_SERIES) + len(HISTOGRAM_SERIES)


def config(ports: Ports, grpc_sink: Sink, http_sink: Sink) -> str:
    pipeline = """      receivers: [otlp]
      processors: [batch]
      exporters: [otlp/grpc-backend, otlphttp/http-backend]"""
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports.grpc}"}}
      http: {{endpoint: "127.0.0.1:{ports.http}"}}
processors:
  batch: {{timeout: 50ms}}
exporters:
  otlp/grpc-backend:
    endpoint: "127.0.0.1:{grpc_sink.grpc_port}"
    tls: {{insecure: true}}
  otlphttp/http-backend:
    endpoint: "http://127.0.0.1:{http_sink.http_port}"
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
service:
  extensions: [health_check]
  pipelines:
    metrics:
{pipeline}
    logs:
{pipeline}
  telemetry:
    metrics: {{address: "127.0.0.1:{ports.metrics}"}}
"""


def send_metrics(exporter: MetricExporter, tag: str) -> None:
    # A long interval: the only export is the final one at shutdown, so each point is sent once.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({"service.name": f"kestra-{tag}"}), metric_readers=[reader])
    meter = provider.get_meter("e2e.metrics", "0.1")
    counter = meter.create_counter("executions", unit="1", description="flow executions")
    for i, flow in enumerate(COUNTER_SERIES):
        counter.add(i + 1, {"flow": flow, "tag": tag})
    histogram = meter.create_histogram("request.duration", unit="ms")
    for method in HISTOGRAM_SERIES:
        for ms in (5, 50, 500):
            histogram.record(ms, {"http.method": method})
    provider.shutdown()


def send_logs(exporter: LogRecordExporter, tag: str) -> set[str]:
    provider = LoggerProvider(resource=Resource.create({"service.name": f"kestra-{tag}"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_export_batch_size=16))
    logger = provider.get_logger("e2e.logs", "0.2")
    bodies = set()
    for i in range(LOGS):
        body = f"{tag} log {i}"
        logger.emit(body=body, severity_number=SeverityNumber.WARN, severity_text="WARN",
                    attributes={"i": i, "tag": tag})
        bodies.add(body)
    assert provider.force_flush(10_000)
    provider.shutdown()
    return bodies


def points(sink: Sink) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    """(metric name, sorted attributes) -> data point, for every point received."""
    out: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
    for r in sink.requests("metrics"):
        for rm in r.request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    for dp in getattr(m, kind).data_points:
                        attrs = tuple(sorted((kv.key, getattr(kv.value, kv.value.WhichOneof("value")))
                                             for kv in dp.attributes))
                        key = (m.name, attrs)
                        assert key not in out, f"point {key} received twice"
                        out[key] = dp
    return out


def log_records(sink: Sink) -> list[tuple[Any, Any, Any]]:
    out = []
    for r in sink.requests("logs"):
        for rl in r.request.resource_logs:
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    out.append((rl.resource, sl.scope, rec))
    return out


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_metrics_and_logs_arrive_once_at_both_exporters(transport: str, ports: Ports) -> None:
    grpc_sink = Sink().start()
    http_sink = Sink().start()
    try:
        with running(config(ports, grpc_sink, http_sink), ports) as gw:
            if transport == "grpc":
                metric_exporter: MetricExporter = GrpcMetricExporter(endpoint=f"127.0.0.1:{ports.grpc}", insecure=True)
                log_exporter: LogRecordExporter = GrpcLogExporter(endpoint=f"127.0.0.1:{ports.grpc}", insecure=True)
            else:
                metric_exporter = HttpMetricExporter(endpoint=f"http://127.0.0.1:{ports.http}/v1/metrics")
                log_exporter = HttpLogExporter(endpoint=f"http://127.0.0.1:{ports.http}/v1/logs")
            send_metrics(metric_exporter, transport)
            bodies = send_logs(log_exporter, transport)

            for sink in (grpc_sink, http_sink):
                sink_name = "grpc" if sink is grpc_sink else "http"

                def arrived(s: Sink = sink) -> bool:
                    return len(points(s)) >= POINTS and len(log_records(s)) >= LOGS

                wait_until(arrived, 15, f"{POINTS} points and {LOGS} log records at the {sink_name} sink")
                got = points(sink)
                assert len(got) == POINTS
                for i, flow in enumerate(COUNTER_SERIES):
                    key = ("executions", (("flow", flow), ("tag", transport)))
                    assert got[key].as_int == i + 1
                for method in HISTOGRAM_SERIES:
                    dp = got[("request.duration", (("http.method", method),))]
                    assert (dp.count, dp.sum, dp.min, dp.max) == (3, 555.0, 5.0, 500.0)
                for r in sink.requests("metrics"):
                    for rm in r.request.resource_metrics:
                        res = {kv.key: kv.value.string_value for kv in rm.resource.attributes}
                        assert res["service.name"] == f"kestra-{transport}"
                        scopes = [(sm.scope.name, sm.scope.version) for sm in rm.scope_metrics]
                        assert scopes == [("e2e.metrics", "0.1")]

                records = log_records(sink)
                assert sorted(rec.body.string_value for _, _, rec in records) == sorted(bodies), "each log once"
                for resource, scope, rec in records:
                    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == \
                        f"kestra-{transport}"
                    assert (scope.name, scope.version) == ("e2e.logs", "0.2")
                    assert (rec.severity_number, rec.severity_text) == (SeverityNumber.WARN.value, "WARN")
                    attrs = {kv.key: kv.value for kv in rec.attributes}
                    assert attrs["i"].int_value == int(rec.body.string_value.rsplit(" ", 1)[1])
                    assert attrs["tag"].string_value == transport
                    assert rec.observed_time_unix_nano > 0  # the SDK sets only the observed time

            assert gw.metric("otelcol_receiver_accepted_metric_points_total", transport=transport) == POINTS
            assert gw.metric("otelcol_receiver_accepted_log_records_total", transport=transport) == LOGS
            assert gw.metric("otelcol_receiver_refused_metric_points_total") == 0
            assert gw.metric("otelcol_receiver_refused_log_records_total") == 0
            for exporter in ("otlp/grpc-backend", "otlphttp/http-backend"):
                assert gw.metric("otelcol_exporter_sent_metric_points_total", exporter=exporter) == POINTS
                assert gw.metric("otelcol_exporter_sent_log_records_total", exporter=exporter) == LOGS
            assert gw.metric("otelcol_receiver_accepted_spans_total") == 0
            assert gw.stop() == 0
    finally:
        grpc_sink.stop()
        http_sink.stop()
