"""Per-span cost of each processor, in microseconds: `python -m bench.processors [--spans 100]`.

A realistic request (one resource with 6 attributes, `--spans` spans with 10 attributes each, a few
traces of several spans) is parsed once, as the receiver hands it over; each processor's `process()`
is timed on it, then `process()` plus serializing the result (what an exporter then pays for a
changed batch; an unchanged batch keeps its bytes). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipelines.batch import Batch, RequestContext
from pipelines.processors import anyvalue
from pipelines.processors.actions import ActionConfig
from pipelines.processors.attributes import AttributesProcessor
from pipelines.processors.attributes import Config as AttributesConfig
from pipelines.processors.matching import MatchProperties
from pipelines.processors.probabilistic_sampler import Config as SamplerConfig
from pipelines.processors.probabilistic_sampler import ProbabilisticSampler
from pipelines.processors.resource import Config as ResourceConfig
from pipelines.processors.resource import ResourceProcessor


def build(n_spans: int) -> bytes:
    rng = random.Random(1)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in {"service.name": "worker", "service.version": "1.4.2", "host.name": "ip-10-0-0-1",
                 "k8s.pod.name": "worker-7d9f", "k8s.namespace.name": "prod", "library.language": "python"}.items():
        anyvalue.put(rs.resource.attributes, k, anyvalue.from_raw(v))
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "hatchet_sdk", "1.0.0"
    trace_id = rng.randbytes(16)
    for i in range(n_spans):
        if i % 5 == 0:
            trace_id = rng.randbytes(16)
        span = ss.spans.add(trace_id=trace_id, span_id=rng.randbytes(8), name=f"hatchet.step-{i % 7}", kind=2,
                            start_time_unix_nano=1_700_000_000_000_000_000 + i,
                            end_time_unix_nano=1_700_000_000_500_000_000 + i)
        for key, value in {"hatchet.workflow_name": "etl", "hatchet.step_run_id": f"run-{i}",
                     "hatchet.workflow_run_id": "wr-1", "hatchet.worker_id": "w-3", "hatchet.tenant_id": "t-9",
                     "hatchet.retry_count": i % 3, "hatchet.payload": '{"input": "' + "x" * 200 + '"}',
                     "http.method": "GET", "http.status_code": 200, "duration.ms": 12.5}.items():
            anyvalue.put(span.attributes, key, anyvalue.from_raw(value))
    return req.SerializeToString()


def attributes(*actions: dict[str, Any], **match: Any) -> Any:
    return AttributesProcessor(AttributesConfig(actions=tuple(ActionConfig(**a) for a in actions), **match), "traces")


CASES: dict[str, Callable[[], Any]] = {
    "attributes: insert deployment.environment (seed 004)": lambda: attributes(
        {"key": "deployment.environment", "value": "staging", "action": "insert"}),
    "attributes: delete hatchet.payload": lambda: attributes({"key": "hatchet.payload", "action": "delete"}),
    "attributes: hash hatchet.payload": lambda: attributes({"key": "hatchet.payload", "action": "hash"}),
    "attributes: delete by pattern ^hatchet\\.(payload|retry)": lambda: attributes(
        {"pattern": "^hatchet\\.(payload|retry)", "action": "delete"}),
    "attributes: include regexp span_names, upsert": lambda: attributes(
        {"key": "x", "value": 1, "action": "upsert"},
        include=MatchProperties("regexp", span_names=("step-[0-3]$",))),
    "attributes: no-op (delete absent key; passes through)": lambda: attributes(
        {"key": "absent", "action": "delete"}),
    "resource: upsert deployment.environment": lambda: ResourceProcessor(ResourceConfig(attributes=(
        ActionConfig(key="deployment.environment", value="prod", action="upsert"),)), "traces"),
    "resource: no-op (passes through)": lambda: ResourceProcessor(ResourceConfig(attributes=(
        ActionConfig(key="absent", action="delete"),)), "traces"),
    "probabilistic_sampler: hash_seed 25%": lambda: ProbabilisticSampler(
        SamplerConfig(sampling_percentage=25, hash_seed=42)),
    "probabilistic_sampler: proportional 25%": lambda: ProbabilisticSampler(SamplerConfig(sampling_percentage=25)),
    "probabilistic_sampler: proportional 100%": lambda: ProbabilisticSampler(SamplerConfig(sampling_percentage=100)),
}


def per_span_us(proc: Any, batch: Batch, n: int, serialize: bool, seconds: float) -> float:
    rounds = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        out = proc.process(batch)
        if serialize and out is not None:
            out.data()
        rounds += 1
        now = time.perf_counter()
        if now >= end:
            return (now - start) / rounds / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = ap.parse_args()
    data = build(args.spans)
    batch = Batch("traces", data, args.spans, RequestContext("team-a"),
                  ExportTraceServiceRequest.FromString(data))
    print(f"request: {args.spans} spans x 10 attributes, {len(data)} bytes; Python {sys.version.split()[0]}")
    width = max(map(len, CASES))
    print(f"{'processor':<{width}}  {'process us/span':>15}  {'+serialize us/span':>18}")
    for name, make in CASES.items():
        proc = make()
        a = per_span_us(proc, batch, args.spans, False, args.seconds)
        b = per_span_us(proc, batch, args.spans, True, args.seconds)
        print(f"{name:<{width}}  {a:>15.2f}  {b:>18.2f}")


if __name__ == "__main__":
    main()
