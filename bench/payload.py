"""Pre-serialized OTLP trace requests: built once before the clock starts, so the load generator
spends its time sending, not encoding. Every span gets a random trace id, so a sampler that decides
per trace id sees the spread a real fleet gives it (and one trace = one span keeps the Collector's
per-trace sampler counters comparable with our per-span ones)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


@dataclass(frozen=True)
class PayloadSpec:
    spans_per_request: int = 100
    attributes: int = 8
    attribute_size: int = 24
    pool: int = 64
    seed: int = 6


def _value(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(size))


def build_request(spec: PayloadSpec, rng: random.Random) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([
        KeyValue(key="service.name", value=AnyValue(string_value=f"bench-svc-{rng.randrange(8)}")),
        KeyValue(key="host.name", value=AnyValue(string_value=f"host-{rng.randrange(100)}")),
        KeyValue(key="telemetry.sdk.language", value=AnyValue(string_value="python")),
    ])
    ss = rs.scope_spans.add()
    ss.scope.name = "bench"
    ss.scope.version = "1.0"
    base = 1_700_000_000_000_000_000 + rng.randrange(10**12)
    for i in range(spec.spans_per_request):
        span = ss.spans.add()
        span.trace_id = rng.randbytes(16)
        span.span_id = rng.randbytes(8)
        if i % 4:
            span.parent_span_id = rng.randbytes(8)
        span.name = f"GET /api/v1/items/{i % 16}"
        span.kind = Span.SPAN_KIND_SERVER
        span.start_time_unix_nano = base + i * 1000
        span.end_time_unix_nano = base + i * 1000 + rng.randrange(10**6, 10**8)
        span.attributes.extend(
            KeyValue(key=f"attr.{k}", value=AnyValue(string_value=_value(rng, spec.attribute_size)))
            for k in range(spec.attributes)
        )
        span.status.code = Status.STATUS_CODE_OK
    return req.SerializeToString()


def build_pool(spec: PayloadSpec) -> list[bytes]:
    rng = random.Random(spec.seed)
    return [build_request(spec, rng) for _ in range(spec.pool)]
