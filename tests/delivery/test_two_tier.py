"""Two tiers, as a tail-sampling deployment runs: senders -> 2 gateways with `loadbalancing`
(routing_key traceID, static resolver) -> 3 gateways with `tail_sampling` -> a sink. Each tier-2
process stamps what it decides with its name, so the sink shows which process decided each trace.

During the load one tier-2 process is killed (SIGKILL) and another started in its place (same address,
same storage). No acknowledged span is lost: the sink holds exactly the spans of the traces the policy
keeps, each trace decided by exactly one process. kill -9 can leave a request stored by the killed process
but never answered; tier 1 then sends it to the new owner as well, and such a trace is kept twice
(at-least-once): the test counts those and checks they are only such requests."""

from __future__ import annotations

import collections
import random
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2

from tests.harness import GatewayProcess, Ports, Sink, wait_until
from tests.interop._support import gateway_config, send

REQUESTS, TRACES_PER_REQUEST, SPANS_PER_TRACE = 60, 10, 4


def _tier2(ports: Ports, sink: Sink, name: str, storage: Path) -> str:
    return gateway_config(
        ports, {"otlp/sink": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True},
                              "sending_queue": {"storage": "file_storage/t"}}},
        processors={
            "tail_sampling": {"decision_wait": "1s", "storage": "file_storage/t",
                              "policies": [{"name": "errors", "type": "status_code",
                                            "status_code": {"status_codes": ["ERROR"]}}]},
            "resource": {"attributes": [{"key": "tier2", "value": name, "action": "insert"}]},
        },
        extensions={"file_storage/t": {"directory": str(storage), "create_directory": True}},
        pipelines={"traces": {"receivers": ["otlp"], "processors": ["tail_sampling", "resource"],
                              "exporters": ["otlp/sink"]}})


def _tier1(ports: Ports, tier2: list[Ports]) -> str:
    return gateway_config(ports, {"loadbalancing": {
        "routing_key": "traceID",
        "protocol": {"otlp": {"tls": {"insecure": True},
                              "retry_on_failure": {"initial_interval": "100ms", "max_interval": "500ms"}}},
        "resolver": {"static": {"hostnames": [f"127.0.0.1:{p.grpc}" for p in tier2]}},
    }})


def _request(rng: random.Random, r: int) -> tuple[ExportTraceServiceRequest, set[bytes]]:
    """TRACES_PER_REQUEST whole traces; every third has an error span. Returns the request and the span
    ids the policy keeps."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value="sender"))
    ss = rs.scope_spans.add()
    kept = set()
    for t in range(TRACES_PER_REQUEST):
        tid, error = rng.randbytes(16), (r * TRACES_PER_REQUEST + t) % 3 == 0
        for i in range(SPANS_PER_TRACE):
            span = ss.spans.add(trace_id=tid, span_id=rng.randbytes(8), name=f"r{r}-t{t}-s{i}")
            span.parent_span_id = b"" if i == 0 else b"\x01" * 8
            if error and i == SPANS_PER_TRACE - 1:
                span.status.code = 2
            if error:
                kept.add(span.span_id)
    return req, kept


def _send_acknowledged(endpoint: str, req: Any) -> None:
    end = time.monotonic() + 30
    while True:
        try:
            send(endpoint, "traces", req)
            return
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < end, exc
            time.sleep(0.1)


@pytest.mark.timeout(600)  # 5 gateway processes on 2 shared cores
def test_two_tiers_keep_every_trace_whole_through_a_tier2_kill_and_restart(sink: Sink, tmp_path: Path) -> None:
    tier2_ports = [Ports.free() for _ in range(3)]
    tier2 = [GatewayProcess(_tier2(p, sink, f"t{i}", tmp_path / f"t{i}"), ports=p) for i, p in enumerate(tier2_ports)]
    tier1_ports = [Ports.free() for _ in range(2)]
    tier1 = [GatewayProcess(_tier1(p, tier2_ports), ports=p) for p in tier1_ports]
    rng = random.Random(15)
    requests = [_request(rng, r) for r in range(REQUESTS)]
    expected = set().union(*(kept for _, kept in requests))
    try:
        for gw in tier2 + tier1:
            gw.start()
        acknowledged = threading.Event()

        def load() -> None:
            for r, (req, _) in enumerate(requests):
                _send_acknowledged(f"127.0.0.1:{tier1_ports[r % 2].grpc}", req)
                if r == 20:
                    acknowledged.set()
                time.sleep(0.03)

        sender = threading.Thread(target=load)
        sender.start()
        acknowledged.wait(30)
        tier2[1].kill()  # mid-load, with traces pending in it and requests on their way
        time.sleep(0.5)
        tier2[1] = GatewayProcess(_tier2(tier2_ports[1], sink, "t1", tmp_path / "t1"), ports=tier2_ports[1])
        tier2[1].start()
        sender.join(60)
        assert not sender.is_alive()

        def unique() -> set[bytes]:
            return {span.span_id for _, _, span in sink.spans()}

        wait_until(lambda: unique() >= expected, 30, "every kept span at the sink")
        for gw in tier1:
            assert gw.metric("otelcol_exporter_send_failed_spans_total") == 0
        # Anything extra could still be on its way: stop every process gracefully (tier 1 first, its queues
        # drained into tier 2), so that what the sink holds then is all it will ever get.
        for gw in tier1 + tier2:
            assert gw.stop() == 0
        spans = sink.spans()
        ids = [span.span_id for _, _, span in spans]
        assert set(ids) == expected  # nothing acknowledged lost, nothing the policy drops

        deciders: dict[bytes, set[str]] = collections.defaultdict(set)
        copies = collections.Counter(ids)
        for resource, _, span in spans:
            name = next(a.value.string_value for a in resource.attributes if a.key == "tier2")
            deciders[span.trace_id].add(name)
        twice = {span.trace_id for _, _, span in spans if copies[span.span_id] > 1}
        assert all(len(d) == 1 for t, d in deciders.items() if t not in twice), deciders
        # Only traces in flight to the killed process at the kill can come twice: each whole, once per copy.
        assert all(copies[span.span_id] == 2 for _, _, span in spans if span.trace_id in twice)
        assert len(twice) <= 2 * TRACES_PER_REQUEST * 10, len(twice)
        by_process = collections.Counter(n for d in deciders.values() for n in d)
        assert set(by_process) == {"t0", "t1", "t2"}
        print(f"kept spans {len(expected)} of {REQUESTS * TRACES_PER_REQUEST * SPANS_PER_TRACE}; traces decided "
              f"per process {dict(sorted(by_process.items()))}; traces kept twice after the kill: {len(twice)}")
    finally:
        for gw in tier1 + tier2:
            gw.kill()
