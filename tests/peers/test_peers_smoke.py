"""The reference peers themselves work: otelcol-ref (OTLP in -> file exporter) receives what
hatchet-engine-sim (Go SDK) and kestra-sim (Java SDK) say they exported.

Each test skips with the reason and the build command when a peer is not built (.ci/peers.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers import (
    OTLP_TO_FILES_CONFIG,
    jaeger_has_trace,
    otelcol,
    read_otlp_json_lines,
    require_peer,
    run_hatchet_sim,
    run_kestra_sim,
    start_jaeger,
    trace_ids_in_file,
    wait_for,
)

pytestmark = pytest.mark.peers


def _resource_attrs(path: Path) -> list[dict[str, str]]:
    out = []
    for req in read_otlp_json_lines(path):
        for rs in req.get("resourceSpans", []):
            attrs = {a["key"]: a["value"].get("stringValue", "") for a in rs.get("resource", {}).get("attributes", [])}
            out.append(attrs)
    return out


def test_hatchet_sim_spans_reach_otelcol_ref() -> None:
    require_peer("otelcol-ref")
    require_peer("hatchet-engine-sim")
    with otelcol(OTLP_TO_FILES_CONFIG) as col:
        res = run_hatchet_sim(
            col.grpc_endpoint,
            insecure=True,
            spans=6,
            service_name="hatchet-engine",
            env={"K8S_POD_NAME": "engine-0", "K8S_POD_NAMESPACE": "hatchet"},
        )
        assert res.ok, res.describe()
        sampled = set(res.report["sampled_trace_ids"])
        assert len(sampled) == 3
        assert set(res.report["exported_trace_ids"]) == sampled
        traces = col.workdir / "traces.json"
        wait_for(lambda: sampled <= trace_ids_in_file(traces), what="hatchet spans in the file exporter output")
        attrs = _resource_attrs(traces)
        assert attrs
        assert attrs[0]["service.name"] == "hatchet-engine"
        assert attrs[0]["library.language"] == "go"
        assert attrs[0]["k8s.pod.name"] == "engine-0"
        assert attrs[0]["k8s.namespace.name"] == "hatchet"
        names = {
            span["name"]
            for req in read_otlp_json_lines(traces)
            for rs in req["resourceSpans"]
            for ss in rs["scopeSpans"]
            for span in ss["spans"]
        }
        assert names and all(n.startswith("hatchet.run/") for n in names)


def test_hatchet_sim_ratio_zero_samples_nothing() -> None:
    require_peer("hatchet-engine-sim")
    # nothing sampled => nothing exported, and that is success; the port is never dialled
    res = run_hatchet_sim("127.0.0.1:9", insecure=True, ratio=0.0, spans=4)
    assert res.ok, res.describe()
    assert res.report["sampled_trace_ids"] == []
    assert len(res.report["trace_ids"]) == 2


def test_hatchet_sim_reports_export_failure() -> None:
    require_peer("hatchet-engine-sim")
    res = run_hatchet_sim("127.0.0.1:9", insecure=True, spans=2, export_timeout="1s")
    assert res.returncode != 0
    assert res.report["ok"] is False
    assert res.report["exported_trace_ids"] == []
    assert res.report["errors"]


def test_kestra_sim_traces_metrics_logs_reach_otelcol_ref() -> None:
    require_peer("otelcol-ref")
    require_peer("kestra-sim")
    with otelcol(OTLP_TO_FILES_CONFIG) as col:
        res = run_kestra_sim(f"http://{col.grpc_endpoint}", col.http_url, traces=2)
        assert res.ok, res.describe()
        sent = set(res.report["trace_ids"])
        assert len(sent) == 2
        wait_for(lambda: sent <= trace_ids_in_file(col.workdir / "traces.json"), what="kestra spans")

        def metric_names() -> set[str]:
            return {
                m["name"]
                for req in read_otlp_json_lines(col.workdir / "metrics.json")
                for rm in req.get("resourceMetrics", [])
                for sm in rm.get("scopeMetrics", [])
                for m in sm.get("metrics", [])
            }

        def log_bodies() -> list[str]:
            return [
                lr.get("body", {}).get("stringValue", "")
                for req in read_otlp_json_lines(col.workdir / "logs.json")
                for rl in req.get("resourceLogs", [])
                for sl in rl.get("scopeLogs", [])
                for lr in sl.get("logRecords", [])
            ]

        wait_for(lambda: set(res.report["metric_names"]) <= metric_names(), what="kestra metrics")
        wait_for(lambda: set(res.report["log_bodies"]) <= set(log_bodies()), what="kestra logs")


def test_kestra_sim_reports_export_failure() -> None:
    require_peer("kestra-sim")
    res = run_kestra_sim("http://127.0.0.1:9", "http://127.0.0.1:9", traces=1, export_timeout="1s")
    assert res.returncode != 0
    assert res.report["ok"] is False
    assert res.report["errors"]


def _self_signed_ca_and_server_cert(workdir: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) for 127.0.0.1 / localhost, made with `cryptography`."""
    import datetime
    import ipaddress

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peers-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = workdir / "ca.pem", workdir / "server.pem", workdir / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


TLS_BEARER_CONFIG = """\
extensions:
  health_check:
    endpoint: "{{health_endpoint}}"
  bearertokenauth:
    scheme: Bearer
    token: peers-test-token
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "{{grpc_endpoint}}"
        tls:
          cert_file: "{{workdir}}/server.pem"
          key_file: "{{workdir}}/server.key"
        auth:
          authenticator: bearertokenauth
exporters:
  file/traces:
    path: "{{workdir}}/traces.json"
    flush_interval: 100ms
service:
  extensions: [health_check, bearertokenauth]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file/traces]
"""


def test_hatchet_sim_tls_and_authorization_header(tmp_path: Path) -> None:
    """Hatchet's default (TLS, SERVER_OTEL_INSECURE unset) with a self-signed CA and an
    Authorization header checked by the collector's bearertokenauth extension."""
    require_peer("otelcol-ref")
    require_peer("hatchet-engine-sim")
    ca, _, _ = _self_signed_ca_and_server_cert(tmp_path)
    with otelcol(TLS_BEARER_CONFIG, workdir=tmp_path) as col:
        good = run_hatchet_sim(col.grpc_endpoint, insecure=False, ca_file=ca, auth="Bearer peers-test-token", spans=2)
        assert good.ok, good.describe()
        wait_for(
            lambda: set(good.report["sampled_trace_ids"]) <= trace_ids_in_file(tmp_path / "traces.json"),
            what="TLS spans",
        )
        bad = run_hatchet_sim(
            col.grpc_endpoint, insecure=False, ca_file=ca, auth="Bearer wrong", spans=2, export_timeout="2s"
        )
        assert bad.returncode != 0, bad.describe()
        assert any("Unauthenticated" in e or "unauthenticated" in e.lower() for e in bad.report["errors"]), (
            bad.describe()
        )


def test_jaeger_v2_stores_hatchet_spans() -> None:
    """Jaeger v2 (seed 003's destination) receives OTLP gRPC and serves the traces back."""
    require_peer("jaeger")
    require_peer("hatchet-engine-sim")
    col = start_jaeger()
    try:
        res = run_hatchet_sim(col.grpc_endpoint, insecure=True, spans=4, service_name="hatchet-engine")
        assert res.ok, res.describe()
        wanted = list(res.report["sampled_trace_ids"])
        assert wanted
        wait_for(lambda: all(jaeger_has_trace(col, t) for t in wanted), what=f"traces {wanted} in Jaeger")
    finally:
        col.stop()
