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
    cfg = _config(ports, sink, {"decision_wait": "2s", "storage": "file_storage/t", "policies": [ERRORS]}, tmp_path)
    traces = [(random.randbytes(16), 3, t % 3 == 0) for t in range(60)]
    halves = [_request(traces, "a"), _request(traces, "b", first=False)]
    kept = {sp for req in halves for rs in req.resource_spans for ss in rs.scope_spans for sp in
            (s.span_id for s in ss.spans if s.status.code == 2)}
    gw = GatewayProcess(cfg, ports=ports).start()
    try:
        for req in halves:
            send(f"127.0.0.1:{ports.grpc}", "traces", req)  # acknowledged: held on disk
        gw.kill()  # SIGKILL well before decision_wait
    finally:
        gw.kill()
    assert not sink.received and list(tmp_path.glob("processor_tail_sampling/*.tsl"))
    gw = GatewayProcess(cfg, ports=ports).start()
    try:
        wait_until(lambda: len(_received(sink)) >= len(kept), 15, "the kept traces after the restart")
        time.sleep(0.5)
        assert sorted(_received(sink)) == sorted(kept)  # each once, nothing of the others
        assert gw.metric("otelcol_processor_dropped_spans_total", processor="tail_sampling") == 360 - len(kept)
        gw.kill()  # again, after the decisions: they are on disk too
    finally:
        gw.kill()
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
    cfg = _config(ports, sink, {"decision_wait": "4s", "max_pending_bytes": bound, "policies": [ALWAYS]})
    giant = random.randbytes(16)
    gw = GatewayProcess(cfg, ports=ports).start()
    endpoint = f"127.0.0.1:{ports.grpc}"
    try:
        sent: set[bytes] = set()
        refusals = 0
        # A 50,000-span trace (about 5 MB) in 10 requests: more than max_pending_bytes.
        for part in range(10):
            req = _request([(giant, 5000, False)], f"g{part}", first=part == 0, name_size=60)
            refusals += _send_retrying(endpoint, req)
            sent |= _ids(req)
        # Small traces sent now are decided at their own decision_wait, whatever the giant one does.
        small = _request([(random.randbytes(16), 2, False) for _ in range(20)], "small")
        t0 = time.monotonic()
        refusals += _send_retrying(endpoint, small)
        sent |= _ids(small)
        wait_until(lambda: _ids(small) <= set(_received(sink)), 10, "the small traces")
        waited = time.monotonic() - t0
        assert 3.8 <= waited <= 5.5, f"small traces decided after {waited:.2f}s (decision_wait 4s)"
        wait_until(lambda: set(_received(sink)) == sent, 20, "every acknowledged span")
        got = _received(sink)
        assert len(got) == len(sent), "no span twice"
        assert refusals > 0
        assert gw.metric("otelcol_gateway_processor_tail_sampling_refused_spans_total",
                         reason="max_pending_bytes") == 5000 * refusals
        assert gw.metric("otelcol_gateway_processor_tail_sampling_decided_early_traces_total",
                         reason="max_pending_bytes") >= 1
        assert gw.metric("otelcol_gateway_processor_tail_sampling_pending_bytes") <= bound
        assert gw.stop() == 0
    finally:
        gw.kill()


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
