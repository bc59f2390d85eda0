"""What the interop tests share beyond tests/peers.py (the peers helper's owner keeps that one):
generated TLS material, a gateway config built from parts, deterministic spans, reading what a
Collector's file exporter wrote, and marking cases whose gateway component is not registered yet."""

from __future__ import annotations

import datetime
import ipaddress
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gateway import registry
from pipelines import otlp, otlp_json
from tests.harness import RESPONSES, SERVICES, Ports

# ---------------------------------------------------------------- components not landed yet


def registered(kind: registry.Kind, type_name: str) -> bool:
    """True when the gateway's registry names the type and its module imports."""
    try:
        return registry.lookup(kind, type_name) is not None
    except Exception:
        return False


def needs(kind: registry.Kind, type_name: str) -> pytest.MarkDecorator:
    """xfail (strict) while the gateway component another engineer is writing is not registered."""
    return pytest.mark.xfail(
        not registered(kind, type_name), strict=True,
        reason=f"gateway {kind[:-1]} {type_name!r} is not registered in gateway/registry.py yet",
    )


# ---------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Certs:
    ca_file: Path
    cert_file: Path
    key_file: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()


def make_certs(directory: Path, hosts: Iterable[str] = ("localhost", "127.0.0.1")) -> Certs:
    """A fresh CA and a server certificate it signed for `hosts` (names and IPs), as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("interop test CA")).issuer_name(name("interop test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(name("gateway")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    out = Certs(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    out.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return out


# ---------------------------------------------------------------- gateway config


def gateway_config(
    ports: Ports,
    exporters: dict[str, Any],
    *,
    pipelines: dict[str, dict[str, Any]] | None = None,
    processors: dict[str, Any] | None = None,
    extensions: dict[str, Any] | None = None,
    receiver_tls: Certs | None = None,
    authenticator: str | None = None,
) -> str:
    """A gateway config: the otlp receiver on `ports` (optionally with TLS and an authenticator),
    health_check, self-metrics, and the given components. Default pipeline: traces through batch
    to every exporter."""
    protocol: dict[str, Any] = {}
    if receiver_tls is not None:
        protocol["tls"] = {"cert_file": str(receiver_tls.cert_file), "key_file": str(receiver_tls.key_file)}
    if authenticator is not None:
        protocol["auth"] = {"authenticator": authenticator}
    procs = {"batch": {"timeout": "50ms"}, **(processors or {})}
    exts = {"health_check": {"endpoint": f"127.0.0.1:{ports.health}"}, **(extensions or {})}
    doc = {
        "receivers": {"otlp": {"protocols": {
            "grpc": {"endpoint": f"127.0.0.1:{ports.grpc}", **protocol},
            "http": {"endpoint": f"127.0.0.1:{ports.http}", **protocol},
        }}},
        "processors": procs,
        "exporters": exporters,
        "extensions": exts,
        "service": {
            "extensions": list(exts),
            "pipelines": pipelines or {
                "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": list(exporters)},
            },
            "telemetry": {"metrics": {"address": f"127.0.0.1:{ports.metrics}"}},
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


# ---------------------------------------------------------------- spans


def make_traces(n_traces: int, spans_per_trace: int = 3, seed: int = 7,
                service: str = "interop") -> trace_service_pb2.ExportTraceServiceRequest:
    """A request of deterministic traces (random ids from `seed`), attributes of each value type."""
    rng = random.Random(seed)
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for key, value in (("service.name", service), ("k8s.namespace.name", "apps")):
        kv = rs.resource.attributes.add()
        kv.key = key
        kv.value.string_value = value
    ss = rs.scope_spans.add()
    ss.scope.name = "interop"
    ss.scope.version = "1.0"
    base = 1_700_000_000_000_000_000
    for t in range(n_traces):
        trace_id = rng.randbytes(16)
        parent = b""
        for s in range(spans_per_trace):
            span = ss.spans.add()
            span.trace_id = trace_id
            span.span_id = rng.randbytes(8)
            span.parent_span_id = parent
            parent = parent or span.span_id
            span.name = f"trace-{t}-span-{s}"
            span.kind = 2 if s == 0 else 1
            span.start_time_unix_nano = base + t * 1_000_000 + s
            span.end_time_unix_nano = span.start_time_unix_nano + 1000 + s
            span.status.code = 1
            for key, setter in (("i", "int_value"), ("ratio", "double_value"), ("ok", "bool_value"),
                                ("who", "string_value")):
                kv = span.attributes.add()
                kv.key = key
                value: Any = {"int_value": s, "double_value": s / 4, "bool_value": s % 2 == 0,
                              "string_value": f"w{t}"}[setter]
                setattr(kv.value, setter, value)
            event = span.events.add()
            event.name = "ev"
            event.time_unix_nano = span.start_time_unix_nano + 1
    return req


def spans_of(requests: Iterable[Any]) -> dict[bytes, tuple[Any, Any, Any]]:
    """span_id -> (resource, scope, span) over trace export requests; a span seen twice fails."""
    out: dict[bytes, tuple[Any, Any, Any]] = {}
    for req in requests:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    assert span.span_id not in out, f"span {span.span_id.hex()} arrived twice"
                    out[span.span_id] = (rs.resource, ss.scope, span)
    return out


def file_requests(path: Path, signal: str) -> list[Any]:
    """What a Collector file exporter wrote (OTLP/JSON, one request per line), as protobuf messages.
    A half-written last line is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            try:
                out.append(otlp_json.decode(signal, line))
            except Exception:
                continue
    return out


def send(endpoint: str, signal: str, request: Any, timeout: float = 10.0) -> None:
    """One OTLP/gRPC export of `request` to a plaintext `endpoint` (host:port)."""
    channel = grpc.insecure_channel(endpoint)
    try:
        channel.unary_unary(f"/{SERVICES[signal]}/Export", request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=RESPONSES[signal].FromString)(request, timeout=timeout)
    finally:
        channel.close()


def make_metrics(tag: str = "interop") -> Any:
    """A metrics request with a sum (3 points) and a gauge (1 point)."""
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    kv = rm.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", tag
    sm = rm.scope_metrics.add()
    sm.scope.name = "interop"
    total = sm.metrics.add()
    total.name, total.unit = "executions", "1"
    total.sum.aggregation_temporality = 2
    total.sum.is_monotonic = True
    for i in range(3):
        dp = total.sum.data_points.add()
        dp.as_int = i + 1
        dp.start_time_unix_nano, dp.time_unix_nano = 1_700_000_000_000_000_000, 1_700_000_001_000_000_000
        a = dp.attributes.add()
        a.key, a.value.string_value = "flow", f"f{i}"
    gauge = sm.metrics.add()
    gauge.name = "queue.depth"
    dp = gauge.gauge.data_points.add()
    dp.as_double, dp.time_unix_nano = 2.5, 1_700_000_001_000_000_000
    return req


def make_logs(n: int = 5, tag: str = "interop") -> Any:
    req = logs_service_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    kv = rl.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", tag
    sl = rl.scope_logs.add()
    sl.scope.name = "interop"
    for i in range(n):
        rec = sl.log_records.add()
        rec.time_unix_nano = rec.observed_time_unix_nano = 1_700_000_000_000_000_000 + i
        rec.severity_number, rec.severity_text = 13, "WARN"
        rec.body.string_value = f"log {i}"
        a = rec.attributes.add()
        a.key, a.value.int_value = "i", i
    return req


def items(signal: str, requests: Iterable[Any]) -> list[tuple[bytes, bytes, bytes]]:
    """Every span, data point or log record as (resource, scope, item) serialized, sorted: two
    deliveries are the same data exactly when these lists are equal, however they were regrouped."""
    out = []
    for req in requests:
        for res, scope, item in otlp.iter_items(signal, req):
            out.append((res.resource.SerializeToString(deterministic=True) + res.schema_url.encode(),
                        scope.scope.SerializeToString(deterministic=True) + scope.schema_url.encode(),
                        item.SerializeToString(deterministic=True)))
    return sorted(out)
