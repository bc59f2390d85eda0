"""A backend's partial-success answer: logged, and its rejected count recorded in send_failed while the
rest count as sent (gRPC and HTTP exporters, through a running gateway)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts

from tests.e2e.support import http_request, spans_request
from tests.harness import Ports, running, wait_until

REJECT = 2


def _answer() -> bytes:
    resp = ts.ExportTraceServiceResponse()
    resp.partial_success.rejected_spans = REJECT
    resp.partial_success.error_message = "2 spans too old"
    return bytes(resp.SerializeToString())


@pytest.fixture
def partial_backends() -> Iterator[tuple[int, int]]:
    def export(request: bytes, context: Any) -> bytes:
        return _answer()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": grpc.unary_unary_rpc_method_handler(export)}
    ),))
    gport = server.add_insecure_port("127.0.0.1:0")
    server.start()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = _answer()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield gport, http.server_address[1]
    server.stop(None)
    http.shutdown()
    http.server_close()


def test_partial_success_counts_rejected_spans(ports: Ports, partial_backends: tuple[int, int]) -> None:
    gport, hport = partial_backends
    cfg = f"""
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:{ports.http}"}}
exporters:
  otlp: {{endpoint: "127.0.0.1:{gport}", tls: {{insecure: true}}}}
  otlphttp: {{endpoint: "http://127.0.0.1:{hport}"}}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
service:
  extensions: [health_check]
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp, otlphttp]}}
  telemetry: {{metrics: {{address: "127.0.0.1:{ports.metrics}"}}}}
"""
    with running(cfg, ports) as gw:
        answer = http_request(ports.http, spans_request(10).SerializeToString(),
                              headers={"Content-Type": "application/x-protobuf"})
        assert answer.status == 200
        for exporter in ("otlp", "otlphttp"):
            wait_until(lambda e=exporter: gw.metric("otelcol_exporter_send_failed_spans_total", exporter=e) == REJECT,
                       15, f"{exporter}'s rejected spans counted")
            assert gw.metric("otelcol_exporter_sent_spans_total", exporter=exporter) == 10 - REJECT
        assert gw.stop() == 0
        assert "2 spans too old" in gw.stderr()
