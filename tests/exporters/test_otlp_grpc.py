"""The `otlp` exporter against real gRPC backends: headers, gzip by default (bytes on the wire),
TLS on by default, `tls.insecure`, the https:// and http:// schemes, `ca_file`, timeout."""

from __future__ import annotations

import time

import pytest

from gateway.exporters import otlp_grpc
from pipelines.errors import PermanentError, RetryableError
from tests.e2e.support import Certs, CountingProxy, StrictGrpcSink
from tests.exporters.exporting import export


@pytest.fixture
def plain() -> StrictGrpcSink:
    sink = StrictGrpcSink()
    yield sink  # type: ignore[misc]
    sink.stop()


@pytest.fixture
def tls_sink(certs: Certs) -> StrictGrpcSink:
    sink = StrictGrpcSink(tls=(certs.server_cert.read_bytes(), certs.server_key.read_bytes()))
    yield sink  # type: ignore[misc]
    sink.stop()


def test_headers_and_tenant_header_reach_the_backend(plain: StrictGrpcSink) -> None:
    cfg = {"endpoint": f"127.0.0.1:{plain.port}", "tls": {"insecure": True},
           "headers": {"X-Scope-OrgID": "acme", "authorization": "Bearer t"}, "tenant_header": "X-Tenant"}
    error, sent, failed = export(otlp_grpc, cfg, 3, tenant="team-a")
    assert error is None
    assert (sent, failed) == (3, 0)
    assert plain.names == ["span-0", "span-1", "span-2"]
    md = plain.metadata[0]
    assert (md["x-scope-orgid"], md["authorization"], md["x-tenant"]) == ("acme", "Bearer t", "team-a")


@pytest.mark.parametrize(("compression", "compressed"), [(None, True), ("gzip", True), ("none", False)])
def test_gzip_is_the_default_compression(plain: StrictGrpcSink, compression: str | None, compressed: bool) -> None:
    proxy = CountingProxy(plain.port)
    try:
        cfg = {"endpoint": f"127.0.0.1:{proxy.port}", "tls": {"insecure": True}}
        if compression:
            cfg["compression"] = compression
        error, _, _ = export(otlp_grpc, cfg, 4, pad=256 * 1024)  # 1 MiB of one letter
        assert error is None
        assert plain.total() == 4
        assert (proxy.sent < 200 * 1024) is compressed, f"{proxy.sent} bytes on the wire"
    finally:
        proxy.stop()


def test_tls_is_on_by_default(plain: StrictGrpcSink) -> None:
    # A plaintext backend cannot complete the handshake: the export fails, retryably, and is counted.
    error, sent, failed = export(otlp_grpc, {"endpoint": f"127.0.0.1:{plain.port}", "timeout": "2s"})
    assert isinstance(error, RetryableError)
    assert (sent, failed) == (0, 3)
    assert plain.total() == 0


def test_tls_with_ca_file(tls_sink: StrictGrpcSink, certs: Certs) -> None:
    error, sent, _ = export(otlp_grpc, {"endpoint": f"127.0.0.1:{tls_sink.port}", "tls": {"ca_file": str(certs.ca)}})
    assert error is None
    assert sent == 3
    assert tls_sink.total() == 3


def test_tls_with_an_unknown_ca_fails(tls_sink: StrictGrpcSink, tmp_path: object) -> None:
    error, _, failed = export(otlp_grpc, {"endpoint": f"127.0.0.1:{tls_sink.port}", "timeout": "2s"})
    assert isinstance(error, RetryableError)
    assert failed == 3
    assert tls_sink.total() == 0


def test_https_scheme_means_tls_and_http_scheme_plaintext(tls_sink: StrictGrpcSink, plain: StrictGrpcSink,
                                                          certs: Certs) -> None:
    # https:// turns TLS on even when tls.insecure says otherwise, as the Collector's gRPC client does.
    cfg = {"endpoint": f"https://127.0.0.1:{tls_sink.port}", "tls": {"insecure": True, "ca_file": str(certs.ca)}}
    assert export(otlp_grpc, cfg)[0] is None
    assert tls_sink.total() == 3
    assert export(otlp_grpc, {"endpoint": f"http://127.0.0.1:{plain.port}"})[0] is None
    assert plain.total() == 3


def test_timeout_bounds_a_slow_backend() -> None:
    slow = StrictGrpcSink(delay=10)
    try:
        start = time.monotonic()
        error, _, failed = export(otlp_grpc, {"endpoint": f"127.0.0.1:{slow.port}", "tls": {"insecure": True},
                                              "timeout": "300ms"})
        assert time.monotonic() - start < 5
        assert isinstance(error, RetryableError)
        assert "DEADLINE_EXCEEDED" in str(error)
        assert failed == 3
    finally:
        slow.stop()


def test_backend_refusal_over_its_limit_is_permanent() -> None:
    small = StrictGrpcSink(max_mib=1)
    try:
        error, _, failed = export(otlp_grpc, {"endpoint": f"127.0.0.1:{small.port}", "tls": {"insecure": True},
                                              "compression": "none"}, 2, pad=1024 * 1024)
        assert isinstance(error, PermanentError)
        assert "RESOURCE_EXHAUSTED" in str(error)
        assert failed == 2
    finally:
        small.stop()
