"""The tail sampler's delivery promise, through a running gateway: pending spans survive kill -9 with
`storage` and are decided after the restart (late spans follow decisions read back from disk); the
byte bound refuses with a retryable answer and decides the largest trace early, and a giant trace
stalls no other trace's decision; `block_on_overflow` and `drop_pending_traces_on_shutdown`."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.harness import GatewayProcess, Ports, Sink, wait_until
from tests.interop._support import gateway_config, send

ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
ALWAYS = {"name": "all", "type": "always_sample"}


def _config(ports: Ports, sink: Sink, tail: dict[str, Any], storage: Path | None = None) -> str:
    extensions = {"file_storage/t": {"directory": str(storage)}} if storage else None
    return gateway_config(
        ports, {"otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True}}},
        processors={"tail_sampling": tail}, extensions=extensions,
        pipelines={"traces": {"receivers": ["otlp"], "processors": ["tail_sampling"], "exporters": ["otlp/backend"]}})


def _request(traces: list[tuple[bytes, int, bool]], tag: str, first: bool = True, name_size: int = 8) -> Any:
    """One request: for each (trace id, spans, error) that many spans, the first a root when `first`."""
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for tid, n, error in traces:
        for i in range(n):
            span = ss.spans.add()
            span.trace_id, span.span_id = tid, random.randbytes(8)
            span.parent_span_id = b"" if first and i == 0 else b"\x01" * 8
            span.name = f"{tag}-{i}-" + "n" * name_size
            span.status.code = 2 if error else 0
    return req


def _ids(req: Any) -> set[bytes]:
    return {sp.span_id for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans}


def _received(sink: Sink) -> list[bytes]:
    return [span.span_id for _, _, span in sink.spans()]


def test_pending_spans_survive_kill9_and_are_decided_after_the_restart(ports: Ports, sink: Sink,
                                                                       tmp_path: Path) -> None:
    # decision_wait 10 min before the kill, so nothing is decided however long sending takes; 2s after.
    tail = {"storage": "file_storage/t", "policies": [ERRORS]}
    before = _config(ports, sink, {**tail, "decision_wait": "600s"}, tmp_path)
    cfg = _config(ports, sink, {**tail, "decision_wait": "2s"}, tmp_path)
    traces = [(random.randbytes(16), 3, t % 3 == 0) for t in range(60)]
    halves = [_request(traces, "a"), _request(traces, "b", first=False)]
    kept = {sp for req in halves for rs in req.resource_spans for ss in rs.scope_spans for sp in
            (s.span_id for s in ss.spans if s.status.code == 2)}
    gw = GatewayProcess(before, ports=ports).start()
    try:
        for req in halves:
            send(f"127.0.0.1:{ports.grpc}", "traces", req)  # acknowledged: held on disk
        assert gw.metric("otelcol_processor_tail_sampling_sampling_traces_on_memory") == 60
        gw.kill()  # nothing decided yet
    finally:
        gw.kill()
    assert not sink.received and list(tmp_path.glob("processor_tail_sampling/*.tsl"))
    gw = GatewayProcess(cfg, ports=ports).start()
    try:
        wait_until(lambda: len(_received(sink)) >= len(kept), 15, "the kept traces after the restart")
        wait_until(lambda: gw.metric("otelcol_processor_dropped_spans_total", processor="tail_sampling")
                   == 360 - len(kept), 10, "the others counted as dropped")
        assert gw.stop() == 0  # a barrier: nothing is sent after it
    finally:
        gw.kill()
    assert sorted(_received(sink)) == sorted(kept)  # each once, nothing of the others
    gw = GatewayProcess(cfg, ports=ports).start()
    try:
        late = _request([(traces[0][0], 1, False), (traces[1][0], 1, False)], "late", first=False)
        send(f"127.0.0.1:{ports.grpc}", "traces", late)
        # trace 0 was kept (an error), trace 1 was not: its late span is dropped at once.
        late_kept = [sp.span_id for sp in late.resource_spans[0].scope_spans[0].spans][:1]
        wait_until(lambda: len(_received(sink)) == len(kept) + 1, 10, "the late span of the kept trace")
        assert _received(sink)[-1:] == late_kept
        assert gw.metric("otelcol_processor_tail_sampling_early_releases_from_cache_decision_total",
                         sampled="false") == 1
        assert gw.stop() == 0
    finally:
        gw.kill()


def _send_retrying(endpoint: str, req: Any, deadline: float = 30.0) -> int:
    """Send until acknowledged; how many times the gateway refused it first."""
    refusals = 0
    end = time.monotonic() + deadline
    while True:
        try:
            send(endpoint, "traces", req)
            return refusals
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < end, exc
            refusals += 1
            time.sleep(0.2)


def test_max_pending_bytes_refuses_decides_the_giant_trace_early_and_stalls_no_one(ports: Ports,
                                                                                 sink: Sink) -> None:
    bound = 3 * 1024 * 1024
    # Traces are decided 1 s after their root span; the giant one has none, so only the bound decides it
    # before its decision_wait (10 min).
    cfg = _config(ports, sink, {"decision_wait": "600s", "decision_wait_after_root_received": "1s",
                                "max_pending_bytes": bound, "policies": [ALWAYS]})
    giant = random.randbytes(16)
    gw = GatewayProcess(cfg, ports=ports).start()
    endpoint = f"127.0.0.1:{ports.grpc}"
    try:
        sent: set[bytes] = set()
        refusals = 0
        # A 50,000-span trace (about 5 MB) in 10 requests: more than max_pending_bytes.
        for part in range(10):
            req = _request([(giant, 5000, False)], f"g{part}", first=False, name_size=60)
            refusals += _send_retrying(endpoint, req)
            sent |= _ids(req)
        # Small traces sent now are decided at their own deadline, whatever the giant one does: not early,
        # and not held behind it.
        small = _request([(random.randbytes(16), 2, False) for _ in range(20)], "small")
        refusals += _send_retrying(endpoint, small)
        sent |= _ids(small)
        wait_until(lambda: set(_received(sink)) == sent, 20, "every acknowledged span")
        wait_until(lambda: gw.metric("otelcol_processor_tail_sampling_global_count_traces_sampled_total") == 21,
                   10, "the 21 decisions counted")
        early = "otelcol_gateway_processor_tail_sampling_decided_early_traces_total"
        assert gw.metric(early) == gw.metric(early, reason="max_pending_bytes") == 1, "only the giant is early"
        assert gw.metric("otelcol_processor_tail_sampling_sampling_traces_on_memory") == 0
        assert refusals > 0
        assert gw.metric("otelcol_gateway_processor_tail_sampling_refused_spans_total",
                         reason="max_pending_bytes") == 5000 * refusals
        assert gw.metric("otelcol_gateway_processor_tail_sampling_pending_bytes") <= bound
        assert gw.stop() == 0  # a barrier: nothing is sent after it
    finally:
        gw.kill()
    got = _received(sink)
    assert len(got) == len(sent), "no span twice"


def test_block_on_overflow_refuses_a_new_trace_past_num_traces(ports: Ports, sink: Sink) -> None:
    cfg = _config(ports, sink, {"decision_wait": "30s", "num_traces": 5, "block_on_overflow": True,
                                "policies": [ALWAYS]})
    gw = GatewayProcess(cfg, ports=ports).start()
    try:
        send(f"127.0.0.1:{ports.grpc}", "traces", _request([(random.randbytes(16), 1, False) for _ in range(5)], "a"))
        try:
            send(f"127.0.0.1:{ports.grpc}", "traces", _request([(random.randbytes(16), 1, False)], "b"))
            raise AssertionError("a sixth trace was taken")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
        assert gw.metric("otelcol_gateway_processor_tail_sampling_refused_spans_total", reason="num_traces") == 1
        # At shutdown the pending traces are decided (no storage keeps them) and sent.
        assert gw.stop() == 0
        assert len(_received(sink)) == 5
    finally:
        gw.kill()


def test_drop_pending_traces_on_shutdown_counts_them_dropped(ports: Ports, sink: Sink) -> None:
    cfg = _config(ports, sink, {"decision_wait": "30s", "drop_pending_traces_on_shutdown": True,
                                "policies": [ALWAYS]})
    gw = GatewayProcess(cfg, ports=ports).start()
    try:
        send(f"127.0.0.1:{ports.grpc}", "traces", _request([(random.randbytes(16), 2, False) for _ in range(4)], "a"))
        gw.stop(signal.SIGTERM)
        assert not sink.received
        assert "4 pending trace(s) dropped at shutdown" in gw.stderr()
    finally:
        gw.kill()
