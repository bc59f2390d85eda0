"""`filter` and `transform` through a running gateway, with the real OpenTelemetry Python SDK as the
client: health-check spans dropped, attributes renamed and redacted, the resource tagged, a span
event dropped; the drops counted in `otelcol_processor_dropped_spans_total`, and a config with a
misspelt function refused with the statement's path and column."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.harness import Ports, Sink, basic_config, running

PROCESSORS = """batch: {timeout: 50ms}
  filter/health:
    error_mode: ignore
    traces:
      span:
        - 'IsMatch(name, "^GET /(healthz|readyz)$")'
      spanevent:
        - 'name == "debug"'
  transform/tidy:
    error_mode: ignore
    trace_statements:
      - 'set(resource.attributes["deployment.environment"], "staging")'
      - 'set(span.attributes["http.route"], span.attributes["route"]) where span.attributes["route"] != nil'
      - 'delete_key(span.attributes, "route")'
      - 'replace_pattern(span.attributes["db.statement"], "password=[^ ]+", "password=***")'"""


def _attrs(kvs: object) -> dict[str, object]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value") or "string_value")  # type: ignore[attr-defined]
            for kv in kvs}  # type: ignore[attr-defined]


def test_sdk_spans_filtered_and_transformed(ports: Ports, sink: Sink) -> None:
    exporters = f"""  otlp/sink:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}"""
    cfg = basic_config(ports, exporters, "[otlp/sink]", PROCESSORS, "[batch, filter/health, transform/tidy]")
    with running(cfg, ports) as gw:
        provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{ports.grpc}",
                                                                        insecure=True)))
        tracer = provider.get_tracer("shop")
        for i in range(30):
            name = ("GET /healthz", "GET /readyz", "GET /cart")[i % 3]
            with tracer.start_as_current_span(name, attributes={"route": f"/r{i}"}) as span:
                span.add_event("debug")
                span.add_event("kept")
                if i == 2:
                    span.set_attribute("db.statement", "login user=a password=hunter2 now")
        assert provider.force_flush(10_000)
        provider.shutdown()
        got = sink.wait_spans(10)
        assert sorted(span.name for _, _, span in got) == ["GET /cart"] * 10
        for resource, _, span in got:
            assert _attrs(resource.attributes)["deployment.environment"] == "staging"
            attrs = _attrs(span.attributes)
            assert "route" not in attrs and str(attrs["http.route"]).startswith("/r")
            assert [e.name for e in span.events] == ["kept"]
        statements = [_attrs(span.attributes).get("db.statement") for _, _, span in got]
        assert "login user=a password=*** now" in statements
        assert gw.metric("otelcol_processor_dropped_spans_total", processor="filter/health") == 20
        assert gw.stop() == 0


def test_validate_names_the_statement_and_column(tmp_path: Path, ports: Ports, sink: Sink) -> None:
    processors = """transform:
    trace_statements:
      - 'set(span.name, "x")'
      - 'replace_patern(span.name, "a", "b")'"""
    exporters = f"""  otlp/sink:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}"""
    path = tmp_path / "bad.yaml"
    path.write_text(basic_config(ports, exporters, "[otlp/sink]", processors, "[transform]"))
    done = subprocess.run([sys.executable, "-m", "gateway", "validate", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert 'processors::transform: trace_statements[1]: unknown function "replace_patern" at col 1' in \
        done.stdout + done.stderr
