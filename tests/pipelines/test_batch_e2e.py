"""A downstream with gRPC's default 4 MiB receive limit gets everything through the gateway's batch
processor at its defaults, where the Collector's 8192-span batches of ~1 KiB spans (8 MiB) fail."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.e2e.support import StrictGrpcSink, http_request, spans_request
from tests.harness import Ports, basic_config, running

MIB = 1024 * 1024


def test_downstream_with_4_mib_limit_receives_everything(ports: Ports) -> None:
    backend = StrictGrpcSink(max_mib=4)
    try:
        exporters = f"""  otlp:
    endpoint: "127.0.0.1:{backend.port}"
    tls: {{insecure: true}}
"""
        cfg = basic_config(ports, exporters, "[otlp]", processors="batch: {timeout: 2s}")
        with running(cfg, ports) as gw:
            bodies = [spans_request(500, name=f"r{r}", attr_bytes=1000).SerializeToString() for r in range(24)]

            def post(body: bytes) -> int:
                return http_request(ports.http, body, headers={"Content-Type": "application/x-protobuf"}).status

            with ThreadPoolExecutor(4) as pool:
                assert set(pool.map(post, bodies)) == {200}
            backend.wait_total(12_000)
            assert sorted(backend.names) == sorted(f"r{r}-{i}" for r in range(24) for i in range(500))
            assert max(backend.sizes) <= 4 * MIB
            assert gw.metric("otelcol_exporter_send_failed_spans_total") == 0
            assert gw.stop() == 0
    finally:
        backend.stop()
