"""The seeds' clients, with the exact settings their docs give, against a running gateway:

- Hatchet's engine (seed 000): the Go SDK over gRPC with TLS, an Authorization header from
  SERVER_OTEL_COLLECTOR_AUTH and a trace-id ratio sampler (hatchet-engine-sim, a peer);
- Hatchet's Python SDK (seed 001) and Orcheo (seed 004): the Python SDK with a BatchSpanProcessor,
  over gRPC (TLS: `endpoint="host:4317"` without a scheme means TLS in the Python SDK) and OTLP/HTTP;
- Kestra (seed 003): the Java SDK, traces over gRPC to 4317, metrics and logs over OTLP/HTTP to
  /v1/metrics and /v1/logs (kestra-sim, a peer).

What arrives downstream is compared with what each client reports it sampled and exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from tests import peers
from tests.harness import Ports, Sink, running, wait_until
from tests.interop._support import Certs, gateway_config, make_certs, needs

pytestmark = pytest.mark.peers

TOKEN = "hatchet-engine-token"


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "tls")


@pytest.fixture
def tempo_sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in kvs}


def _trace_ids(sink: Sink) -> set[str]:
    return {span.trace_id.hex() for _, _, span in sink.spans()}


# ---------------------------------------------------------------- Hatchet engine (Go SDK), seed 000


@pytest.mark.parametrize("auth", [
    pytest.param(False, id="tls"),
    pytest.param(True, id="tls+bearertokenauth", marks=needs("extensions", "bearertokenauth")),
])
def test_hatchet_engine_tls_auth_ratio(auth: bool, ports: Ports, sink: Sink, tempo_sink: Sink,
                                       certs: Certs) -> None:
    peers.require_peer("hatchet-engine-sim")
    extensions = {"bearertokenauth": {"tokens": [{"token": TOKEN, "tenant": "hatchet"}]}} if auth else {}
    cfg = gateway_config(
        ports,
        {
            "otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True}},
            # No fixed tenant: the tenant the bearer token names goes out as X-Scope-OrgID.
            "tempo": {"endpoint": f"127.0.0.1:{tempo_sink.grpc_port}", "tls": {"insecure": True}},
        },
        extensions=extensions, receiver_tls=certs, authenticator="bearertokenauth" if auth else None,
    )
    with running(cfg, ports) as gw:
        result = peers.run_hatchet_sim(
            f"127.0.0.1:{ports.grpc}", insecure=False, ca_file=certs.ca_file, auth=f"Bearer {TOKEN}",
            ratio=0.5, spans=60, service_name="hatchet-engine",
            env={"K8S_POD_NAME": "hatchet-engine-0", "K8S_POD_NAMESPACE": "hatchet"},
        )
        assert result.ok, result.describe()
        rep = result.report
        sampled = set(rep["sampled_trace_ids"])
        assert 0 < len(sampled) < len(rep["trace_ids"]), "a 0.5 ratio keeps some traces, not all"
        assert set(rep["exported_trace_ids"]) == sampled
        for s in (sink, tempo_sink):
            s.wait_spans(rep["spans_exported"])
            assert _trace_ids(s) == sampled, "exactly the traces the client sampled arrive"
            assert s.span_count() == rep["spans_exported"]
            for resource, _, span in s.spans():
                res = _attrs(resource.attributes)
                assert res == {"service.name": "hatchet-engine", "library.language": "go",
                               "k8s.pod.name": "hatchet-engine-0", "k8s.namespace.name": "hatchet"}
                assert span.name.startswith("hatchet.run/")
        tenants = {r.headers.get("x-scope-orgid") for r in tempo_sink.requests("traces")}
        assert tenants == ({"hatchet"} if auth else {None})
        assert gw.metric("otelcol_receiver_accepted_spans_total", transport="grpc") == rep["spans_exported"]


@needs("extensions", "bearertokenauth")
def test_hatchet_engine_wrong_token_is_refused(ports: Ports, sink: Sink, certs: Certs) -> None:
    peers.require_peer("hatchet-engine-sim")
    cfg = gateway_config(
        ports, {"otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True}}},
        extensions={"bearertokenauth": {"token": TOKEN}}, receiver_tls=certs, authenticator="bearertokenauth",
    )
    with running(cfg, ports) as gw:
        result = peers.run_hatchet_sim(f"127.0.0.1:{ports.grpc}", insecure=False, ca_file=certs.ca_file,
                                       auth="Bearer not-the-token", spans=4, export_timeout="2s")
        assert not result.ok
        assert "Unauthenticated" in " ".join(result.report.get("errors", [])) + result.stderr
        assert sink.span_count() == 0
        assert gw.metric("otelcol_receiver_accepted_spans_total") == 0


def test_hatchet_engine_insecure(ports: Ports, sink: Sink) -> None:
    """SERVER_OTEL_INSECURE=true: plaintext gRPC to a collector that does not terminate TLS."""
    peers.require_peer("hatchet-engine-sim")
    cfg = gateway_config(ports, {"otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}",
                                                  "tls": {"insecure": True}}})
    with running(cfg, ports):
        result = peers.run_hatchet_sim(f"127.0.0.1:{ports.grpc}", insecure=True, spans=10)
        assert result.ok, result.describe()
        sink.wait_spans(10)
        assert _trace_ids(sink) == set(result.report["exported_trace_ids"])
        assert {_attrs(r.attributes)["service.name"] for r, _, _ in sink.spans()} == {"server"}  # the default


# ---------------------------------------------------------------- Python SDK, seeds 001 and 004


def _hatchet_worker_spans(provider: TracerProvider) -> list[tuple[str, bool]]:
    """Seed 001's worker: a step-run span with hatchet.* attributes and two child spans."""
    tracer = provider.get_tracer("hatchet_sdk.opentelemetry")
    out = []
    for run in range(8):
        with tracer.start_as_current_span(
            "hatchet.start_step_run", kind=SpanKind.CONSUMER,
            attributes={"hatchet.workflow_name": "OTelDataPipeline", "hatchet.step_run_id": f"run-{run}",
                        "hatchet.tenant_id": "t1", "hatchet.retry_count": 0},
        ) as parent:
            out.append((f"{parent.get_span_context().trace_id:032x}", parent.get_span_context().trace_flags.sampled))
            with tracer.start_as_current_span("http.request", attributes={"http.method": "GET"}) as span:
                span.set_attribute("http.status_code", 200)
            with tracer.start_as_current_span("json.parse") as span:
                span.set_attribute("json.record_count", 42)
    return out


def test_hatchet_python_sdk_grpc_tls(ports: Ports, sink: Sink, certs: Certs,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 001 verbatim: OTLPSpanExporter(endpoint="host:4317") in a BatchSpanProcessor. With no
    scheme and no `insecure`, the Python SDK dials TLS, so the gateway's 4317 must serve TLS; the
    CA comes from the SDK's standard variable."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(certs.ca_file))
    cfg = gateway_config(ports, {"otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}",
                                                  "tls": {"insecure": True}}}, receiver_tls=certs)
    with running(cfg, ports):
        provider = TracerProvider(resource=Resource.create({"service.name": "hatchet-worker"}))
        provider.add_span_processor(BatchSpanProcessor(GrpcSpanExporter(endpoint=f"localhost:{ports.grpc}")))
        runs = _hatchet_worker_spans(provider)
        assert provider.force_flush(10_000)
        provider.shutdown()
        spans = sink.wait_spans(3 * len(runs))
        assert _trace_ids(sink) == {t for t, _ in runs}
        parents = [span for _, _, span in spans if span.name == "hatchet.start_step_run"]
        assert sorted(_attrs(p.attributes)["hatchet.step_run_id"] for p in parents) == sorted(
            f"run-{i}" for i in range(8))
        assert all(p.kind == 5 for p in parents)  # SPAN_KIND_CONSUMER
        children = [span for _, _, span in spans if span.name != "hatchet.start_step_run"]
        by_id = {p.span_id for p in parents}
        assert all(c.parent_span_id in by_id for c in children)


@pytest.mark.parametrize("how", ["env-endpoint", "full-url"])
def test_orcheo_python_sdk_http_with_ratio(how: str, ports: Ports, sink: Sink,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 004: OTLP/HTTP to :4318 with a 0.5 sample ratio. The endpoint given as
    OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/traces appended by the SDK; given to the constructor it
    is used as the full URL (a bare http://host:4318 would post to `/`, which a Collector refuses too)."""
    cfg = gateway_config(ports, {"otlphttp/backend": {"endpoint": f"http://127.0.0.1:{sink.http_port}"}})
    with running(cfg, ports):
        if how == "env-endpoint":
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{ports.http}")
            exporter = HttpSpanExporter()
        else:
            exporter = HttpSpanExporter(endpoint=f"http://127.0.0.1:{ports.http}/v1/traces")
        provider = TracerProvider(resource=Resource.create({"service.name": "orcheo-backend"}),
                                  sampler=ParentBased(TraceIdRatioBased(0.5)))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("orcheo")
        sampled = set()
        for i in range(60):
            with tracer.start_as_current_span(f"workflow.run-{i}") as span:
                ctx = span.get_span_context()
                if ctx.trace_flags.sampled:
                    sampled.add(f"{ctx.trace_id:032x}")
        assert provider.force_flush(10_000)
        provider.shutdown()
        assert 0 < len(sampled) < 60
        sink.wait_spans(len(sampled))
        assert _trace_ids(sink) == sampled
        assert sink.span_count() == len(sampled)


# ---------------------------------------------------------------- Kestra (Java SDK), seed 003


def test_kestra_traces_grpc_metrics_logs_http(ports: Ports, sink: Sink) -> None:
    peers.require_peer("kestra-sim")
    exporters = {"otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True}}}
    pipelines = {signal: {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlp/backend"]}
                 for signal in ("traces", "metrics", "logs")}
    with running(gateway_config(ports, exporters, pipelines=pipelines), ports) as gw:
        result = peers.run_kestra_sim(f"http://127.0.0.1:{ports.grpc}", f"http://127.0.0.1:{ports.http}",
                                      traces=3, service_name="kestra-standalone")
        assert result.ok, result.describe()
        rep = result.report
        assert rep["metrics_endpoint"].endswith("/v1/metrics") and rep["logs_endpoint"].endswith("/v1/logs")
        sink.wait_spans(rep["spans_exported"])
        assert _trace_ids(sink) == set(rep["exported_trace_ids"])
        assert sink.span_count() == rep["spans_exported"]

        def names() -> set[str]:
            return {m.name for r in sink.requests("metrics") for rm in r.request.resource_metrics
                    for sm in rm.scope_metrics for m in sm.metrics}

        def bodies() -> list[str]:
            return [rec.body.string_value for r in sink.requests("logs") for rl in r.request.resource_logs
                    for sl in rl.scope_logs for rec in sl.log_records]

        wait_until(lambda: set(rep["exported_metric_names"]) <= names()
                   and sorted(bodies()) == sorted(rep["exported_log_bodies"]), 15, "kestra metrics and logs")
        for r in sink.requests():
            for res in (*(x.resource for x in getattr(r.request, "resource_spans", ())),
                        *(x.resource for x in getattr(r.request, "resource_metrics", ())),
                        *(x.resource for x in getattr(r.request, "resource_logs", ()))):
                assert _attrs(res.attributes)["service.name"] == "kestra-standalone"
        assert gw.metric("otelcol_receiver_accepted_spans_total", transport="grpc") == rep["spans_exported"]
        assert gw.metric("otelcol_receiver_accepted_log_records_total", transport="http") == len(bodies())
        assert gw.metric("otelcol_receiver_accepted_metric_points_total", transport="http") > 0
        assert gw.metric("otelcol_receiver_accepted_metric_points_total", transport="grpc") == 0
