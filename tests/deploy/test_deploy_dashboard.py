"""The Grafana dashboard: every metric its queries use is in the contract and in a real /metrics."""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    CHART,
    free_port,
    gateway_process,
    http_status,
    read_log,
    repo_env,
    stop_gracefully,
    wait_for,
)

DASHBOARD = CHART / "dashboards" / "gateway.json"

# The team contract's metric names (notes/CONTRACT.md, "Metric names exposed at /metrics").
CONTRACT_METRICS = {
    "otelcol_receiver_accepted_spans_total",
    "otelcol_receiver_refused_spans_total",
    "otelcol_receiver_accepted_metric_points_total",
    "otelcol_receiver_refused_metric_points_total",
    "otelcol_receiver_accepted_log_records_total",
    "otelcol_receiver_refused_log_records_total",
    "otelcol_exporter_sent_spans_total",
    "otelcol_exporter_send_failed_spans_total",
    "otelcol_exporter_sent_metric_points_total",
    "otelcol_exporter_send_failed_metric_points_total",
    "otelcol_exporter_sent_log_records_total",
    "otelcol_exporter_send_failed_log_records_total",
    "otelcol_exporter_enqueue_failed_spans_total",
    "otelcol_exporter_enqueue_failed_metric_points_total",
    "otelcol_exporter_enqueue_failed_log_records_total",
    "otelcol_exporter_queue_size",
    "otelcol_exporter_queue_capacity",
    "otelcol_processor_batch_batch_send_size",
    "otelcol_processor_batch_batch_send_size_bytes",
    "otelcol_processor_batch_timeout_trigger_send_total",
    "otelcol_processor_batch_batch_size_trigger_send_total",
    "otelcol_processor_dropped_spans_total",
    "otelcol_gateway_pipeline_incoming_items_total",
    "otelcol_gateway_pipeline_outgoing_items_total",
    "otelcol_process_memory_rss",
    "otelcol_process_cpu_seconds_total",
    "otelcol_process_uptime_seconds_total",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "atan2",
}


# --- reading PromQL -----------------------------------------------------------------------------


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, aggregations,
    keywords, label names (inside {} or by/without/on/ignoring lists), durations or variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w$.:])[A-Za-z_:][\w:]*", text):
        name = m.group(0)
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") or name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def label_values_metric(query: str) -> set[str]:
    """Grafana's label_values(metric{...}, label): only the first argument holds a metric."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
    return promql_metric_names(m.group(1) if m else query)


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, set[str]]]:
    out: list[tuple[str, set[str]]] = []

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", promql_metric_names(target["expr"])))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out.append((f"variable ${var['name']}", label_values_metric(query)))
    return out


def base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_promql_reader() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, processor) (rate(otelcol_processor_batch_batch_send_size_bucket"
        '{namespace=~"$namespace", pod=~"a|b"}[$__rate_interval]))) / on (pod) group_left(exporter) '
        "max without (instance) (otelcol_exporter_queue_capacity offset 5m) > bool 1e3"
    )
    assert promql_metric_names(expr) == {
        "otelcol_processor_batch_batch_send_size_bucket",
        "otelcol_exporter_queue_capacity",
    }
    assert label_values_metric('label_values(otelcol_process_memory_rss{namespace=~"$ns"}, pod)') == {
        "otelcol_process_memory_rss"
    }


def test_dashboard_uses_only_contract_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 20
    used: set[str] = set()
    for where, names in queries:
        assert names, f"{where}: no metric name found"
        for name in names:
            assert name in CONTRACT_METRICS or base_name(name) in CONTRACT_METRICS, f"{where}: {name}"
        used |= names
    # The issue's list: throughput per pipeline, refusals, queue vs capacity, exporter failures,
    # batch sizes, memory.
    for needed in (
        "otelcol_gateway_pipeline_incoming_items_total",
        "otelcol_gateway_pipeline_outgoing_items_total",
        "otelcol_receiver_refused_spans_total",
        "otelcol_exporter_queue_size",
        "otelcol_exporter_queue_capacity",
        "otelcol_exporter_send_failed_spans_total",
        "otelcol_processor_batch_batch_send_size_bucket",
        "otelcol_process_memory_rss",
    ):
        assert needed in used, needed
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# --- against a running gateway ------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def one_span_request() -> bytes:
    """ExportTraceServiceRequest with one span, encoded by hand (no SDK needed)."""
    now = time.time_ns()
    span = (
        _field(1, os.urandom(16))  # trace_id
        + _field(2, os.urandom(8))  # span_id
        + _field(5, b"dashboard-test")  # name
        + _varint(6 << 3)
        + _varint(2)  # kind = SERVER
        + _varint(7 << 3 | 1)
        + struct.pack("<Q", now - 1_000_000)  # start_time_unix_nano
        + _varint(8 << 3 | 1)
        + struct.pack("<Q", now)  # end_time_unix_nano
    )
    any_value = _field(1, b"dashboard-test-service")  # AnyValue.string_value
    attribute = _field(1, b"service.name") + _field(2, any_value)
    resource = _field(1, attribute)
    scope_spans = _field(2, span)
    resource_spans = _field(1, resource) + _field(2, scope_spans)
    return _field(1, resource_spans)


class _Backend(BaseHTTPRequestHandler):
    """An OTLP/HTTP backend that accepts everything (an empty ExportTraceServiceResponse)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def scrape_names(text: str) -> set[str]:
    """Sample names, plus family names from # TYPE lines (a labelled family with no child yet)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            if kind in ("histogram", "summary"):
                names.update(name + s for s in HISTOGRAM_SUFFIXES)
            if kind == "counter" and not name.endswith("_total"):
                names.add(name + "_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def sample_value(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if re.match(rf"{re.escape(name)}(\{{|\s)", line):
            total += float(line.rsplit(maxsplit=1)[1])
    return total


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        body: bytes = resp.read()
        return body.decode()


@pytest.mark.usefixtures("needs_gateway")
def test_dashboard_metrics_exist_in_scrape(tmp_path: Path) -> None:
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    thread = threading.Thread(target=backend.serve_forever, daemon=True)
    thread.start()
    try:
        grpc_port, http_port, health_port, metrics_port = (free_port() for _ in range(4))
        config = {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                        "http": {"endpoint": f"127.0.0.1:{http_port}"},
                    }
                }
            },
            "processors": {"batch": {"timeout": "100ms"}},
            "exporters": {"otlphttp": {"endpoint": f"http://127.0.0.1:{backend.server_address[1]}"}},
            "extensions": {"health_check": {"endpoint": f"127.0.0.1:{health_port}"}},
            "service": {
                "extensions": ["health_check"],
                # `detailed`: the batch bytes panel's histogram is shown at that level only, as in the Collector.
                "telemetry": {"metrics": {"address": f"127.0.0.1:{metrics_port}", "level": "detailed"}},
                "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlphttp"]}},
            },
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        log = tmp_path / "gateway.log"
        argv = [sys.executable, "-m", "gateway", "--config", str(path)]
        with gateway_process(argv, cwd=tmp_path, env=repo_env(), log=log) as proc:
            wait_for(lambda: http_status(f"http://127.0.0.1:{health_port}/") == 200, 30, "health 200", proc, log)
            request = urllib.request.Request(
                f"http://127.0.0.1:{http_port}/v1/traces",
                data=one_span_request(),
                headers={"Content-Type": "application/x-protobuf"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as resp:
                assert resp.status == 200
                resp.read()
            metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
            wait_for(
                lambda: sample_value(fetch(metrics_url), "otelcol_exporter_sent_spans_total") >= 1,
                30,
                "the span to reach the exporter",
                proc,
                log,
            )
            scraped = scrape_names(fetch(metrics_url))
            stop_gracefully(proc)
    finally:
        backend.shutdown()
        backend.server_close()
        thread.join(timeout=5)

    missing: dict[str, str] = {}
    for where, names in dashboard_queries(json.loads(DASHBOARD.read_text())):
        for name in names:
            if name not in scraped and base_name(name) not in scraped:
                missing.setdefault(name, where)
    assert not missing, f"dashboard metrics missing from /metrics: {missing}\n{read_log(log)}"
