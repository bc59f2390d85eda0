"""Side by side: the same traces, each spread over three requests, through the reference Collector's
`load_balancing` exporter and the gateway's, each with `routing_key: traceID` and the same three
endpoints. Which endpoint a trace lands on differs on purpose (our ring is rendezvous hashing, theirs a
crc32 ring); what both must do is put all of a trace's spans on one endpoint, and use every endpoint."""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Callable

import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests import peers
from tests.e2e.support import StrictGrpcSink
from tests.harness import Ports, running
from tests.interop._support import gateway_config, send

pytestmark = [pytest.mark.peers]

TRACES, PARTS = 90, 3


def _exporter(port: int) -> dict[str, object]:
    return {"routing_key": "traceID", "protocol": {"otlp": {"tls": {"insecure": True}}},
            "resolver": {"static": {"hostnames": [f"127.0.0.{i}:{port}" for i in (1, 2, 3)]}}}


def _collector(port: int) -> str:
    doc = {
        "extensions": {"health_check": {"endpoint": "{{health_endpoint}}"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "{{grpc_endpoint}}"}}}},
        "exporters": {"load_balancing": _exporter(port)},
        "service": {"extensions": ["health_check"], "pipelines": {"traces": {
            "receivers": ["otlp"], "exporters": ["load_balancing"]}}},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _requests() -> list[ExportTraceServiceRequest]:
    """PARTS requests; trace t has one span in each (span `t{t}-p{part}`)."""
    rng = random.Random(41200)
    ids = [rng.randbytes(16) for _ in range(TRACES)]
    out = []
    for part in range(PARTS):
        req = ExportTraceServiceRequest()
        ss = req.resource_spans.add().scope_spans.add()
        for t in rng.sample(range(TRACES), TRACES):
            ss.spans.add(trace_id=ids[t], span_id=rng.randbytes(8), name=f"t{t}-p{part}")
        out.append(req)
    return out


def _landed(backends: list[StrictGrpcSink],
            send_to: Callable[[ExportTraceServiceRequest], None]) -> dict[str, set[int]]:
    for req in _requests():
        send_to(req)
    deadline = time.monotonic() + 20
    while sum(b.total() for b in backends) < TRACES * PARTS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(b.total() for b in backends) == TRACES * PARTS
    where: dict[str, set[int]] = collections.defaultdict(set)
    for i, b in enumerate(backends):
        for name in b.names:
            where[name.split("-")[0]].add(i)
    return where


def test_collector_and_gateway_each_keep_every_trace_on_one_endpoint(backends: list[StrictGrpcSink]) -> None:
    port = backends[0].port
    with peers.otelcol(_collector(port)) as col:
        theirs = _landed(backends, lambda req: send(col.ports.grpc_endpoint, "traces", req))
    for b in backends:
        b.names.clear()
        b.span_counts.clear()
    ports = Ports.free()
    with running(gateway_config(ports, {"loadbalancing": _exporter(port)}), ports):
        ours = _landed(backends, lambda req: send(f"127.0.0.1:{ports.grpc}", "traces", req))
    for where in (theirs, ours):
        assert len(where) == TRACES
        assert all(len(endpoints) == 1 for endpoints in where.values())
        assert set().union(*where.values()) == {0, 1, 2}
