"""The one TLS configuration (`gateway.transport.tls`): the Collector's meaning of `ca_file` (it replaces
the system roots unless `include_system_ca_certs_pool`; a server's is refused, as Go's TLS server never
reads it), Go cipher suite names, and a server certificate rotated on disk by a symlink swap (as
cert-manager does), served to new handshakes without a restart while an open connection goes on."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from gateway.component import Settings
from gateway.config.load import ConfigError, load_text
from gateway.exporters import otlp_grpc, otlp_http
from gateway.extensions import health
from gateway.telemetry import Telemetry
from gateway.transport.tls import TLSClientConfig, TLSServerConfig
from tests.e2e.support import Certs, make_certs
from tests.harness import free_port


def _roots(ctx: ssl.SSLContext) -> int:
    return int(ctx.cert_store_stats()["x509_ca"])


def test_ca_file_replaces_the_system_roots_in_both_exporters(certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", raising=False)
    system = _roots(ssl.create_default_context())
    only_ca = TLSClientConfig(ca_pem=certs.ca.read_text())
    with_system = TLSClientConfig(ca_file=str(certs.ca), include_system_ca_certs_pool=True)
    for make in (otlp_grpc.client_ssl_context, lambda tls: otlp_http.Config(tls=tls).tls.ssl_context()):
        assert _roots(make(only_ca)) == 1
        assert _roots(make(with_system)) == 1 + system
        assert make(TLSClientConfig()).verify_mode == ssl.CERT_REQUIRED


def test_cipher_suites_by_go_names() -> None:
    tls = TLSClientConfig(cipher_suites=("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),
                          max_version="1.2")
    assert tls.validate() == []
    names = {c["name"] for c in tls.ssl_context().get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names == {"ECDHE-ECDSA-AES128-GCM-SHA256"}
    bad = TLSServerConfig(cert_file="c", key_file="k", cipher_suites=("TLS_RSA_WITH_RC4_128_SHA",),
                          min_version="1.3", max_version="1.2")
    assert bad.validate() == ["invalid TLS configuration: min_version cannot be greater than max_version",
                              "invalid TLS cipher suite: 'TLS_RSA_WITH_RC4_128_SHA'"]


def _serial(der: bytes | None) -> int:
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _pem_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def _swap(link: Path, target: Path) -> None:
    """Point `link` at `target` in one rename, as cert-manager's projected volumes do."""
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(target)
    os.replace(tmp, link)


def test_rotated_server_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    first, second = make_certs(tmp_path / "a"), make_certs(tmp_path / "b")
    live = tmp_path / "live"
    _swap(live, first.dir)
    tls = TLSServerConfig(cert_file=str(live / first.server_cert.name), key_file=str(live / first.server_key.name),
                          reload_interval=1e-9)  # look at every handshake
    cfg = health.Config(endpoint=f"127.0.0.1:{free_port()}", tls=tls)
    ext = health.create(Settings("health_check", cfg, Telemetry(), None))  # type: ignore[arg-type]
    client_ctx = ssl.create_default_context(cafile=first.ca)
    client_ctx.load_verify_locations(second.ca)

    def connect() -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection("127.0.0.1", ext.port, context=client_ctx, timeout=10)
        conn.request("GET", "/")
        conn.getresponse().read()
        return conn

    def serial(conn: http.client.HTTPSConnection) -> int:
        assert isinstance(conn.sock, ssl.SSLSocket)
        return _serial(conn.sock.getpeercert(binary_form=True))

    async def body() -> None:
        await ext.start()
        ext.ready()
        try:
            old = await asyncio.to_thread(connect)
            assert serial(old) == _pem_serial(first.server_cert)
            _swap(live, second.dir)
            new = await asyncio.to_thread(connect)
            assert serial(new) == _pem_serial(second.server_cert)
            old.request("GET", "/")  # the connection made before the rotation goes on
            assert (await asyncio.to_thread(old.getresponse)).status == 200
            assert serial(old) == _pem_serial(first.server_cert)
            old.close()
            new.close()
        finally:
            await ext.shutdown()

    asyncio.run(asyncio.wait_for(body(), 30))


def test_a_clients_reload_interval_is_refused_and_a_servers_accepted() -> None:
    assert TLSClientConfig(reload_interval=0.0).validate() == []
    assert TLSClientConfig(reload_interval=30.0).validate() == [
        "reload_interval: not supported on a client by this gateway (a client's certificate and CA are read when "
        "the exporter starts; servers reload theirs)"]
    assert TLSServerConfig(cert_pem="c", key_pem="k", reload_interval=30.0).validate() == []


def test_ca_file_is_refused_on_a_server_and_trusted_by_a_client(certs: Certs) -> None:
    # configtls loads a server's ca_file into RootCAs, which Go's TLS server never reads: client
    # certificates are verified with client_ca_file only. Refused, so nobody believes it gives mTLS.
    keys = f"cert_file: {certs.server_cert}, key_file: {certs.server_key}"
    refused = f"""
receivers:
  otlp:
    protocols:
      grpc: {{tls: {{{keys}, ca_file: {certs.ca}}}}}
      http: {{tls: {{{keys}, include_system_ca_certs_pool: true}}}}
extensions: {{health_check: {{tls: {{{keys}, ca_pem: {json.dumps(certs.ca.read_text())}}}}}}}
exporters: {{otlp: {{endpoint: "127.0.0.1:4317"}}}}
service: {{extensions: [health_check], pipelines: {{traces: {{receivers: [otlp], exporters: [otlp]}}}}}}
"""
    with pytest.raises(ConfigError) as info:
        load_text(refused, env={})
    assert info.value.errors == [
        "receivers::otlp::protocols::grpc::tls: ca_file: not used by a server "
        "(verify client certificates with client_ca_file)",
        "receivers::otlp::protocols::http::tls: include_system_ca_certs_pool: not used by a server "
        "(verify client certificates with client_ca_file)",
        "extensions::health_check::tls: ca_pem: not used by a server (verify client certificates with client_ca_file)",
    ]
    # The same key on a client (the exporter) verifies the server with that CA alone; a handshake with
    # it is tests/exporters/test_otlp_grpc.py::test_tls_with_ca_file.
    accepted = f"""
receivers: {{otlp: {{protocols: {{grpc: {{tls: {{{keys}}}}}}}}}}}
exporters: {{otlp: {{endpoint: "127.0.0.1:4317", tls: {{ca_file: {certs.ca}}}}}}}
service: {{pipelines: {{traces: {{receivers: [otlp], exporters: [otlp]}}}}}}
"""
    exporter = load_text(accepted, env={}).config.exporters["otlp"]
    ctx = otlp_grpc.client_ssl_context(exporter.tls)
    assert (_roots(ctx), ctx.verify_mode) == (1, ssl.CERT_REQUIRED)


def test_rotated_certificate_on_the_grpc_port_keeps_open_connections(tmp_path: Path) -> None:
    """The otlp receiver's gRPC side with `reload_interval`: a handshake after the files change gets the
    new certificate; a connection made before goes on answering over HTTP/2."""
    from gateway.transport import h2
    from gateway.transport.grpc_server import H2GrpcServer

    first, second = make_certs(tmp_path / "a"), make_certs(tmp_path / "b")
    live = tmp_path / "live"
    _swap(live, first.dir)
    tls = TLSServerConfig(cert_file=str(live / first.server_cert.name), key_file=str(live / first.server_key.name),
                          reload_interval=1e-9)
    client_ctx = ssl.create_default_context(cafile=first.ca)
    client_ctx.load_verify_locations(second.ca)
    client_ctx.set_alpn_protocols(["h2"])

    def connect(port: int) -> ssl.SSLSocket:
        import socket

        sock = client_ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                      server_hostname="localhost")
        sock.sendall(h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0, b""))
        return sock

    def ping(sock: ssl.SSLSocket, data: bytes) -> bool:
        """Send a PING; True once its ACK comes back (frames before it are skipped)."""
        sock.sendall(h2.frame(h2.PING, 0, 0, data))
        buf = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            buf += chunk
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                kind, flags, payload = buf[3], buf[4], buf[9:9 + length]
                buf = buf[9 + length:]
                if kind == h2.PING and flags & h2.ACK and payload == data:
                    return True

    async def handler(message: bytes, metadata: list[tuple[str, str]]) -> bytes:
        return message

    async def body() -> None:
        server = H2GrpcServer({"/x": handler}, max_message=1 << 20, ssl_context=tls.ssl_context())
        port = await server.start("127.0.0.1", 0)
        try:
            old = await asyncio.to_thread(connect, port)
            assert await asyncio.to_thread(ping, old, b"before!!")
            assert _serial(old.getpeercert(binary_form=True)) == _pem_serial(first.server_cert)
            _swap(live, second.dir)
            new = await asyncio.to_thread(connect, port)
            assert await asyncio.to_thread(ping, new, b"newconn!")
            assert _serial(new.getpeercert(binary_form=True)) == _pem_serial(second.server_cert)
            assert await asyncio.to_thread(ping, old, b"after!!!")  # the old connection goes on
            assert _serial(old.getpeercert(binary_form=True)) == _pem_serial(first.server_cert)
            old.close()
            new.close()
        finally:
            await server.stop(grace=1.0)

    asyncio.run(asyncio.wait_for(body(), 30))
