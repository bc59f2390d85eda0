"""`service::telemetry`, each key against its default: where /metrics listens (`metrics::address`, or a
Prometheus pull reader in `metrics::readers`), `metrics::level` choosing the metrics shown (`none`
turning /metrics off), `logs::level` filtering the gateway's log and `logs::encoding` writing it as
console lines or JSON objects."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.config.load import load_text
from gateway.serve import JsonFormatter
from gateway.service import Service
from tests.e2e.support import http_request, spans_request
from tests.harness import GatewayProcess, Ports, free_ports


def _config(receiver_port: int, telemetry: str) -> str:
    return f"""
receivers: {{otlp: {{protocols: {{http: {{endpoint: "127.0.0.1:{receiver_port}"}}}}}}}}
exporters: {{debug: {{}}}}
service:
  pipelines: {{traces: {{receivers: [otlp], exporters: [debug]}}}}
  telemetry: {telemetry}
"""


def _scrape(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return int(r.status)
    except OSError:
        return None


def _served(telemetry: str, ports: list[int]) -> list[int | None]:
    """Run the service with `telemetry`; the /metrics answer on each of `ports`."""
    (receiver,) = free_ports(1)

    async def run() -> list[int | None]:
        service = Service(load_text(_config(receiver, telemetry), env={}).config)
        await service.start()
        try:
            return [await asyncio.to_thread(_scrape, p) for p in ports]
        finally:
            await service.shutdown()

    return asyncio.run(run())


def test_metrics_address_is_where_metrics_are_served() -> None:
    a, b = free_ports(2)
    assert _served(telemetry=f'{{metrics: {{address: "127.0.0.1:{a}"}}}}', ports=[a, b]) == [200, None]
    assert _served(telemetry=f'{{metrics: {{address: "127.0.0.1:{b}"}}}}', ports=[a, b]) == [None, 200]


def test_metrics_level_none_serves_no_metrics() -> None:
    (a,) = free_ports(1)
    assert _served(f'{{metrics: {{address: "127.0.0.1:{a}", level: normal}}}}', [a]) == [200]
    assert _served(f'{{metrics: {{address: "127.0.0.1:{a}", level: none}}}}', [a]) == [None]


def _families_at(level: str) -> set[str]:
    """The metric families a gateway with a batch processor serves at /metrics at `level`."""
    receiver, metrics = free_ports(2)
    config = f"""
receivers: {{otlp: {{protocols: {{http: {{endpoint: "127.0.0.1:{receiver}"}}}}}}}}
processors: {{batch: {{}}}}
exporters: {{debug: {{}}}}
service:
  pipelines: {{traces: {{receivers: [otlp], processors: [batch], exporters: [debug]}}}}
  telemetry: {{metrics: {{address: "127.0.0.1:{metrics}", level: {level}}}}}
"""

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as r:
            return str(r.read().decode())

    async def run() -> str:
        service = Service(load_text(config, env={}).config)
        await service.start()
        try:
            return await asyncio.to_thread(scrape)
        finally:
            await service.shutdown()

    return {family.name for family in text_string_to_metric_families(asyncio.run(run()))}


def test_metrics_level_basic_normal_detailed_show_the_collectors_metrics_of_each_level() -> None:
    basic, normal, detailed = (_families_at(level) for level in ("basic", "normal", "detailed"))
    # As the Collector's views: the batch processor's metrics from normal, its bytes histogram at detailed.
    assert normal - basic == {"otelcol_processor_batch_batch_send_size", "otelcol_processor_batch_timeout_trigger_send",
                              "otelcol_processor_batch_batch_size_trigger_send"}
    assert detailed - normal == {"otelcol_processor_batch_batch_send_size_bytes"}
    assert basic < normal < detailed
    assert {"otelcol_receiver_accepted_spans", "otelcol_exporter_sent_spans", "otelcol_process_memory_rss"} <= basic


def test_metrics_readers_prometheus_pull_is_where_metrics_are_served() -> None:
    a, b = free_ports(2)
    reader = f"{{pull: {{exporter: {{prometheus: {{host: 127.0.0.1, port: {b}}}}}}}}}"
    assert _served(f'{{metrics: {{address: "127.0.0.1:{a}", readers: [{reader}]}}}}', [a, b]) == [None, 200]


def _log_of_a_gateway(ports: Ports, level: str | None, encoding: str | None = None, workers: int = 1,
                      exporter: str = "debug") -> str:
    """The stderr of a gateway that starts, takes one request and stops."""
    logs = ", ".join(f"{key}: {value}" for key, value in (("level", level), ("encoding", encoding)) if value)
    config = f"""
receivers: {{otlp: {{protocols: {{http: {{endpoint: "127.0.0.1:{ports.http}"}}}}}}}}
exporters: {{{exporter}: {{verbosity: normal}}}}
extensions: {{health_check: {{endpoint: "127.0.0.1:{ports.health}"}}}}
service:
  workers: {workers}
  extensions: [health_check]
  pipelines: {{traces: {{receivers: [otlp], exporters: [{exporter}]}}}}
  telemetry: {{metrics: {{address: "127.0.0.1:{ports.metrics}"}}, logs: {{{logs}}}}}
"""
    gw = GatewayProcess(config, ports=ports).start()
    try:
        body = spans_request(2).SerializeToString()
        assert http_request(ports.http, body, headers={"Content-Type": "application/x-protobuf"}).status == 200
        assert gw.stop() == 0
        return gw.stderr()
    finally:
        gw.kill()


@pytest.mark.parametrize(("level", "info_logged"), [(None, True), ("warn", False), ("debug", True)])
def test_logs_level_filters_the_gateways_log(level: str | None, info_logged: bool) -> None:
    stderr = _log_of_a_gateway(Ports.free(), level)
    assert ("\tINFO\t" in stderr and "gateway started" in stderr) is info_logged, stderr


# zapcore.ISO8601TimeEncoder, as the Collector's JSON lines carry it: 2025-01-31T12:00:00.123Z (or +0100).
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})")


@pytest.mark.parametrize("workers", [1, 2])
def test_logs_encoding_json_writes_each_line_as_one_json_object(workers: int) -> None:
    # `logging` (the deprecated name) makes the loader warn: a warning of a running gateway is a log line too.
    stderr = _log_of_a_gateway(Ports.free(), None, encoding="json", workers=workers, exporter="logging")
    lines = [json.loads(line) for line in stderr.splitlines()]
    for line in lines:
        assert list(line)[:5] == ["level", "ts", "logger", "caller", "msg"], line
        assert _TS.fullmatch(line["ts"]), line
        assert re.fullmatch(r"\w+/\w+\.py:\d+", line["caller"]), line
    assert {"level": "warn", "logger": "gateway",
            "msg": "exporters::logging: 'logging' is a deprecated name, use 'debug'"}.items() <= lines[0].items()
    started = [line for line in lines if line["msg"].startswith("gateway started")]
    exported = [line for line in lines if line["logger"] == "gateway.exporter.debug"]
    assert exported and exported[0]["level"] == "info" and "\nResourceTraces #0" in exported[0]["msg"]
    if workers == 1:
        assert len(started) == 1 and not any("worker" in line for line in lines)
    else:
        # Each worker's lines carry its number; the supervisor's carry none.
        assert sorted(line.get("worker", 0) for line in started) == [0, 1, 2]


def test_logs_encoding_console_is_the_default_layout() -> None:
    stderr = _log_of_a_gateway(Ports.free(), None)
    for line in stderr.splitlines():
        # The debug exporter's output at `normal` is one message of several lines.
        if not line.startswith(("ResourceTraces", "ScopeTraces", "span")):
            assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\t[A-Z]+\tgateway", line), line
    assert "\tINFO\tgateway.exporter.debug\tTracesExporter\t{" in stderr


def test_logs_encoding_json_gives_an_exception_as_error_and_stacktrace() -> None:
    record = logging.getLogger("gateway.test").makeRecord(
        "gateway.test", logging.ERROR, __file__, 7, "send failed: %s", ("backend down",), None)
    try:
        raise ConnectionError("refused")
    except ConnectionError:
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter({"worker": 3}).format(record))
    assert {k: line[k] for k in ("level", "logger", "caller", "msg", "worker", "error")} == {
        "level": "error", "logger": "gateway.test", "caller": "tests/test_service_telemetry.py:7",
        "msg": "send failed: backend down", "worker": 3, "error": "refused"}
    assert line["stacktrace"].startswith("Traceback (most recent call last):")
    assert line["stacktrace"].endswith("ConnectionError: refused")
