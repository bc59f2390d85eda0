"""Helpers shared by the end-to-end tests of receivers, exporters, TLS and metrics: OTLP requests
built by hand, raw gRPC/HTTP clients that show exact status codes, generated certificates, and a
gRPC backend with the default 4 MiB receive limit."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import ipaddress
import socket
import ssl
import threading
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def spans_request(n: int, name: str = "span", service: str = "svc", attr_bytes: int = 0,
                  trace_id: bytes | None = None, span_id: bytes | None = None) -> Any:
    """One resource, one scope, `n` spans named `{name}-{i}`; `attr_bytes` pads each span."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value=service))
    ss = rs.scope_spans.add()
    ss.scope.name = "tests"
    for i in range(n):
        span = ss.spans.add(
            trace_id=trace_id if trace_id is not None else (i + 1).to_bytes(16, "big"),
            span_id=span_id if span_id is not None else (i + 1).to_bytes(8, "big"),
            name=f"{name}-{i}",
            kind=trace_pb2.Span.SPAN_KIND_SERVER,
            start_time_unix_nano=1_700_000_000_000_000_000 + i,
            end_time_unix_nano=1_700_000_000_500_000_000 + i,
        )
        span.attributes.add(key="i", value=common_pb2.AnyValue(int_value=i))
        if attr_bytes:
            span.attributes.add(key="pad", value=common_pb2.AnyValue(string_value="x" * attr_bytes))
    return req


def grpc_export(port: int, body: bytes, *, credentials: grpc.ChannelCredentials | None = None,
                metadata: tuple[tuple[str, str], ...] = (), timeout: float = 10.0,
                options: tuple[tuple[str, Any], ...] = ()) -> tuple[grpc.StatusCode, str]:
    """Send raw bytes as a trace Export; return the status code and details."""
    target = f"127.0.0.1:{port}"
    opts = [("grpc.max_send_message_length", -1), *options]
    with (grpc.secure_channel(target, credentials, opts) if credentials else grpc.insecure_channel(target, opts)) \
            as channel:
        call = channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
        try:
            call(body, timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


@dataclass
class HttpAnswer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


def http_request(port: int, body: bytes = b"", *, method: str = "POST", path: str = "/v1/traces",
                 headers: dict[str, str] | None = None, https: Any = None) -> HttpAnswer:
    conn: http.client.HTTPConnection = (
        http.client.HTTPSConnection("127.0.0.1", port, context=https, timeout=10) if https is not None
        else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return HttpAnswer(resp.status, resp.headers.get_content_type(), data,
                          {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()


# ---------------------------------------------------------------- certificates


@dataclass
class Certs:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files."""

    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def read(self, path: Path) -> bytes:
        return path.read_bytes()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certs(directory: Path, ca_name: str = "test-ca") -> Certs:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(_name(ca_name)).issuer_name(_name(ca_name))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, server: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    directory.mkdir(parents=True, exist_ok=True)
    files = {"ca": ca_cert.public_bytes(serialization.Encoding.PEM)}
    files["server_cert"], files["server_key"] = leaf("127.0.0.1", True)
    files["client_cert"], files["client_key"] = leaf("test-client", False)
    paths = {}
    for name, data in files.items():
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(data)
    return Certs(directory, **paths)


# ---------------------------------------------------------------- a strict gRPC backend


class StrictGrpcSink:
    """A trace backend with gRPC's default 4 MiB receive limit (or `max_mib`), an optional delay per
    request and optional TLS; it records the span count and size of every request it accepts. Codes put
    in `failures` answer the next calls, one each, instead (a busy or failing backend)."""

    def __init__(self, max_mib: int = 4, delay: float = 0.0, tls: tuple[bytes, bytes] | None = None,
                 port: int = 0, host: str = "127.0.0.1") -> None:
        self.sizes: list[int] = []
        self.span_counts: list[int] = []
        self.names: list[str] = []
        self.metadata: list[dict[str, str]] = []
        self.failures: list[grpc.StatusCode] = []
        self._cond = threading.Condition()
        self._delay = delay
        self._release = threading.Event()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                   options=[("grpc.max_receive_message_length", max_mib * 1024 * 1024)])

        def export(request: bytes, context: grpc.ServicerContext) -> bytes:
            if self._delay:
                self._release.wait(self._delay)
            with self._cond:
                failure = self.failures.pop(0) if self.failures else None
            if failure is not None:
                context.abort(failure, "failing as the test asked")
            msg = trace_service_pb2.ExportTraceServiceRequest.FromString(request)
            names = [s.name for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]
            with self._cond:
                self.sizes.append(len(request))
                self.span_counts.append(len(names))
                self.names.extend(names)
                self.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
                self._cond.notify_all()
            return b""

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(export)},
        )
        self._server.add_generic_rpc_handlers((handler,))
        if tls is not None:
            self.port = self._server.add_secure_port(f"{host}:{port}",
                                                     grpc.ssl_server_credentials([(tls[1], tls[0])]))
        else:
            self.port = self._server.add_insecure_port(f"{host}:{port}")
        self._server.start()

    def total(self) -> int:
        with self._cond:
            return sum(self.span_counts)

    def wait_total(self, n: int, timeout: float = 30.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: sum(self.span_counts) >= n, timeout):
                raise TimeoutError(f"backend has {sum(self.span_counts)} spans, want {n}")

    def stop(self) -> None:
        self._release.set()
        self._server.stop(grace=None)


# ---------------------------------------------------------------- an HTTP(S) backend and a byte-counting proxy


@dataclass
class HttpHit:
    path: str
    headers: dict[str, str]
    body: bytes  # as received, still compressed


class RecordingHttpSink:
    """An OTLP/HTTP backend, plain or TLS (`ssl_context`), recording every request as received."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.hits: list[HttpHit] = []
        self._cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink._cond:
                    sink.hits.append(HttpHit(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    sink._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def wait_hits(self, n: int, timeout: float = 15.0) -> list[HttpHit]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.hits) >= n, timeout):
                raise TimeoutError(f"backend has {len(self.hits)} requests, want {n}")
            return list(self.hits)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class CountingProxy:
    """A TCP proxy to `target_port` that counts the bytes clients send through it."""

    def __init__(self, target_port: int) -> None:
        self.sent = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._target = target_port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(65536):
                if count:
                    with self._lock:
                        self.sent += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._listener.close()
