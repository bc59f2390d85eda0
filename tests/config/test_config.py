"""Config loading: a valid file compared field by field with a fully written expected config, and
named invalid configs each with its exact messages (the Collector's testdata layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import registry
from gateway.config.load import ConfigError, load_file, load_text
from gateway.config.model import GatewayConfig, PipelineConfig, ServiceConfig
from gateway.config.telemetry import LogsTelemetry, MetricsTelemetry, TelemetryConfig
from gateway.exporters import debug, otlp_grpc, otlp_http
from gateway.exporters.helper import QueueConfig
from gateway.exporters.retry import RetryConfig
from gateway.extensions import health
from gateway.receivers import otlp_config
from gateway.transport.tls import TLSClientConfig, TLSServerConfig
from pipelines.processors import batch

TESTDATA = Path(__file__).parent / "testdata"
INVALID: dict[str, Any] = yaml.safe_load((TESTDATA / "invalid.yaml").read_text())


def expected_config() -> GatewayConfig:
    return GatewayConfig(
        receivers={
            "otlp": otlp_config.Config(protocols=otlp_config.Protocols(
                grpc=otlp_config.GrpcConfig(
                    endpoint="0.0.0.0:14317",
                    max_recv_msg_size_mib=16,
                    max_concurrent_streams=100,
                    include_metadata=True,
                    tls=TLSServerConfig(cert_file="/certs/server.crt", key_file="/certs/server.key",
                                        client_ca_file="/certs/ca.crt"),
                ),
                http=otlp_config.HttpConfig(
                    endpoint="0.0.0.0:14318",
                    traces_url_path="/otlp/v1/traces",
                    max_request_body_size=1048576,
                    response_headers={"x-served-by": "gateway"},
                ),
            )),
            # `grpc:` with no body enables gRPC with its defaults, as in the Collector.
            "otlp/internal": otlp_config.Config(protocols=otlp_config.Protocols(grpc=otlp_config.GrpcConfig())),
        },
        processors={
            "batch": batch.Config(),
            "batch/fast": batch.Config(send_batch_size=100, send_batch_max_size=200, timeout=1.5,
                                       send_batch_max_bytes=1000000, metadata_keys=("tenant",)),
        },
        exporters={
            "otlp/tempo": otlp_grpc.Config(
                endpoint="tempo:4317",
                tls=TLSClientConfig(insecure=True),
                compression="none",
                timeout=10.0,
                headers={"x-scope-orgid": "acme"},
                sending_queue=QueueConfig(num_consumers=4, queue_size=500),
                retry_on_failure=RetryConfig(initial_interval=1.0, max_interval=60.0, max_elapsed_time=0.0),
            ),
            "otlp_grpc/secure": otlp_grpc.Config(
                endpoint="https://backend.example.com:443",
                tls=TLSClientConfig(ca_file="/certs/ca.crt", cert_file="/certs/client.crt",
                                    key_file="/certs/client.key", server_name_override="backend.internal"),
            ),
            "otlphttp": otlp_http.Config(
                endpoint="http://collector:4318",
                compression="zstd",
                retry_on_failure=RetryConfig(enabled=False),
            ),
            "otlp_http/honeycomb": otlp_http.Config(
                traces_endpoint="https://api.honeycomb.io/v1/traces",
                headers={"x-honeycomb-team": "hc-key-123"},
                timeout=150.0,
                sending_queue=QueueConfig(enabled=False),
            ),
            "debug": debug.Config(verbosity="detailed"),
            "logging": debug.Config(loglevel="debug"),
        },
        extensions={"health_check": health.Config(endpoint="0.0.0.0:13133", path="/health")},
        service=ServiceConfig(
            extensions=("health_check",),
            pipelines={
                "traces": PipelineConfig(receivers=("otlp", "otlp/internal"), processors=("batch",),
                                         exporters=("otlp/tempo", "otlphttp", "debug")),
                "traces/vendor": PipelineConfig(receivers=("otlp",), processors=("batch/fast",),
                                                exporters=("otlp_grpc/secure", "otlp_http/honeycomb", "logging")),
            },
            telemetry=TelemetryConfig(metrics=MetricsTelemetry(address="0.0.0.0:18888"),
                                      logs=LogsTelemetry(level="debug")),
            shutdown_timeout=45.0,
        ),
    )


def test_valid_file_matches_the_expected_config_field_by_field() -> None:
    loaded = load_file(TESTDATA / "config.yaml", env={"HONEYCOMB_API_KEY": "hc-key-123"})
    want = expected_config()
    got = loaded.config
    for section in ("receivers", "processors", "exporters", "extensions"):
        assert list(getattr(got, section)) == list(getattr(want, section)), section
        for cid, cfg in getattr(want, section).items():
            assert getattr(got, section)[cid] == cfg, f"{section}::{cid}"
    assert got.service == want.service
    assert got == want
    assert loaded.warnings == ("exporters::logging: 'logging' is a deprecated name, use 'debug'",)


def test_defaults_are_the_collectors() -> None:
    text = """
receivers: {otlp: {protocols: {grpc: , http: }}}
processors: {batch: }
exporters: {otlp: {endpoint: "tempo:4317"}, otlphttp: {endpoint: "http://x:4318"}, debug: }
extensions: {health_check: }
service: {extensions: [health_check], pipelines: {traces: {receivers: [otlp], processors: [batch],
          exporters: [otlp, otlphttp, debug]}}}
"""
    cfg = load_text(text, env={}).config
    grpc = cfg.receivers["otlp"].protocols.grpc
    http = cfg.receivers["otlp"].protocols.http
    assert (grpc.endpoint, grpc.max_recv_msg_size_mib, grpc.tls) == ("localhost:4317", 4, None)
    assert (http.endpoint, http.traces_url_path, http.max_request_body_size) == (
        "localhost:4318", "/v1/traces", 20 * 1024 * 1024)
    b = cfg.processors["batch"]
    assert (b.send_batch_size, b.timeout, b.send_batch_max_size) == (8192, 0.2, 0)
    g = cfg.exporters["otlp"]
    assert (g.compression, g.timeout, g.tls.insecure) == ("gzip", 5.0, False)
    h = cfg.exporters["otlphttp"]
    assert (h.compression, h.timeout, h.url_for("traces")) == ("gzip", 30.0, "http://x:4318/v1/traces")
    assert cfg.extensions["health_check"] == health.Config(endpoint="localhost:13133", path="/")
    assert cfg.metrics_address() == "localhost:8888"


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_config_reports_every_error(name: str) -> None:
    case = INVALID[name]
    with pytest.raises(ConfigError) as info:
        load_text(yaml.safe_dump(case["config"], sort_keys=False), env={})
    # The registry grows; the list of known types in a message is filled in from it.
    known = {f"known_{kind}": ", ".join(registry.known(kind)) for kind in ("receivers", "exporters", "connectors")}
    assert info.value.errors == [line.format(**known) if "{known_" in line else line for line in case["errors"]]


def test_unreadable_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_file(tmp_path / "missing.yaml")
    missing = str(tmp_path / "missing.yaml")
    assert info.value.errors == [f"cannot read config file {missing!r}: No such file or directory"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("receivers: [\n")
    with pytest.raises(ConfigError) as info:
        load_file(bad)
    assert info.value.errors[0].startswith("cannot parse YAML:")


def test_a_refused_collector_key_set_to_its_default_asks_for_nothing_and_loads() -> None:
    text = """
receivers: {otlp: {protocols: {grpc: }}}
processors: {probabilistic_sampler: {sampling_percentage: 10, attribute_source: traceID, from_attribute: ""}}
exporters: {otlp: {endpoint: "x:4317", sending_queue: {storage: file_storage}}}
extensions: {file_storage: {directory: /tmp, recreate: false}}
service:
  extensions: [file_storage]
  pipelines: {traces: {receivers: [otlp], processors: [probabilistic_sampler], exporters: [otlp]}}
"""
    cfg = load_text(text, env={}).config
    assert cfg.extensions["file_storage"].recreate is False
    assert cfg.processors["probabilistic_sampler"].attribute_source == "traceID"
