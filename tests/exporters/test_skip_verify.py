"""`tls.insecure_skip_verify` on the gRPC exporter: a backend whose CA we were not given is reached,
and a backend that is down when the gateway starts is reached once it comes up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.component import Settings
from gateway.exporters.otlp_grpc import Config, GrpcPusher
from gateway.telemetry import Telemetry
from gateway.transport.tls import TLSClientConfig
from pipelines.batch import Batch
from tests.e2e.support import StrictGrpcSink, make_certs, spans_request
from tests.harness import free_port


def _pusher(port: int) -> GrpcPusher:
    cfg = Config(endpoint=f"127.0.0.1:{port}", tls=TLSClientConfig(insecure_skip_verify=True))
    return GrpcPusher(Settings("otlp/skip", cfg, Telemetry(), None))  # type: ignore[arg-type]


def test_unknown_ca_is_accepted_with_skip_verify(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    sink = StrictGrpcSink(tls=(certs.server_cert.read_bytes(), certs.server_key.read_bytes()))

    async def run() -> None:
        pusher = _pusher(sink.port)
        await pusher.start()
        await pusher.push(Batch("traces", spans_request(3).SerializeToString(), 3))
        await pusher.shutdown()

    try:
        asyncio.run(run())
        sink.wait_total(3)
    finally:
        sink.stop()


def test_backend_down_at_start_is_reached_later(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    port = free_port()

    async def start_then_push() -> None:
        pusher = _pusher(port)
        await pusher.start()  # nothing listens yet: start must not fail
        sink = StrictGrpcSink(tls=(certs.server_cert.read_bytes(), certs.server_key.read_bytes()), port=port)
        try:
            await pusher.push(Batch("traces", spans_request(2).SerializeToString(), 2))
            sink.wait_total(2)
        finally:
            await pusher.shutdown()
            sink.stop()

    asyncio.run(start_then_push())
