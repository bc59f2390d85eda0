"""Seed 004's sample Collector config runs unchanged, its endpoints pointed at test backends.

What is changed, and only that: the three `host:port` values are rewritten to 127.0.0.1 ports
(0.0.0.0:4318 -> the receiver's test port, tempo:4317 -> a plaintext gRPC backend,
api.honeycomb.io:443 -> a *TLS* gRPC backend whose test CA the gateway trusts through
GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, so the file's TLS-by-default stays in force). A second `--config`
file, merged after it as the Collector merges repeated `--config`, adds what a test needs and the
seed does not have: a health check to wait on and a free port for /metrics.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from gateway import registry
from gateway.config.load import load_text
from tests.e2e.support import StrictGrpcSink, http_request, make_certs, spans_request
from tests.harness import REPO, GatewayProcess, Ports, Sink, wait_until

SEED_YAML = Path(__file__).parent / "testdata" / "seed004.yaml"
SEED_SOURCE = REPO.parent / "shared" / "seeds" / "004_ecfcb562aa381c1a.txt"
N = 5


def seed_text() -> str:
    return "".join(line for line in SEED_YAML.read_text().splitlines(keepends=True) if not line.startswith("#"))


@pytest.mark.skipif(not SEED_SOURCE.exists(), reason="../shared/seeds is not beside the repo")
def test_testdata_is_the_seed_text_exactly() -> None:
    block = re.search(r"```yaml\n(.*?)```", SEED_SOURCE.read_text(), re.S)
    assert block is not None
    assert seed_text() == block.group(1)


def test_seed_config_loads_as_is() -> None:
    loaded = load_text(seed_text(), env={"HONEYCOMB_API_KEY": "hc-test-key"})
    cfg = loaded.config
    assert cfg.exporters["otlp/honeycomb"].headers == {"x-honeycomb-team": "hc-test-key"}
    assert cfg.exporters["otlp/honeycomb"].tls.insecure is False
    assert cfg.exporters["otlp/tempo"].tls.insecure is True
    assert cfg.exporters["logging"].level() == "detailed"
    assert cfg.service.pipelines["traces"].processors == ("batch", "attributes/add_deployment")
    assert loaded.warnings == ("exporters::logging: 'logging' is a deprecated name, use 'debug'",)


class _MergedConfigGateway(GatewayProcess):
    """The gateway started with the seed file and then an overlay file."""

    def __init__(self, seed: str, overlay: str, env: dict[str, str], ports: Ports) -> None:
        super().__init__(seed, env, ports)
        self.overlay_path = self.dir / "overlay.yaml"
        self.overlay_path.write_text(overlay)

    def start(self, wait: bool = True) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(self.config_path), "--config", str(self.overlay_path)],
            stdout=self.stdout_path.open("wb"), stderr=self.stderr_path.open("wb"), env=self.env, cwd=REPO,
        )
        if wait:
            self.wait_ready()
        return self


@pytest.mark.xfail(registry.lookup("processors", "attributes") is None, strict=True,
                   reason="the attributes processor is not registered yet (another engineer is writing it)")
def test_seed_config_runs_against_test_backends(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    tempo = StrictGrpcSink()
    honeycomb = StrictGrpcSink(tls=(certs.server_cert.read_bytes(), certs.server_key.read_bytes()))
    ports = Ports.free()
    text = seed_text()
    for host, port in (("0.0.0.0:4318", ports.http), ("tempo:4317", tempo.port),
                       ("api.honeycomb.io:443", honeycomb.port)):
        assert text.count(host) == 1
        text = text.replace(host, f"127.0.0.1:{port}")
    overlay = f"""
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
service:
  extensions: [health_check]
  telemetry:
    metrics: {{address: "127.0.0.1:{ports.metrics}"}}
"""
    env = {"HONEYCOMB_API_KEY": "hc-secret-123", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(certs.ca)}
    gw = _MergedConfigGateway(text, overlay, env, ports)
    try:
        gw.start()
        provider = TracerProvider(resource=Resource.create({"service.name": "orcheo-backend"}))
        provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://127.0.0.1:{ports.http}/v1/traces")))
        tracer = provider.get_tracer("orcheo")
        for i in range(N):
            with tracer.start_as_current_span(f"workflow-{i}", attributes={"i": i}):
                pass
        assert provider.force_flush(10_000)
        provider.shutdown()

        want = sorted(f"workflow-{i}" for i in range(N))
        for backend in (tempo, honeycomb):
            backend.wait_total(N)
            assert sorted(backend.names) == want
        assert all(md.get("x-honeycomb-team") == "hc-secret-123" for md in honeycomb.metadata)
        assert all("x-honeycomb-team" not in md for md in tempo.metadata)

        # The logging exporter prints at verbosity detailed, after attributes/add_deployment ran, through the
        # gateway's log (stderr), as the Collector's debug exporter does with use_internal_logger (the default).
        wait_until(lambda: gw.stderr().count("Span #") >= N, what="the logging exporter's output")
        out = gw.stderr()
        assert "ResourceSpans #0" in out
        assert "     -> service.name: Str(orcheo-backend)" in out
        assert out.count("     -> deployment.environment: Str(staging)") == N
        assert "'logging' is a deprecated name, use 'debug'" in gw.stderr()
        assert "hc-secret-123" not in gw.stderr() + out, "no secrets in logs"
        assert gw.stop() == 0
    finally:
        gw.kill()
        tempo.stop()
        honeycomb.stop()


@pytest.mark.xfail(registry.lookup("processors", "attributes") is None, strict=True,
                   reason="the attributes processor is not registered yet (another engineer is writing it)")
def test_attributes_processor_inserts_deployment_environment_at_the_backend(tmp_path: Path) -> None:
    """The span attribute reaches the backends, not only the debug output (checked on the wire)."""
    sink = Sink().start()
    ports = Ports.free()
    text = seed_text().replace("0.0.0.0:4318", f"127.0.0.1:{ports.http}").replace(
        "tempo:4317", f"127.0.0.1:{sink.grpc_port}").replace("api.honeycomb.io:443", f"127.0.0.1:{sink.grpc_port}")
    # Honeycomb's TLS is not what this test is about: that backend is dropped from the pipeline here.
    text = text.replace("[logging, otlp/tempo, otlp/honeycomb]", "[otlp/tempo]")
    overlay = f"""
extensions: {{health_check: {{endpoint: "127.0.0.1:{ports.health}"}}}}
service: {{extensions: [health_check], telemetry: {{metrics: {{address: "127.0.0.1:{ports.metrics}"}}}}}}
"""
    gw = _MergedConfigGateway(text, overlay, {"HONEYCOMB_API_KEY": "k"}, ports)
    try:
        gw.start()
        req = spans_request(3)
        req.resource_spans[0].scope_spans[0].spans[1].attributes.add(key="deployment.environment").value.string_value \
            = "prod"
        body = req.SerializeToString()
        assert http_request(ports.http, body, headers={"Content-Type": "application/x-protobuf"}).status == 200
        spans = sink.wait_spans(3)
        envs = {s.name: {kv.key: kv.value.string_value for kv in s.attributes}["deployment.environment"]
                for _, _, s in spans}
        # `insert` adds the key where it is missing and leaves an existing value alone.
        assert envs == {"span-0": "staging", "span-1": "prod", "span-2": "staging"}
        assert gw.stop() == 0
    finally:
        gw.kill()
        sink.stop()
