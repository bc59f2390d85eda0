"""gateway -> Collector: each of the gateway's exporters that speaks OTLP (otlp, otlphttp in proto and
JSON, and the destination types jaeger, tempo, honeycomb pointed at it) delivers into the reference
Collector's OTLP receiver, which writes what it got to files; the files are compared item by item
(resource, scope and span/point/record, byte for byte once re-serialized) with what was sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import peers
from tests.harness import Ports, running
from tests.interop._support import file_requests, gateway_config, items, make_logs, make_metrics, make_traces, send

pytestmark = pytest.mark.peers


def _exporter(kind: str, col: peers.Otelcol) -> dict[str, Any]:
    grpc_ep, http_url = col.grpc_endpoint, col.http_url
    return {
        "otlp": {"otlp": {"endpoint": grpc_ep, "tls": {"insecure": True}}},
        "otlp-none": {"otlp": {"endpoint": grpc_ep, "compression": "none", "tls": {"insecure": True}}},
        "otlphttp": {"otlphttp": {"endpoint": http_url}},
        "otlphttp-json": {"otlphttp": {"endpoint": http_url, "encoding": "json", "compression": "none"}},
        "otlphttp-zstd": {"otlphttp": {"endpoint": http_url, "compression": "zstd"}},
        "jaeger-grpc": {"jaeger": {"endpoint": grpc_ep, "tls": {"insecure": True}}},
        "jaeger-http": {"jaeger": {"endpoint": col.ports.http_endpoint, "protocol": "http", "tls": {"insecure": True}}},
        "tempo": {"tempo": {"endpoint": grpc_ep, "tenant": "t1", "tls": {"insecure": True}}},
        "honeycomb-http": {"honeycomb": {"api_key": "k", "endpoint": http_url, "protocol": "http",
                                         "tls": {"insecure": True}}},
    }[kind]


@pytest.mark.parametrize("kind", ["otlp", "otlp-none", "otlphttp", "otlphttp-json", "otlphttp-zstd",
                                  "jaeger-grpc", "jaeger-http", "tempo", "honeycomb-http"])
def test_gateway_exporters_into_collector_traces(kind: str, ports: Ports) -> None:
    sent = make_traces(40, 3, seed=11)
    with peers.otelcol(peers.OTLP_TO_FILES_CONFIG) as col:
        exporters = _exporter(kind, col)
        with running(gateway_config(ports, exporters), ports) as gw:
            send(f"127.0.0.1:{ports.grpc}", "traces", sent)
            path = Path(col.workdir) / "traces.json"
            peers.wait_for(lambda: len(items("traces", file_requests(path, "traces"))) >= 120, 20,
                           f"120 spans in the Collector's file ({kind})")
            assert items("traces", file_requests(path, "traces")) == items("traces", [sent])
            (cid,) = exporters
            assert gw.metric("otelcol_exporter_sent_spans_total", exporter=cid) == 120


@pytest.mark.parametrize("kind", ["otlp", "otlphttp", "honeycomb-http"])
def test_gateway_exporters_into_collector_metrics_logs(kind: str, ports: Ports) -> None:
    metrics, logs = make_metrics(), make_logs(7)
    with peers.otelcol(peers.OTLP_TO_FILES_CONFIG) as col:
        exporters = _exporter(kind, col)
        pipelines = {s: {"receivers": ["otlp"], "processors": ["batch"], "exporters": list(exporters)}
                     for s in ("metrics", "logs")}
        with running(gateway_config(ports, exporters, pipelines=pipelines), ports):
            send(f"127.0.0.1:{ports.grpc}", "metrics", metrics)
            send(f"127.0.0.1:{ports.grpc}", "logs", logs)
            m_path, l_path = Path(col.workdir) / "metrics.json", Path(col.workdir) / "logs.json"
            peers.wait_for(lambda: len(items("metrics", file_requests(m_path, "metrics"))) >= 2
                           and len(items("logs", file_requests(l_path, "logs"))) >= 7, 20, "metrics and logs")
            assert items("metrics", file_requests(m_path, "metrics")) == items("metrics", [metrics])
            assert items("logs", file_requests(l_path, "logs")) == items("logs", [logs])
