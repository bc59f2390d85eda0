"""A receiver feeding two pipelines: a processor that changes spans in one pipeline never changes what
the other pipeline sends, and an exporter shared by two pipelines gets each pipeline's batch once."""

from __future__ import annotations

import json
import urllib.request

from tests.harness import REPO, Ports, Sink, running


def _post_example(port: int) -> None:
    body = (REPO / "examples" / "trace.json").read_bytes()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {}


def test_pipelines_do_not_see_each_others_changes(ports: Ports) -> None:
    changed, plain = Sink().start(), Sink().start()
    try:
        cfg = f"""
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:{ports.http}"}}
processors:
  attributes/tag:
    actions: [{{key: tagged, value: "yes", action: insert}}, {{key: http.method, action: delete}}]
exporters:
  otlp/changed: {{endpoint: "127.0.0.1:{changed.grpc_port}", tls: {{insecure: true}}}}
  otlp/plain: {{endpoint: "127.0.0.1:{plain.grpc_port}", tls: {{insecure: true}}}}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
service:
  extensions: [health_check]
  pipelines:
    traces/changed: {{receivers: [otlp], processors: [attributes/tag], exporters: [otlp/changed, otlp/plain]}}
    traces/plain: {{receivers: [otlp], exporters: [otlp/plain]}}
  telemetry: {{metrics: {{address: "127.0.0.1:{ports.metrics}"}}}}
"""
        with running(cfg, ports) as gw:
            _post_example(ports.http)
            got_changed = changed.wait_spans(2)
            got_plain = plain.wait_spans(4)  # 2 from each pipeline: the shared exporter is fed once per pipeline
            for _, _, span in got_changed:
                keys = {kv.key for kv in span.attributes}
                assert "tagged" in keys and "http.method" not in keys
            tagged = [s for _, _, s in got_plain if any(kv.key == "tagged" for kv in s.attributes)]
            untouched = [s for _, _, s in got_plain if not any(kv.key == "tagged" for kv in s.attributes)]
            assert len(tagged) == 2 and len(untouched) == 2
            assert any(kv.key == "http.method" for s in untouched for kv in s.attributes)
            assert gw.metric("otelcol_gateway_pipeline_incoming_items_total", pipeline="traces/plain") == 2
            assert gw.metric("otelcol_gateway_pipeline_incoming_items_total", pipeline="traces/changed") == 2
            assert gw.metric("otelcol_exporter_sent_spans_total", exporter="otlp/plain") == 4
    finally:
        changed.stop()
        plain.stop()
