"""A persistent queue keeps what the batching needs (tenant, the batch processor's metadata_keys, here
`x-team`, listed in `persist_metadata_keys` as free of credentials) and never writes request headers such
as the bearer token to disk."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.support import http_request, spans_request
from tests.harness import Ports, free_port, running, wait_until

TOKEN = "s3cr3t-token-value-0123456789"


def test_queue_files_hold_no_request_headers(ports: Ports, tmp_path: Path) -> None:
    storage = tmp_path / "queue"
    storage.mkdir()
    down = free_port()  # nothing listens: everything stays in the queue
    cfg = f"""
receivers:
  otlp:
    protocols:
      http:
        endpoint: "127.0.0.1:{ports.http}"
        include_metadata: true
        auth: {{authenticator: bearertokenauth}}
processors:
  batch: {{timeout: 50ms, metadata_keys: [x-team]}}
exporters:
  otlp:
    endpoint: "127.0.0.1:{down}"
    tls: {{insecure: true}}
    sending_queue: {{storage: file_storage/q, persist_metadata_keys: [x-team]}}
    retry_on_failure: {{initial_interval: 10s}}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
  bearertokenauth: {{tokens: [{{token: "{TOKEN}", tenant: team-a}}]}}
  file_storage/q: {{directory: "{storage}"}}
service:
  extensions: [health_check, bearertokenauth, file_storage/q]
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp]}}
  telemetry: {{metrics: {{address: "127.0.0.1:{ports.metrics}"}}}}
"""
    with running(cfg, ports) as gw:
        answer = http_request(ports.http, spans_request(5).SerializeToString(), headers={
            "Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}",
            "X-Team": "blue", "X-Other": "private-value",
        })
        assert answer.status == 200
        wait_until(lambda: gw.metric("otelcol_exporter_queue_size", exporter="otlp") >= 1, 10, "the request queued")
        on_disk = b"".join(p.read_bytes() for p in storage.rglob("*") if p.is_file())
        assert b"team-a" in on_disk and b"blue" in on_disk, "tenant and batching metadata are kept"
        assert TOKEN.encode() not in on_disk
        assert b"private-value" not in on_disk
