"""Scenario f's parts that need no processes: the multi-span trace payload and its per-round trace ids,
the sampled-out and pending counts read from either side's metrics, and the memory-per-pending-span
table. (`python -m bench run --smoke` runs f end to end.)"""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from bench import report
from bench.payload import PayloadSpec, build_pool, spans_per_trace, stream
from bench.runner import RunResult, dropped_in_pipeline, pending_traces
from bench.scenarios import SCENARIOS


def _spans(body: bytes) -> list[Span]:
    req = ExportTraceServiceRequest.FromString(body)
    return [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_traces_of_5_to_50_spans_spread_over_requests_with_new_ids_each_round() -> None:
    spec = PayloadSpec(50, pool=16, trace_spans=(5, 50), error_share=0.3, slow_share=0.3)
    pool = build_pool(spec)
    rounds = list(itertools.islice(stream(spec, pool), 3 * len(pool)))
    assert rounds[:len(pool)] == pool
    where: dict[bytes, set[int]] = defaultdict(set)
    size: dict[bytes, int] = defaultdict(int)
    errors, slow = set(), set()
    for k, body in enumerate(rounds):
        spans = _spans(body)
        assert len(spans) == 50  # --spans is still spans per request
        for s in spans:
            where[s.trace_id].add(k // len(pool) * 1000 + k % len(pool))
            size[s.trace_id] += 1
            if s.status.code == Status.STATUS_CODE_ERROR:
                errors.add(s.trace_id)
            if s.end_time_unix_nano - s.start_time_unix_nano > 500_000_000:
                slow.add(s.trace_id)
    # Each round has its own ids: no trace id is in two rounds, and every round has as many traces.
    assert all(len({i // 1000 for i in w}) == 1 for w in where.values())
    assert len(where) == 3 * round(len(pool) * 50 / spans_per_trace(spec, pool))
    # Whole traces (not cut at the pool's edge) have 5-50 spans, over a few consecutive requests.
    inner = [t for t, w in where.items() if min(w) % 1000 > 0 and max(w) % 1000 < len(pool) - 1]
    assert inner and all(5 <= size[t] <= 50 for t in inner)
    spread = [max(where[t]) - min(where[t]) + 1 for t in inner]
    assert all(len(where[t]) == s for t, s in zip(inner, spread, strict=True))  # consecutive requests
    assert 2 <= sum(spread) / len(spread) <= 6
    assert errors and slow and len(errors) < len(where) / 2


def test_one_span_per_trace_without_trace_spans() -> None:
    spec = PayloadSpec(10, pool=4)
    pool = build_pool(spec)
    assert spans_per_trace(spec, pool) == 1.0
    assert list(itertools.islice(stream(spec, pool), 8)) == pool + pool


M = dict[str, list[tuple[dict[str, str], float]]]


def test_sampled_out_and_pending_from_the_collectors_tail_sampler_metrics() -> None:
    def spans(policy: str, sampled: str, v: float) -> tuple[dict[str, str], float]:
        return {"policy": policy, "sampled": sampled}, v

    # sample_on_first_match: 1,000 spans in; errors keeps 50, slow 40 of the 950 left, ten-percent 91 of 910.
    m: M = {
        "otelcol_processor_tail_sampling_count_spans_sampled_total": [
            spans("errors", "true", 50), spans("errors", "false", 950), spans("slow", "true", 40),
            spans("slow", "false", 910), spans("ten-percent", "true", 91), spans("ten-percent", "false", 819)],
        "otelcol_processor_tail_sampling_new_trace_id_received_total": [({}, 120)],
        "otelcol_processor_tail_sampling_global_count_traces_sampled_total": [
            ({"sampled": "true"}, 20), ({"sampled": "false"}, 80)],
        "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total": [({}, 5)],
    }
    assert dropped_in_pipeline(m) == 819
    assert pending_traces(m) == 15
    assert pending_traces({}) is None


def test_the_gateways_refused_spans_are_not_sampled_out() -> None:
    m: M = {
        "otelcol_gateway_pipeline_incoming_items_total": [({"pipeline": "traces"}, 1500)],
        "otelcol_gateway_pipeline_outgoing_items_total": [({"pipeline": "traces"}, 180)],
        "otelcol_processor_refused_spans_total": [({"processor": "tail_sampling"}, 500)],
    }
    assert dropped_in_pipeline(m) == 820


def test_memory_per_pending_span_is_reported_side_by_side(tmp_path: Path) -> None:
    mib = 2**20

    def run(target: str, before: int, steady: int, traces: float, source: str) -> RunResult:
        return RunResult("f", target, spans=50, accepted=500_000, delivered=90_000, dropped=410_000,
                         cpu_seconds=5.0, load_seconds=5.0, steady_rss_process=steady * mib,
                         peak_rss_process=steady * mib, rss_before_process=before * mib, pending_traces=traces,
                         spans_per_trace=25.0, pending_spans=traces * 25 if traces else 200_000.0,
                         pending_source=source)

    gw, col = run("gateway", 50, 150, 8000, "metrics"), run("collector", 60, 860, 0, "estimate")
    assert gw.bytes_per_pending_span == 100 * mib / 200_000
    report.write_grid([gw, col], tmp_path, "python -m bench run --scenarios f", "test")
    md = (tmp_path / "RESULTS.md").read_text()
    assert f"#### f: {SCENARIOS['f'].title}" in md
    assert ("| 50 | gateway | 524 | 4,194 | **8.00x** | 200,000 (8,000 traces x 25.0) "
            "| 200,000 (estimate: 100,000/s x decision_wait) | 50.0 → 150.0 | 60.0 → 860.0 |") in md
