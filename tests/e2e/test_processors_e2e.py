"""Processors and auth through a running gateway, with the real OpenTelemetry Python SDK as client:
seed 004's `attributes/add_deployment`, `hatchet.payload` deleted or hashed (seed 001), a 25%
hash_seed sampler deciding as the Collector does, and bearer-token auth with two tenants reaching
their backend with the right X-Scope-OrgID, plus refusals while the gateway keeps serving."""

from __future__ import annotations

import hashlib
import random
import urllib.error
import urllib.request

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from tests.harness import Ports, Sink, basic_config, running, wait_until
from tests.processors.test_probabilistic_sampler import reference_keep

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _provider(exporter: SpanExporter, service: str = "orcheo-backend") -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64))
    return provider


def _flush(provider: TracerProvider) -> None:
    assert provider.force_flush(10_000)
    provider.shutdown()


def _attrs(span: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in span.attributes:  # type: ignore[attr-defined]
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


def _sink_exporter(name: str, sink: Sink, extra: str = "") -> str:
    return f"""  otlp/{name}:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}
{extra}"""


def test_seed_004_add_deployment_inserts_without_overwriting(ports: Ports, sink: Sink) -> None:
    processors = """batch: {timeout: 50ms}
  attributes/add_deployment:
    actions:
      - key: deployment.environment
        value: "staging"
        action: insert"""
    exporters = "  logging:\n    verbosity: basic\n" + _sink_exporter("tempo", sink)
    cfg = basic_config(ports, exporters, "[logging, otlp/tempo]", processors, "[batch, attributes/add_deployment]")
    with running(cfg, ports) as gw:
        provider = _provider(HttpSpanExporter(endpoint=f"http://127.0.0.1:{ports.http}/v1/traces"))
        tracer = provider.get_tracer("orcheo")
        for i in range(20):
            attrs = {"deployment.environment": "prod"} if i == 0 else {"i": i}
            with tracer.start_as_current_span(f"node-{i}", attributes=attrs):
                pass
        _flush(provider)
        spans = sink.wait_spans(20)
        envs = {span.name: _attrs(span)["deployment.environment"] for _, _, span in spans}
        assert envs["node-0"] == "prod"
        assert all(envs[f"node-{i}"] == "staging" for i in range(1, 20))
        assert gw.stop() == 0


def test_hatchet_payload_deleted_or_hashed(ports: Ports) -> None:
    deleted, hashed = Sink().start(), Sink().start()
    try:
        processors = """batch: {timeout: 50ms}
  attributes/drop_payload:
    actions:
      - {key: hatchet.payload, action: delete}
  attributes/hash_payload:
    include:
      match_type: regexp
      span_names: ["^hatchet\\\\."]
    actions:
      - {key: hatchet.payload, action: hash}"""
        extra = """  pipelines:
    traces/hashed:
      receivers: [otlp]
      processors: [attributes/hash_payload, batch]
      exporters: [otlp/hashed]
"""
        exporters = _sink_exporter("deleted", deleted) + _sink_exporter("hashed", hashed)
        cfg = basic_config(ports, exporters, "[otlp/deleted]", processors, "[attributes/drop_payload, batch]")
        cfg = cfg.replace("  pipelines:\n", extra, 1)
        with running(cfg, ports):
            provider = _provider(GrpcSpanExporter(endpoint=f"127.0.0.1:{ports.grpc}", insecure=True), "worker")
            tracer = provider.get_tracer("hatchet_sdk")
            for i in range(10):
                with tracer.start_as_current_span("hatchet.start_step_run", attributes={
                        "hatchet.payload": f'{{"card": "4111-{i}"}}', "hatchet.step_run_id": str(i)}):
                    pass
            with tracer.start_as_current_span("http.request", attributes={"hatchet.payload": "kept-raw"}):
                pass
            _flush(provider)
            for _, _, span in deleted.wait_spans(11):
                assert "hatchet.payload" not in _attrs(span)
                assert span.name != "hatchet.start_step_run" or "hatchet.step_run_id" in _attrs(span)
            for _, _, span in hashed.wait_spans(11):
                a = _attrs(span)
                if span.name == "hatchet.start_step_run":
                    raw = f'{{"card": "4111-{a["hatchet.step_run_id"]}"}}'
                    assert a["hatchet.payload"] == hashlib.sha256(raw.encode()).hexdigest()
                else:
                    assert a["hatchet.payload"] == "kept-raw"  # excluded by include's span_names
    finally:
        deleted.stop()
        hashed.stop()


def test_sampler_keeps_the_collectors_traces_and_counts_drops(ports: Ports, sink: Sink) -> None:
    processors = """batch: {timeout: 50ms}
  probabilistic_sampler:
    sampling_percentage: 25
    hash_seed: 42"""
    cfg = basic_config(ports, _sink_exporter("backend", sink), "[otlp/backend]", processors,
                       "[probabilistic_sampler, batch]")
    rng = random.Random(4)
    n_traces, per_trace = 400, 3
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    trace_ids = [rng.randbytes(16) for _ in range(n_traces)]
    for t, tid in enumerate(trace_ids):
        for k in range(per_trace):
            ss.spans.add(trace_id=tid, span_id=rng.randbytes(8), name=f"t{t}-{k}")
    expected = {tid for tid in trace_ids if reference_keep(tid, 42, 25.0)}
    with running(cfg, ports) as gw:
        with urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{ports.http}/v1/traces", data=req.SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"}), timeout=10) as r:
            assert r.status == 200
        spans = sink.wait_spans(len(expected) * per_trace)
        kept = {span.trace_id for _, _, span in spans}
        assert kept == expected
        assert all(span.trace_state.startswith("ot=rv:") and span.trace_state.endswith(";th:c")
                   for _, _, span in spans)
        dropped = (n_traces - len(expected)) * per_trace
        wait_until(lambda: gw.metric("otelcol_processor_dropped_spans_total",
                                     processor="probabilistic_sampler") == dropped, 5, "drop count")
        assert 0.15 < len(expected) / n_traces < 0.35


def _http_status(port: int, token: str | None) -> int:
    headers = {"Content-Type": "application/x-protobuf"}
    if token is not None:
        headers["Authorization"] = token
    body = ExportTraceServiceRequest().SerializeToString()
    try:
        with urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/traces", data=body, headers=headers), timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        assert "wrong-token" not in text
        return int(exc.code)


def _grpc_status(port: int, token: str | None) -> tuple[grpc.StatusCode, str]:
    metadata = (("authorization", token),) if token is not None else ()
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 8, name="x")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
        try:
            call(req.SerializeToString(), timeout=10, metadata=metadata)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def test_auth_two_tenants_reach_the_backend_with_their_org_id(ports: Ports, sink: Sink) -> None:
    processors = """batch: {timeout: 50ms}
  attributes/tenant:
    actions:
      - {key: tenant, from_context: auth.tenant, action: upsert}"""
    exporters = _sink_exporter("tempo", sink, "    tenant_header: X-Scope-OrgID\n")
    extensions = """  bearertokenauth:
    tokens:
      - {token: token-a, tenant: team-a}
      - {token: token-b, tenant: team-b}
"""
    cfg = basic_config(ports, exporters, "[otlp/tempo]", processors, "[attributes/tenant, batch]")
    cfg = cfg.replace("extensions:\n", "extensions:\n" + extensions, 1)
    cfg = cfg.replace("extensions: [health_check]", "extensions: [health_check, bearertokenauth]")
    for proto in ("grpc", "http"):
        cfg = cfg.replace(f'{proto}: {{endpoint: "127.0.0.1:{getattr(ports, proto)}"}}',
                          f'{proto}: {{endpoint: "127.0.0.1:{getattr(ports, proto)}", '
                          "auth: {authenticator: bearertokenauth}}")
    with running(cfg, ports) as gw:
        # refusals first: the gateway keeps serving after them
        assert _http_status(ports.http, None) == 401
        assert _http_status(ports.http, "Bearer wrong-token") == 401
        assert _http_status(ports.http, "Basic token-a") == 401
        code, details = _grpc_status(ports.grpc, "Bearer wrong-token")
        assert code == grpc.StatusCode.UNAUTHENTICATED and "wrong-token" not in details
        assert _grpc_status(ports.grpc, None)[0] == grpc.StatusCode.UNAUTHENTICATED
        assert gw.health() == 200
        assert gw.metric("otelcol_gateway_receiver_failed_requests_total", reason="unauthenticated") == 5
        # the span count is unknown before decoding, so nothing is counted as refused (as the Collector)
        assert gw.metric("otelcol_receiver_refused_spans_total") == 0

        for tenant, exporter in (
            ("a", GrpcSpanExporter(endpoint=f"127.0.0.1:{ports.grpc}", insecure=True,
                                   headers={"authorization": "Bearer token-a"})),
            ("b", HttpSpanExporter(endpoint=f"http://127.0.0.1:{ports.http}/v1/traces",
                                   headers={"Authorization": "Bearer token-b"})),
        ):
            provider = _provider(exporter, f"svc-{tenant}")
            tracer = provider.get_tracer("e2e")
            for i in range(15):
                with tracer.start_as_current_span(f"{tenant}-{i}"):
                    pass
            _flush(provider)
        sink.wait_spans(30)
        for received in sink.requests("traces"):
            org = received.headers.get("x-scope-orgid")
            names = [sp.name for rs in received.request.resource_spans for ss in rs.scope_spans for sp in ss.spans]
            assert org in ("team-a", "team-b")
            assert {n.split("-")[0] for n in names} == {org[-1]}, "a batch never mixes tenants"
            for rs in received.request.resource_spans:
                for ss in rs.scope_spans:
                    assert all(_attrs(sp)["tenant"] == org for sp in ss.spans)
        assert gw.metric("otelcol_receiver_accepted_spans_total") == 30
        assert gw.stop() == 0


def test_authenticator_must_be_configured_and_enabled(ports: Ports, tmp_path: object) -> None:
    from gateway.config.load import ConfigError, load_text

    cfg = basic_config(ports, "  debug: {}\n", "[debug]")
    cfg = cfg.replace(f'grpc: {{endpoint: "127.0.0.1:{ports.grpc}"}}',
                      f'grpc: {{endpoint: "127.0.0.1:{ports.grpc}", auth: {{authenticator: bearertokenauth/x}}}}')
    try:
        load_text(cfg)
    except ConfigError as exc:
        assert exc.errors == ["receivers::otlp::protocols::grpc::auth::authenticator: references extension "
                              "'bearertokenauth/x' which is not configured"]
    else:
        raise AssertionError("expected a config error")
    cfg = cfg.replace("extensions:\n", "extensions:\n  bearertokenauth/x: {token: t}\n", 1)
    try:
        load_text(cfg)
    except ConfigError as exc:
        assert exc.errors == ["receivers::otlp::protocols::grpc::auth::authenticator: references extension "
                              "'bearertokenauth/x' which is not enabled in service::extensions"]
    else:
        raise AssertionError("expected a config error")


def test_request_headers_reach_from_context_only_with_include_metadata(ports: Ports, sink: Sink) -> None:
    processors = """batch: {timeout: 50ms}
  attributes/team:
    actions:
      - {key: team, from_context: metadata.x-team, action: upsert}"""
    cfg = basic_config(ports, _sink_exporter("tempo", sink), "[otlp/tempo]", processors, "[attributes/team, batch]")
    # gRPC keeps its request metadata (a header sent twice joins with ';'); HTTP does not.
    cfg = cfg.replace(f'grpc: {{endpoint: "127.0.0.1:{ports.grpc}"}}',
                      f'grpc: {{endpoint: "127.0.0.1:{ports.grpc}", include_metadata: true}}')

    def request(name: str) -> bytes:
        req = ExportTraceServiceRequest()
        req.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\x02" * 16, span_id=b"\x02" * 8, name=name)
        return req.SerializeToString()

    with running(cfg, ports):
        with grpc.insecure_channel(f"127.0.0.1:{ports.grpc}") as channel:
            call = channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
            call(request("via-grpc"), timeout=10, metadata=(("x-team", "blue"), ("x-team", "green")))
        with urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{ports.http}/v1/traces", data=request("via-http"),
                headers={"Content-Type": "application/x-protobuf", "X-Team": "blue"}), timeout=10) as r:
            assert r.status == 200
        spans = sink.wait_spans(2)
        assert {span.name: _attrs(span).get("team") for _, _, span in spans} == {
            "via-grpc": "blue;green", "via-http": None}
