"""SIGTERM and SIGINT: health turns 503 as shutdown begins, pending batches are flushed to the
backend (slow on purpose, so the shutdown is observable), and the process exits 0."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.support import StrictGrpcSink, http_request, spans_request
from tests.harness import Ports, basic_config, running, wait_until


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown(sig: int, ports: Ports) -> None:
    backend = StrictGrpcSink(delay=1.5)
    try:
        exporters = f"""  otlp:
    endpoint: "127.0.0.1:{backend.port}"
    tls: {{insecure: true}}
"""
        # A timer that never fires in this test: only the shutdown can send the batch.
        cfg = basic_config(ports, exporters, "[otlp]", processors="batch: {timeout: 1h}")
        with running(cfg, ports) as gw:
            body = spans_request(30, name="pending").SerializeToString()
            assert http_request(ports.http, body, headers={"Content-Type": "application/x-protobuf"}).status == 200
            assert backend.total() == 0
            assert gw.health() == 200
            assert gw.proc is not None
            gw.proc.send_signal(sig)
            seen: list[int | None] = []

            def unhealthy() -> bool:
                seen.append(gw.health())
                return seen[-1] == 503

            wait_until(unhealthy, 5.0, "health 503 during shutdown")
            assert 200 not in seen[seen.index(503):]
            assert gw.proc.wait(30) == 0
            assert backend.total() == 30
            assert sorted(backend.names) == sorted(f"pending-{i}" for i in range(30))
            assert gw.health() is None, "nothing listens after exit"
            assert "Traceback" not in gw.stderr()
    finally:
        backend.stop()
