"""`service::telemetry` over OTLP: the gateway's own spans and metrics (and, below, logs) as they arrive at
a backend, at a second gateway, and at the reference Collector; `resource`, the sampler, the `traces`
processors and `metrics` periodic readers, each with what it changes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.resources import Resource

from gateway.config.load import load_text
from gateway.config.telemetry import Header, OtlpExporter
from gateway.own_telemetry.exporters import exporter
from gateway.own_telemetry.logs import OtlpHandler, filters
from gateway.own_telemetry.traces import OwnTraces
from gateway.serve import JsonFormatter
from gateway.service import Service
from tests.e2e.support import Certs, http_request, spans_request
from tests.harness import Sink, free_ports, wait_until
from tests.peers import OTLP_TO_FILES_CONFIG, otelcol, read_otlp_json_lines

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
POD = {"K8S_POD_NAME": "gw-0", "K8S_POD_NAMESPACE": "tracing"}


def _config(receiver: int, backend: int, telemetry: str) -> str:
    return f"""
receivers: {{otlp: {{protocols: {{http: {{endpoint: "127.0.0.1:{receiver}"}}}}}}}}
exporters: {{otlp: {{endpoint: "127.0.0.1:{backend}", tls: {{insecure: true}}}}}}
service:
  pipelines: {{traces: {{receivers: [otlp], exporters: [otlp]}}}}
  telemetry: {telemetry}
"""


def _telemetry(grpc_endpoint: str, http_endpoint: str, sampler: str = "") -> str:
    """Own spans over OTLP/gRPC, own metrics over OTLP/HTTP, every 100 ms."""
    return f"""
    resource: {{service.name: gateway-a, deployment.environment: test, service.version: null}}
    metrics:
      address: "127.0.0.1:{free_ports(1)[0]}"
      readers:
        - periodic:
            interval: 100
            exporter: {{otlp: {{protocol: http/protobuf, endpoint: "http://{http_endpoint}",
                               headers: [{{name: authorization, value: Bearer own-metrics}}]}}}}
    traces:
      {sampler}
      processors:
        - batch:
            schedule_delay: 100
            exporter: {{otlp: {{protocol: grpc, endpoint: "{grpc_endpoint}", insecure: true,
                               headers: [{{name: authorization, value: Bearer own-traces}}]}}}}
"""


def _run(config: str, requests: int, headers: dict[str, str], then: Callable[[], None] = lambda: None) -> None:
    """Run a gateway on `config` (with a pod's environment), send `requests` 3-span requests to it, stop it."""
    port = int(config.split('endpoint: "127.0.0.1:')[1].split('"')[0])

    async def run() -> None:
        service = Service(load_text(config, env={}).config, env=POD)
        await service.start()
        try:
            for _ in range(requests):
                body = spans_request(3).SerializeToString()
                answer = await asyncio.to_thread(
                    http_request, port, body, headers={"Content-Type": "application/x-protobuf", **headers})
                assert answer.status == 200
            await asyncio.to_thread(then)
        finally:
            await service.shutdown()

    asyncio.run(run())


def _attrs(kvs: Any) -> dict[str, Any]:
    out = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value"))
    return out


def _own_spans(sink: Sink) -> list[tuple[dict[str, Any], Any]]:
    return [(_attrs(rs.resource.attributes), span) for r in sink.requests("traces")
            for rs in r.request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def _own_sum(sink: Sink, name: str) -> dict[tuple[tuple[str, Any], ...], float]:
    """The last value of each series of the cumulative sum `name` a sink received."""
    out = {}
    for r in sink.requests("metrics"):
        for rm in r.request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        assert m.sum.is_monotonic and m.sum.aggregation_temporality == 2  # cumulative
                        for p in m.sum.data_points:
                            out[tuple(sorted(_attrs(p.attributes).items()))] = p.as_double
    return out


def test_own_spans_and_metrics_arrive_at_a_backend_with_resource_headers_and_link() -> None:
    backend, own = Sink().start(), Sink().start()
    try:
        receiver, metrics = free_ports(2)
        telemetry = f"""
    resource: {{service.name: gateway-a, deployment.environment: test, service.version: null}}
    metrics:
      address: "127.0.0.1:{metrics}"
      readers:
        - periodic:
            interval: 100
            timeout: 2000
            exporter: {{otlp: {{protocol: http/protobuf, endpoint: "http://127.0.0.1:{own.http_port}",
                               headers: [{{name: authorization, value: Bearer own-metrics}}]}}}}
    traces:
      processors:
        - batch:
            schedule_delay: 100
            exporter: {{otlp: {{protocol: grpc, endpoint: "127.0.0.1:{own.grpc_port}", insecure: true,
                               headers: [{{name: authorization, value: Bearer own-traces}}]}}}}
"""
        _run(_config(receiver, backend.grpc_port, telemetry), 2, {"traceparent": TRACEPARENT},
             then=lambda: backend.wait_spans(6))
        spans = _own_spans(own)
        received = [s for _, s in spans if s.name == "receiver/otlp/TraceDataReceived"]
        exported = [s for _, s in spans if s.name == "exporter/otlp/traces"]
        assert len(received) == 2 and len(exported) >= 1, [s.name for _, s in spans]
        assert {k: v for k, v in _attrs(received[0].attributes).items()} == {
            "receiver": "otlp", "transport": "http", "signal": "traces", "items": 3, "outcome": "ok"}
        assert received[0].kind == 2  # SERVER
        # The client's span is a link, never the parent: the gateway's trace is its own.
        assert received[0].parent_span_id == b"" and received[0].trace_id.hex() != TRACEPARENT[3:35]
        assert [(link.trace_id.hex(), link.span_id.hex()) for link in received[0].links] == [
            (TRACEPARENT[3:35], TRACEPARENT[36:52])]
        assert sum(_attrs(s.attributes)["items"] for s in exported) == 6
        assert {(_attrs(s.attributes)["exporter"], _attrs(s.attributes)["outcome"]) for s in exported} == {
            ("otlp", "ok")}
        resource = spans[0][0]
        assert {k: resource[k] for k in ("service.name", "deployment.environment", "k8s.pod.name",
                                         "k8s.namespace.name")} == {
            "service.name": "gateway-a", "deployment.environment": "test", "k8s.pod.name": "gw-0",
            "k8s.namespace.name": "tracing"}
        assert "service.version" not in resource and len(resource["service.instance.id"]) == 36
        # The own spans went to their endpoint with their headers, and never into the gateway's pipeline.
        assert {r.headers.get("authorization") for r in own.requests("traces")} == {"Bearer own-traces"}
        assert backend.span_count() == 6
        # The periodic reader pushed the Prometheus registry's counters under the Collector's names.
        assert _own_sum(own, "otelcol_receiver_accepted_spans") == {
            (("receiver", "otlp"), ("transport", "http")): 6.0}
        assert _own_sum(own, "otelcol_exporter_sent_spans") == {(("exporter", "otlp"),): 6.0}
        assert {r.headers.get("authorization") for r in own.requests("metrics")} == {"Bearer own-metrics"}
        assert own.requests("metrics")[0].transport == "http"
    finally:
        backend.stop()
        own.stop()


@pytest.mark.parametrize(("sampler", "kept"), [
    ("sampler: {always_off: {}}", 0),
    ("sampler: {parent_based: {root: {trace_id_ratio_based: {ratio: 0.0}}}}", 0),
    ("sampler: {trace_id_ratio_based: {ratio: 1.0}}", 4),
    ("sampler: {always_on: {}}", 4),
])
def test_sampler_decides_which_receiver_spans_are_kept(sampler: str, kept: int) -> None:
    # A sampled traceparent does not make the gateway sample: its sampler alone decides.
    backend, own = Sink().start(), Sink().start()
    try:
        receiver, = free_ports(1)
        telemetry = _telemetry(f"127.0.0.1:{own.grpc_port}", f"127.0.0.1:{own.http_port}", sampler)
        _run(_config(receiver, backend.grpc_port, telemetry), 4, {"traceparent": TRACEPARENT},
             then=lambda: backend.wait_spans(12))
        assert len([s for _, s in _own_spans(own) if s.name.startswith("receiver/")]) == kept
        assert backend.span_count() == 12
    finally:
        backend.stop()
        own.stop()


def test_traces_level_none_or_no_processors_makes_no_tracer() -> None:
    ports = free_ports(2)
    for traces in ("{level: none, processors: [{batch: {exporter: {otlp: {endpoint: 'x:4317'}}}}]}", "{}"):
        config = load_text(_config(*ports, f"{{traces: {traces}}}"), env={}).config
        assert Service(config).telemetry.tracer is None
    config = load_text(_config(*ports, "{traces: {processors: [{simple: {exporter: {otlp: {endpoint: 'x:4317'}}}}]}}"),
                       env={}).config
    assert Service(config).telemetry.tracer is not None


def test_otlp_exporter_keys_reach_the_sdks_exporter() -> None:
    grpc_exporter = exporter(OtlpExporter(
        endpoint="collector:4317", protocol="grpc", insecure=True, compression="gzip", timeout=2500,
        headers=(Header(name="Authorization", value="Bearer a"),), headers_list="x-tenant=t1, authorization=ignored"),
        "traces")
    assert grpc_exporter._endpoint == "collector:4317" and grpc_exporter._insecure is True
    assert grpc_exporter._timeout == 2.5 and grpc_exporter._compression == grpc.Compression.Gzip
    assert dict(grpc_exporter._headers) == {"x-tenant": "t1", "authorization": "Bearer a"}
    # Seed 000's form: host:port is TLS unless told otherwise; a URL's http scheme is plaintext.
    assert exporter(OtlpExporter(endpoint="collector:4317", protocol="grpc"), "traces")._insecure is False
    assert exporter(OtlpExporter(endpoint="http://collector:4317", protocol="grpc"), "traces")._insecure is True
    # OTLP/HTTP: a URL without a path gets the signal's; `insecure` turns https into http.
    http_exporter = exporter(OtlpExporter(endpoint="collector:4318", insecure=True, timeout=1500), "metrics")
    assert http_exporter._endpoint == "http://collector:4318/v1/metrics"
    assert exporter(OtlpExporter(endpoint="https://c:4318/custom"), "logs")._endpoint == "https://c:4318/custom"


def test_certificate_client_key_and_client_certificate_send_own_spans_over_tls(certs: Certs) -> None:
    backend, own = Sink().start(), Sink().start(tls=(certs.server_cert.read_bytes(), certs.server_key.read_bytes()))
    try:
        receiver, metrics = free_ports(2)
        telemetry = f"""
    metrics: {{address: "127.0.0.1:{metrics}"}}
    traces:
      processors:
        - simple:
            exporter: {{otlp: {{protocol: grpc, endpoint: "localhost:{own.grpc_port}", certificate: "{certs.ca}",
                               client_key: "{certs.client_key}", client_certificate: "{certs.client_cert}"}}}}
"""
        _run(_config(receiver, backend.grpc_port, telemetry), 1, {}, then=lambda: backend.wait_spans(3))
        assert {s.name for _, s in _own_spans(own)} >= {"receiver/otlp/TraceDataReceived"}
        assert {r.transport for r in own.requests("traces")} == {"grpc"}
    finally:
        backend.stop()
        own.stop()
    with pytest.raises(FileNotFoundError, match=r"missing\.pem"):
        exporter(OtlpExporter(endpoint="collector:4317", protocol="grpc", certificate=str(certs.dir / "missing.pem")),
                 "traces")


def test_batch_processor_keys_shape_the_sdks_batch_span_processor() -> None:
    config = load_text(_config(*free_ports(2), """{traces: {processors: [{batch: {
        schedule_delay: 250, export_timeout: 4000, max_queue_size: 64, max_export_batch_size: 16,
        exporter: {otlp: {endpoint: "127.0.0.1:4317", protocol: grpc, insecure: true}}}}]}}"""), env={}).config
    own = OwnTraces(config.service.telemetry.traces, Resource({}))
    own.start()
    try:
        assert own.provider is not None
        (processor,) = own.provider._active_span_processor._span_processors
        inner = processor._batch_processor
        assert (inner._schedule_delay_millis, inner._export_timeout_millis, inner._max_queue_size,
                inner._max_export_batch_size) == (250, 4000, 64, 16)
    finally:
        own.shutdown()


def test_own_telemetry_through_a_second_gateway() -> None:
    """Gateway A's own spans and metrics, sent to gateway B's OTLP receiver, come out of B's pipelines."""
    backend, downstream = Sink().start(), Sink().start()
    receiver_a, grpc_b, http_b = free_ports(3)
    config_b = f"""
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{grpc_b}"}}, http: {{endpoint: "127.0.0.1:{http_b}"}}}}}}
exporters: {{otlp: {{endpoint: "127.0.0.1:{downstream.grpc_port}", tls: {{insecure: true}}}}}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp]}}
    metrics: {{receivers: [otlp], exporters: [otlp]}}
  telemetry: {{metrics: {{level: none}}}}
"""
    config_a = _config(receiver_a, backend.grpc_port, _telemetry(f"127.0.0.1:{grpc_b}", f"127.0.0.1:{http_b}"))

    async def run() -> None:
        b = Service(load_text(config_b, env={}).config)
        await b.start()
        try:
            a = Service(load_text(config_a, env={}).config, env=POD)
            await a.start()
            try:
                body = spans_request(3).SerializeToString()
                answer = await asyncio.to_thread(
                    http_request, receiver_a, body, headers={"Content-Type": "application/x-protobuf"})
                assert answer.status == 200
                await asyncio.to_thread(backend.wait_spans, 3)
            finally:
                await a.shutdown()
            await asyncio.to_thread(downstream.wait_spans, 2)
        finally:
            await b.shutdown()

    try:
        asyncio.run(run())
        names = {s.name for _, s in _own_spans(downstream)}
        assert {"receiver/otlp/TraceDataReceived", "exporter/otlp/traces"} <= names
        assert {r["service.name"] for r, _ in _own_spans(downstream)} == {"gateway-a"}
        assert _own_sum(downstream, "otelcol_receiver_accepted_spans") == {
            (("receiver", "otlp"), ("transport", "http")): 3.0}
    finally:
        backend.stop()
        downstream.stop()


@pytest.mark.peers
def test_own_telemetry_arrives_at_the_reference_collector() -> None:
    backend = Sink().start()
    try:
        with otelcol(OTLP_TO_FILES_CONFIG) as col:
            receiver, = free_ports(1)
            telemetry = _telemetry(col.grpc_endpoint, col.ports.http_endpoint)
            _run(_config(receiver, backend.grpc_port, telemetry), 1, {}, then=lambda: backend.wait_spans(3))

            def spans() -> list[dict[str, Any]]:
                return [span for req in read_otlp_json_lines(col.workdir / "traces.json")
                        for rs in req["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]

            def sums() -> dict[str, Any]:
                return {m["name"]: m["sum"]["dataPoints"] for req in read_otlp_json_lines(col.workdir / "metrics.json")
                        for rm in req["resourceMetrics"] for sm in rm["scopeMetrics"] for m in sm["metrics"]
                        if "sum" in m}

            wait_until(lambda: len(spans()) >= 2 and "otelcol_exporter_sent_spans" in sums(), timeout=10,
                       what="own telemetry in the Collector's files")
            received = [s for s in spans() if s["name"] == "receiver/otlp/TraceDataReceived"]
            assert len(received) == 1
            assert {a["key"]: a["value"] for a in received[0]["attributes"]} == {
                "receiver": {"stringValue": "otlp"}, "transport": {"stringValue": "http"},
                "signal": {"stringValue": "traces"}, "items": {"intValue": "3"}, "outcome": {"stringValue": "ok"}}
            accepted = sums()["otelcol_receiver_accepted_spans"]
            assert [p["asDouble"] for p in accepted] == [3]
    finally:
        backend.stop()


def test_logs_processors_send_the_gateways_log_records_over_otlp() -> None:
    backend, own = Sink().start(), Sink().start()
    gateway_log = logging.getLogger("gateway")
    before = gateway_log.level
    gateway_log.setLevel(logging.INFO)  # as setup_logging's root level does in a running gateway
    try:
        receiver, metrics = free_ports(2)
        telemetry = f"""
    resource: {{service.name: gateway-a}}
    metrics: {{address: "127.0.0.1:{metrics}"}}
    logs:
      level: info
      processors:
        - batch:
            schedule_delay: 100
            exporter: {{otlp: {{protocol: http/protobuf, endpoint: "http://127.0.0.1:{own.http_port}"}}}}
"""
        _run(_config(receiver, backend.grpc_port, telemetry), 1, {}, then=lambda: backend.wait_spans(3))
        records = [(_attrs(rl.resource.attributes), sl.scope.name, lr) for r in own.requests("logs")
                   for rl in r.request.resource_logs for sl in rl.scope_logs for lr in sl.log_records]
        started = [lr for _, _, lr in records if lr.body.string_value.startswith("gateway started")]
        assert len(started) == 1 and started[0].severity_text == "INFO"
        assert {res["service.name"] for res, _, _ in records} == {"gateway-a"}
        assert {"gateway.service", "gateway.receiver.http"} <= {scope for _, scope, _ in records}
        # The handler is gone with the service: nothing is sent after shutdown.
        assert not [h for h in gateway_log.handlers if isinstance(h, OtlpHandler)]
    finally:
        gateway_log.setLevel(before)
        backend.stop()
        own.stop()


def _records(n: int, level: int = logging.INFO, msg: str = "queue full: %d") -> list[logging.LogRecord]:
    return [logging.getLogger("gateway.t").makeRecord("gateway.t", level, __file__, 1, msg, (i,), None)
            for i in range(n)]


def test_logs_sampling_keeps_initial_then_every_thereafter_per_message_and_tick() -> None:
    config = load_text(_config(*free_ports(2), """{logs: {sampling: {enabled: true, tick: 1h, initial: 2,
        thereafter: 3}}}"""), env={}).config.service.telemetry.logs
    (sampler,) = filters(config)
    kept = [i for i, r in enumerate(_records(10)) if sampler.filter(r)]
    assert kept == [0, 1, 4, 7]
    # Another message, or another level, is counted on its own.
    assert all(sampler.filter(r) for r in _records(2, msg="other"))
    assert all(sampler.filter(r) for r in _records(2, level=logging.WARNING))
    # A second handler carrying the filter writes the same lines (the 11th kept, the 12th not, once each).
    eleventh, twelfth = _records(2)
    assert sampler.filter(eleventh) is sampler.filter(eleventh) is True
    assert sampler.filter(twelfth) is sampler.filter(twelfth) is False
    # A tick that has passed starts the counts again.
    short = filters(load_text(_config(*free_ports(2), "{logs: {sampling: {tick: 1ns, initial: 1, thereafter: 0}}}"),
                              env={}).config.service.telemetry.logs)[0]
    assert all(short.filter(r) for r in _records(3))
    assert filters(load_text(_config(*free_ports(2), "{logs: {sampling: {enabled: false}}}"),
                             env={}).config.service.telemetry.logs) == []


def test_logs_development_gives_warnings_a_stacktrace() -> None:
    config = load_text(_config(*free_ports(2), "{logs: {development: true, encoding: json}}"), env={}).config
    (dev,) = filters(config.service.telemetry.logs)
    warn, info = _records(1, logging.WARNING)[0], _records(1)[0]
    assert dev.filter(warn) and dev.filter(info)
    line = json.loads(JsonFormatter({}).format(warn))
    assert "test_logs_development_gives_warnings_a_stacktrace" in line["stacktrace"]
    assert "stacktrace" not in json.loads(JsonFormatter({}).format(info))
    assert filters(load_text(_config(*free_ports(2), "{logs: {development: false}}"),
                             env={}).config.service.telemetry.logs) == []
