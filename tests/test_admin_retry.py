"""An exporter's retry state (`gateway.retry_state`) in `/api/v1/stats` and in `gateway top` in a real tmux
terminal, while its backend answers UNAVAILABLE to spans sent by the OpenTelemetry SDK, and cleared once the
backend takes them again."""

from __future__ import annotations

import json
import shutil
import urllib.request
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests import top_screen
from tests.harness import Fault, Ports, Sink, basic_config, free_port, running, wait_until


def _retry(admin: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/v1/stats", timeout=5) as r:
        retry: dict[str, Any] = json.load(r)["components"]["exporter:otlp"]["retry"]
        return retry


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_retrying_exporter_shows_in_stats_and_top_and_clears(sink: Sink) -> None:
    ports, admin = Ports.free(), free_port()
    exporters = f"""  otlp:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 300ms, max_interval: 1s, max_elapsed_time: 120s}}
"""
    cfg = basic_config(ports, exporters, "[otlp]") + f'  admin: {{endpoint: "127.0.0.1:{admin}"}}\n'
    sink.fail_next(Fault(-1))  # UNAVAILABLE until cleared
    with running(cfg, ports) as gw, top_screen.top(admin, width=200) as screen:
        assert gw.ports is not None
        assert _retry(admin) == {"waiting": 0, "next_in": None, "failures": 0, "last_error": "",
                                 "last_error_at": 0.0}
        provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{gw.ports.grpc}",
                                                                         insecure=True)))
        with provider.get_tracer("t").start_as_current_span("GET /cart"):
            pass
        provider.shutdown()
        wait_until(lambda: _retry(admin)["failures"] >= 2, 20, "two failed attempts")
        retry = _retry(admin)
        assert retry["waiting"] == 1 and "UNAVAILABLE" in retry["last_error"], retry
        assert retry["next_in"] is not None and 0 <= retry["next_in"] <= 1.5

        def top_shows(text: str) -> bool:
            screen.read()
            return any(text in row for row in screen.rows("exporter:otlp"))

        wait_until(lambda: top_shows("retrying 1, next in"), 20, "the retry column in gateway top")
        assert "UNAVAILABLE" in screen.rows("exporter:otlp")[0] or "UNAVAILABLE" in screen.text, screen.text

        with sink.lock:
            sink.faults.clear()  # the backend is back
        sink.wait_spans(1)
        wait_until(lambda: _retry(admin)["waiting"] == 0 and _retry(admin)["failures"] == 0, 20,
                   "the retry state cleared")
        assert _retry(admin)["last_error"] == ""
        wait_until(lambda: not top_shows("retrying") and bool(screen.rows("exporter:otlp")), 20,
                   "gateway top without the retry")
