"""Two tenants through a running gateway's `tail_sampling`, both using the same trace ids: each keeps its
own traces, decided on its own spans, and sent with its own tenant header, never in one batch with the
other's; with `storage`, across a kill -9, and with no credential or other header written to disk."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.harness import GatewayProcess, Ports, Sink, wait_until
from tests.interop._support import SERVICES

TOKENS = {"team-a": "token-a-0123456789abcdef", "team-b": "token-b-0123456789abcdef"}


def _config(ports: Ports, sink: Sink, storage: Path | None) -> str:
    tail = 'decision_wait: 1s, policies: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}]'
    if storage is not None:
        tail += ", storage: file_storage/t, persist_metadata_keys: [x-team]"
    return f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "127.0.0.1:{ports.grpc}"
        include_metadata: true
        auth: {{authenticator: bearertokenauth}}
processors:
  tail_sampling: {{{tail}}}
  batch: {{timeout: 50ms, metadata_keys: [x-team]}}
exporters:
  otlp:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}
    tenant_header: X-Scope-OrgID
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
  bearertokenauth: {{tokens: [{", ".join(f"{{token: {t}, tenant: {n}}}" for n, t in TOKENS.items())}]}}
  {f'file_storage/t: {{directory: "{storage}"}}' if storage else ""}
service:
  extensions: [health_check, bearertokenauth{", file_storage/t" if storage else ""}]
  pipelines:
    traces: {{receivers: [otlp], processors: [tail_sampling, batch], exporters: [otlp]}}
  telemetry: {{metrics: {{address: "127.0.0.1:{ports.metrics}"}}}}
"""


def _request(traces: list[tuple[bytes, bool]], tenant: str) -> Any:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for tid, error in traces:
        for i in range(2):
            span = ss.spans.add()
            span.trace_id, span.span_id = tid, random.randbytes(8)
            span.parent_span_id = b"" if i == 0 else b"\x01" * 8
            span.name = f"span-{tenant[-1]}-{i}"  # the tenant's letter: no tenant name in the bytes
            span.status.code = 2 if error else 0
    return req


def _send(endpoint: str, req: Any, tenant: str) -> None:
    channel = grpc.insecure_channel(endpoint)
    try:
        channel.unary_unary(f"/{SERVICES['traces']}/Export", request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=lambda b: b)(req, timeout=10, metadata=[
            ("authorization", f"Bearer {TOKENS[tenant]}"), ("x-team", f"{tenant}-blue"),
            ("x-other", "private-value")])
    finally:
        channel.close()


def _span_ids(req: Any, error: bool) -> set[bytes]:
    return {sp.span_id for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans
            if (sp.status.code == 2) == error}


@pytest.mark.parametrize("kill", [False, True], ids=["in_memory", "storage_kill9"])
def test_tenants_sharing_trace_ids_are_held_decided_and_sent_apart(ports: Ports, sink: Sink, tmp_path: Path,
                                                                    kill: bool) -> None:
    storage = tmp_path / "tail" if kill else None
    if storage is not None:
        storage.mkdir()
    shared = [random.randbytes(16) for _ in range(4)]
    # The same trace ids: a's first two traces have an error, b's last two; each tenant's decision is its own.
    reqs = {"team-a": _request([(t, i < 2) for i, t in enumerate(shared)], "team-a"),
            "team-b": _request([(t, i >= 2) for i, t in enumerate(shared)], "team-b")}
    kept = {tenant: _span_ids(req, error=True) for tenant, req in reqs.items()}
    cfg = _config(ports, sink, storage)
    gw = GatewayProcess(cfg, ports=ports).start()
    try:
        for tenant, req in reqs.items():
            _send(f"127.0.0.1:{ports.grpc}", req, tenant)
        if kill:
            gw.kill()  # before decision_wait: the pending spans and their contexts are on disk
            on_disk = b"".join(p.read_bytes() for p in storage.rglob("*.tsl"))
            assert b"team-a" in on_disk and b"team-a-blue" in on_disk, "tenant and batching metadata kept"
            assert all(t.encode() not in on_disk for t in TOKENS.values()) and b"private-value" not in on_disk
            assert not sink.received
            gw = GatewayProcess(cfg, ports=ports).start()
        want = len(kept["team-a"]) + len(kept["team-b"])
        wait_until(lambda: sum(len(_all_ids(r.request)) for r in sink.requests("traces")) >= want, 15,
                   "the kept traces of both tenants")
        wait_until(lambda: gw.metric("otelcol_processor_dropped_spans_total", processor="tail_sampling") == 8, 10,
                   "the traces not kept, counted")
        assert gw.stop() == 0  # everything held is sent before it exits: nothing more can come
    finally:
        gw.kill()
    got: dict[str, list[bytes]] = {}
    for r in sink.requests("traces"):
        tenant = r.headers.get("x-scope-orgid")
        assert tenant in TOKENS, f"a batch without its tenant: {r.headers}"
        letters = {sp.name.split("-")[1] for rs in r.request.resource_spans for ss in rs.scope_spans
                   for sp in ss.spans}
        assert letters == {tenant[-1]}, f"a batch for {tenant} holds spans of {letters}"
        got.setdefault(tenant, []).extend(_all_ids(r.request))
    assert {t: sorted(ids) for t, ids in got.items()} == {t: sorted(ids) for t, ids in kept.items()}


def _all_ids(req: Any) -> list[bytes]:
    return [sp.span_id for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans]
