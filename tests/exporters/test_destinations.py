"""The destination exporters `honeycomb`, `tempo` and `jaeger`: their config (defaults, the plain
OTLP config each stands for, every invalid case with its exact message) and what reaches a backend
(headers, tenant, both protocols), through a real gateway process and through the exporter itself."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from gateway.component import Settings
from gateway.config.load import ConfigError, load_text
from gateway.exporters import honeycomb, jaeger, otlp_grpc, otlp_http, tempo
from gateway.exporters.destination import with_default_port
from gateway.telemetry import Telemetry
from pipelines.batch import Batch, RequestContext
from tests.e2e.support import RecordingHttpSink
from tests.harness import Ports, Sink, basic_config, running
from tests.processors.build import log_request, metric_request

INVALID: dict[str, Any] = yaml.safe_load((Path(__file__).parent / "testdata" / "destinations_invalid.yaml").read_text())

ENV_KEY = "hcxik_01jabcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu"  # environment ingest key


def _config(exporters: dict[str, Any], pipelines: dict[str, Any] | None = None) -> str:
    ids = list(exporters)
    doc = {
        "receivers": {"otlp": {"protocols": {"grpc": None}}},
        "exporters": exporters,
        "service": {"pipelines": pipelines or {"traces": {"receivers": ["otlp"], "exporters": ids}}},
    }
    return yaml.safe_dump(doc)


def _load(exporters: dict[str, Any]) -> dict[str, Any]:
    return dict(load_text(_config(exporters)).config.exporters)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_destination_configs_name_the_path(case: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(_config(INVALID[case]["exporter"]))
    assert info.value.errors == INVALID[case]["errors"]


def test_classic_key_detection() -> None:
    assert honeycomb.is_classic_key("0123456789abcdef0123456789abcdef")
    assert honeycomb.is_classic_key("hcbic_" + "a1" * 29)
    assert not honeycomb.is_classic_key(ENV_KEY)  # environment ingest key
    assert not honeycomb.is_classic_key("hcxlk_" + "a" * 26)  # configuration key
    assert not honeycomb.is_classic_key("0123456789ABCDEF0123456789ABCDEF")  # not lower-case hex
    assert not honeycomb.is_classic_key("hcaic_" + "a" * 57)  # one short
    assert not honeycomb.is_classic_key("")


def test_classic_key_with_dataset_and_environment_key_without_are_valid() -> None:
    cfgs = _load({
        "honeycomb/classic": {"api_key": "0123456789abcdef0123456789abcdef", "dataset": "svc"},
        "honeycomb/env": {"api_key": ENV_KEY},
    })
    assert cfgs["honeycomb/env"].otlp().headers == {"x-honeycomb-team": ENV_KEY}
    assert cfgs["honeycomb/classic"].otlp().headers == {
        "x-honeycomb-team": "0123456789abcdef0123456789abcdef", "x-honeycomb-dataset": "svc"}


def test_honeycomb_endpoints_by_region_and_protocol() -> None:
    cfgs = _load({
        "honeycomb/us": {"api_key": "k"},
        "honeycomb/eu": {"api_key": "k", "region": "eu"},
        "honeycomb/us-http": {"api_key": "k", "protocol": "http"},
        "honeycomb/eu-http": {"api_key": "k", "region": "eu", "protocol": "http"},
        "honeycomb/refinery": {"api_key": "k", "endpoint": "refinery.internal:4317", "tls": {"insecure": True}},
    })
    got = {cid: cfg.otlp() for cid, cfg in cfgs.items()}
    assert isinstance(got["honeycomb/us"], otlp_grpc.Config)
    assert got["honeycomb/us"].endpoint == "api.honeycomb.io:443"
    assert not got["honeycomb/us"].tls.insecure
    assert got["honeycomb/eu"].endpoint == "api.eu1.honeycomb.io:443"
    assert isinstance(got["honeycomb/us-http"], otlp_http.Config)
    assert got["honeycomb/us-http"].url_for("traces") == "https://api.honeycomb.io/v1/traces"
    assert got["honeycomb/eu-http"].url_for("metrics") == "https://api.eu1.honeycomb.io/v1/metrics"
    assert got["honeycomb/refinery"].endpoint == "refinery.internal:4317"


def test_destination_keeps_every_otlp_option() -> None:
    block = {
        "api_key": "k", "protocol": "http", "compression": "zstd", "timeout": "7s",
        "headers": {"x-extra": "1"}, "encoding": "json",
        "retry_on_failure": {"initial_interval": "1s", "max_elapsed_time": "1m"},
        "sending_queue": {"queue_size": 50, "num_consumers": 2},
        "tls": {"min_version": "1.3"},
    }
    cfg = _load({"honeycomb": block})["honeycomb"].otlp()
    assert isinstance(cfg, otlp_http.Config)
    assert (cfg.compression, cfg.timeout, cfg.encoding) == ("zstd", 7.0, "json")
    assert cfg.headers == {"x-extra": "1", "x-honeycomb-team": "k"}
    assert (cfg.retry_on_failure.initial_interval, cfg.retry_on_failure.max_elapsed_time) == (1.0, 60.0)
    assert (cfg.sending_queue.queue_size, cfg.sending_queue.num_consumers) == (50, 2)
    assert cfg.tls.min_version == "1.3"


def test_tempo_tenant_fixed_or_from_auth() -> None:
    cfgs = _load({
        "tempo/fixed": {"endpoint": "tempo:4317", "tenant": "team-a", "tls": {"insecure": True}},
        "tempo/auth": {"endpoint": "tempo", "tls": {"insecure": True}},
        "tempo/http": {"endpoint": "tempo", "protocol": "http", "tls": {"insecure": True}},
        "tempo/https": {"endpoint": "https://tempo.example.com", "protocol": "http"},
    })
    fixed = cfgs["tempo/fixed"].otlp()
    assert fixed.headers == {"X-Scope-OrgID": "team-a"} and fixed.tenant_header == ""
    auth = cfgs["tempo/auth"].otlp()
    assert auth.headers == {} and auth.tenant_header == "X-Scope-OrgID"
    assert auth.endpoint == "tempo:4317"
    assert cfgs["tempo/http"].otlp().url_for("traces") == "http://tempo:4318/v1/traces"
    assert cfgs["tempo/https"].otlp().url_for("traces") == "https://tempo.example.com/v1/traces"


def test_default_ports() -> None:
    assert with_default_port("jaeger", "grpc", True, 4317, 4318) == "jaeger:4317"
    assert with_default_port("jaeger:14317", "grpc", False, 4317, 4318) == "jaeger:14317"
    assert with_default_port("jaeger", "http", False, 4317, 4318) == "https://jaeger:4318"
    assert with_default_port("jaeger", "http", True, 4317, 4318) == "http://jaeger:4318"
    assert with_default_port("[::1]", "grpc", True, 4317, 4318) == "[::1]:4317"
    assert with_default_port("[::1]:9", "grpc", True, 4317, 4318) == "[::1]:9"
    assert with_default_port("http://jaeger", "http", False, 4317, 4318) == "http://jaeger"


def test_tempo_and_jaeger_are_traces_only() -> None:
    exporters = {"tempo": {"endpoint": "tempo:4317"}, "jaeger": {"endpoint": "jaeger:4317"}}
    pipelines = {
        "traces": {"receivers": ["otlp"], "exporters": ["tempo", "jaeger"]},
        "metrics": {"receivers": ["otlp"], "exporters": ["tempo"]},
        "logs": {"receivers": ["otlp"], "exporters": ["jaeger"]},
    }
    with pytest.raises(ConfigError) as info:
        load_text(_config(exporters, pipelines))
    assert sorted(info.value.errors) == [
        "service::pipelines::logs: exporter 'jaeger' does not support logs",
        "service::pipelines::metrics: exporter 'tempo' does not support metrics",
    ]


# ---------------------------------------------------------------- what reaches a backend


class _NoHost:
    def extension(self, component_id: str) -> Any:
        raise KeyError(component_id)


def _batch(tenant: str | None) -> Batch:
    req = trace_service_pb2.ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.name = "s"
    span.trace_id = b"\x01" * 16
    span.span_id = b"\x02" * 8
    return Batch("traces", req.SerializeToString(), 1, RequestContext(tenant=tenant))


async def _push(module: Any, cid: str, block: dict[str, Any], batches: list[Batch]) -> None:
    cfg = _load({cid: block})[cid]
    exporter = module.FACTORY.create(Settings(cid, cfg, Telemetry(), _NoHost()))
    await exporter.start()
    try:
        for b in batches:
            await exporter.consume(b)
    finally:
        await exporter.shutdown()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_tempo_sends_fixed_tenant_or_the_batch_tenant(protocol: str, sink: Sink) -> None:
    endpoint = f"127.0.0.1:{sink.grpc_port if protocol == 'grpc' else sink.http_port}"
    base = {"endpoint": endpoint, "protocol": protocol, "tls": {"insecure": True}}
    asyncio.run(_push(tempo, "tempo/auth", base, [_batch("acme"), _batch(None)]))
    asyncio.run(_push(tempo, "tempo/fixed", {**base, "tenant": "ops"}, [_batch("acme")]))
    got = [r.headers.get("x-scope-orgid") for r in sink.requests("traces")]
    # The sending queue may deliver the first two batches in either order.
    assert sorted(got[:2], key=str) == [None, "acme"] and got[2:] == ["ops"]
    assert {r.transport for r in sink.requests()} == {protocol}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_honeycomb_and_jaeger_send_their_headers(protocol: str, sink: Sink) -> None:
    scheme = "http://" if protocol == "http" else ""
    port = sink.grpc_port if protocol == "grpc" else sink.http_port
    hc = {"api_key": "0123456789abcdef0123456789abcdef", "dataset": "orcheo", "protocol": protocol,
          "endpoint": f"{scheme}127.0.0.1:{port}", "tls": {"insecure": True}, "headers": {"x-extra": "1"}}
    asyncio.run(_push(honeycomb, "honeycomb", hc, [_batch("t")]))
    jg = {"endpoint": f"127.0.0.1:{port}", "protocol": protocol, "tls": {"insecure": True}}
    asyncio.run(_push(jaeger, "jaeger", jg, [_batch("t")]))
    first, second = sink.requests("traces")
    assert first.headers["x-honeycomb-team"] == "0123456789abcdef0123456789abcdef"
    assert first.headers["x-honeycomb-dataset"] == "orcheo"
    assert first.headers["x-extra"] == "1"
    assert "x-honeycomb-team" not in second.headers and "x-scope-orgid" not in second.headers
    assert second.request.resource_spans[0].scope_spans[0].spans[0].name == "s"


def test_protocol_http_keys_signal_endpoints_and_json_encoding() -> None:
    sink = RecordingHttpSink()
    try:
        base = f"http://127.0.0.1:{sink.port}"
        block = {"api_key": ENV_KEY, "protocol": "http", "endpoint": base, "compression": "none",
                 "traces_endpoint": f"{base}/t", "metrics_endpoint": f"{base}/m", "logs_endpoint": f"{base}/l",
                 "encoding": "json"}
        batches = [_batch(None), Batch("metrics", metric_request([{}]).SerializeToString(), 1),
                   Batch("logs", log_request([{}]).SerializeToString(), 1)]
        asyncio.run(_push(honeycomb, "honeycomb", block, batches))
        assert sorted((h.path, h.headers["content-type"]) for h in sink.wait_hits(3)) == [
            ("/l", "application/json"), ("/m", "application/json"), ("/t", "application/json")]
        plain = {k: v for k, v in block.items() if not k.endswith("_endpoint") and k != "encoding"}
        asyncio.run(_push(honeycomb, "honeycomb", plain, batches))
        assert sorted((h.path, h.headers["content-type"]) for h in sink.wait_hits(6)[3:]) == [
            ("/v1/logs", "application/x-protobuf"), ("/v1/metrics", "application/x-protobuf"),
            ("/v1/traces", "application/x-protobuf")]
    finally:
        sink.stop()


def test_tempo_tenant_header_names_where_the_batch_tenant_goes(sink: Sink) -> None:
    base = {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True}}
    asyncio.run(_push(tempo, "tempo", {**base, "tenant_header": "X-Tenant"}, [_batch("acme")]))
    (got,) = sink.requests("traces")
    assert got.headers.get("x-tenant") == "acme" and "x-scope-orgid" not in got.headers


def test_destinations_in_a_running_gateway(ports: Ports) -> None:
    """The gateway process loads the new types next to a plain otlp exporter and every span
    reaches each destination exactly once, under its own exporter metrics."""
    sinks = {name: Sink().start() for name in ("honeycomb", "tempo", "jaeger")}
    try:
        exporters = f"""  honeycomb:
    api_key: ${{env:HONEYCOMB_API_KEY}}
    endpoint: "127.0.0.1:{sinks['honeycomb'].grpc_port}"
    tls: {{insecure: true}}
  tempo:
    endpoint: "127.0.0.1:{sinks['tempo'].http_port}"
    protocol: http
    tenant: staging
    tls: {{insecure: true}}
  jaeger:
    endpoint: "127.0.0.1:{sinks['jaeger'].grpc_port}"
    tls: {{insecure: true}}
"""
        cfg = basic_config(ports, exporters, "[honeycomb, tempo, jaeger]")
        with running(cfg, ports, env={"HONEYCOMB_API_KEY": ENV_KEY}) as gw:
            provider = TracerProvider(resource=Resource.create({"service.name": "orcheo-backend"}))
            exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{ports.grpc}", insecure=True)
            provider.add_span_processor(BatchSpanProcessor(exporter))
            tracer = provider.get_tracer("t")
            for i in range(20):
                with tracer.start_as_current_span(f"op-{i}"):
                    pass
            assert provider.force_flush(10_000)
            provider.shutdown()
            for name, s in sinks.items():
                names = sorted(span.name for _, _, span in s.wait_spans(20))
                assert names == sorted(f"op-{i}" for i in range(20)), name
                assert gw.metric("otelcol_exporter_sent_spans_total", exporter=name) == 20
            assert {r.headers["x-honeycomb-team"] for r in sinks["honeycomb"].requests()} == {ENV_KEY}
            assert {r.headers["x-scope-orgid"] for r in sinks["tempo"].requests()} == {"staging"}
            assert ENV_KEY not in gw.stderr() + gw.stdout(), "the API key is never logged"
            assert gw.stop() == 0
    finally:
        for s in sinks.values():
            s.stop()


def test_validate_cli_reports_destination_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(_config({"honeycomb": {"api_key": "0123456789abcdef0123456789abcdef"},
                             "tempo": {"tenant": "a"}}))
    proc = subprocess.run([sys.executable, "-m", "gateway", "validate", "--config", str(path)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "exporters::honeycomb: api_key is a Honeycomb Classic key: set dataset" in out
    assert "exporters::tempo: missing endpoint" in out
    assert "0123456789abcdef0123456789abcdef" not in out, "the key is not echoed"


def test_dataclass_fields_cover_every_otlp_key() -> None:
    """Every key the otlp and otlphttp exporters accept is a key of each destination."""
    otlp_keys = {f.name for f in dataclasses.fields(otlp_grpc.Config)} | {
        f.name for f in dataclasses.fields(otlp_http.Config)}
    for module in (honeycomb, tempo, jaeger):
        assert otlp_keys <= {f.name for f in dataclasses.fields(module.Config)}, module.__name__
