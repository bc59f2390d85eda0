"""TLS with certificates the test generates: the receiver's server TLS and mTLS on both protocols,
and the gRPC and HTTP exporters sending to TLS backends that only the configured CA vouches for."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.support import (
    Certs,
    RecordingHttpSink,
    StrictGrpcSink,
    grpc_export,
    http_request,
    make_certs,
    spans_request,
)
from tests.harness import GatewayProcess, Ports, wait_until

BODY = spans_request(2, name="tls").SerializeToString()
PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(Path(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="module")
def backends(certs: Certs) -> Iterator[tuple[StrictGrpcSink, RecordingHttpSink]]:
    grpc_sink = StrictGrpcSink(tls=(certs.server_cert.read_bytes(), certs.server_key.read_bytes()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    http_sink = RecordingHttpSink(ctx)
    yield grpc_sink, http_sink
    grpc_sink.stop()
    http_sink.stop()


def _config(ports: Ports, certs: Certs, backends: tuple[StrictGrpcSink, RecordingHttpSink], mtls: bool) -> str:
    client_ca = f", client_ca_file: {certs.ca}" if mtls else ""
    tls = f"{{cert_file: {certs.server_cert}, key_file: {certs.server_key}{client_ca}}}"
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports.grpc}", tls: {tls}}}
      http: {{endpoint: "127.0.0.1:{ports.http}", tls: {tls}}}
exporters:
  otlp: {{endpoint: "127.0.0.1:{backends[0].port}", tls: {{ca_file: {certs.ca}}}}}
  otlphttp: {{endpoint: "https://127.0.0.1:{backends[1].port}", tls: {{ca_file: {certs.ca}}}}}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
service:
  extensions: [health_check]
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp, otlphttp]}}
  telemetry:
    metrics: {{address: "127.0.0.1:{ports.metrics}"}}
"""


def _client_ctx(certs: Certs, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if with_cert:
        ctx.load_cert_chain(certs.client_cert, certs.client_key)
    return ctx


def _grpc_creds(certs: Certs, with_cert: bool) -> grpc.ChannelCredentials:
    if with_cert:
        return grpc.ssl_channel_credentials(certs.ca.read_bytes(), certs.client_key.read_bytes(),
                                            certs.client_cert.read_bytes())
    return grpc.ssl_channel_credentials(certs.ca.read_bytes())


@pytest.mark.parametrize("mtls", [False, True], ids=["tls", "mtls"])
def test_tls_receiver_and_exporters(mtls: bool, certs: Certs,
                                    backends: tuple[StrictGrpcSink, RecordingHttpSink]) -> None:
    grpc_sink, http_sink = backends
    ports = Ports.free()
    gw = GatewayProcess(_config(ports, certs, backends, mtls), ports=ports).start()
    try:
        before_grpc, before_http = grpc_sink.total(), len(http_sink.hits)
        # Good clients: TLS that trusts our CA (and presents a client certificate for mTLS).
        assert grpc_export(ports.grpc, BODY, credentials=_grpc_creds(certs, True))[0] == grpc.StatusCode.OK
        answer = http_request(ports.http, BODY, headers=PROTOBUF, https=_client_ctx(certs, True))
        assert answer.status == 200
        grpc_sink.wait_total(before_grpc + 4)
        http_sink.wait_hits(before_http + 2)

        # Plaintext to a TLS port is refused on both protocols.
        code, _ = grpc_export(ports.grpc, BODY, timeout=3)
        assert code == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(Exception):  # noqa: B017 - the server drops a plaintext request: any error
            http_request(ports.http, BODY, headers=PROTOBUF)

        # Without a client certificate: accepted with server TLS, refused with mTLS.
        code, _ = grpc_export(ports.grpc, BODY, credentials=_grpc_creds(certs, False), timeout=3)
        if mtls:
            assert code == grpc.StatusCode.UNAVAILABLE
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                http_request(ports.http, BODY, headers=PROTOBUF, https=_client_ctx(certs, False))
        else:
            assert code == grpc.StatusCode.OK
            assert http_request(ports.http, BODY, headers=PROTOBUF, https=_client_ctx(certs, False)).status == 200
        expected = 4 if mtls else 8
        grpc_sink.wait_total(before_grpc + expected)
        for exporter in ("otlp", "otlphttp"):
            wait_until(lambda e=exporter: gw.metric("otelcol_exporter_sent_spans_total", exporter=e) == expected,
                       what=f"{expected} spans sent by {exporter}")
        assert gw.metric("otelcol_exporter_send_failed_spans_total") == 0
        assert gw.health() == 200
        assert gw.stop() == 0
    finally:
        gw.kill()
