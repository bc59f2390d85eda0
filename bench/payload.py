"""Pre-serialized OTLP trace requests: built once before the clock starts, so the load generator
spends its time sending, not encoding. Every span gets a random trace id, so a sampler that decides
per trace id sees the spread a real fleet gives it (and one trace = one span keeps the Collector's
per-trace sampler counters comparable with our per-span ones).

With `trace_spans` (scenario f, tail sampling) a trace has 5-50 spans instead, spread over a few
consecutive requests as a fleet of services reporting one trace gives them: some traces hold a span
with an error status, some a span longer than 500 ms. `stream` then gives every trace a new id each
time the pool comes round, so no trace id comes back while its first coming is pending or remembered,
however small the pool and fast the target."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
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
    # Spans per trace, smallest and largest (uniform); None: every span its own trace.
    trace_spans: tuple[int, int] | None = None
    error_share: float = 0.05  # of traces with one span in error (trace_spans only)
    slow_share: float = 0.05  # of traces with one span longer than 500 ms (trace_spans only)
    spread: float = 3.0  # consecutive requests an average trace's spans are spread over


def _attributes(spec: PayloadSpec, rng: random.Random) -> list[KeyValue]:
    return [KeyValue(key=f"attr.{k}", value=AnyValue(string_value=_value(rng, spec.attribute_size)))
            for k in range(spec.attributes)]


def _value(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(size))


def _new_request(rng: random.Random) -> tuple[ExportTraceServiceRequest, list[Span]]:
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
    return req, ss.spans  # type: ignore[return-value]


def build_request(spec: PayloadSpec, rng: random.Random) -> bytes:
    req, spans = _new_request(rng)
    base = 1_700_000_000_000_000_000 + rng.randrange(10**12)
    for i in range(spec.spans_per_request):
        span = spans.add()
        span.trace_id = rng.randbytes(16)
        span.span_id = rng.randbytes(8)
        if i % 4:
            span.parent_span_id = rng.randbytes(8)
        span.name = f"GET /api/v1/items/{i % 16}"
        span.kind = Span.SPAN_KIND_SERVER
        span.start_time_unix_nano = base + i * 1000
        span.end_time_unix_nano = base + i * 1000 + rng.randrange(10**6, 10**8)
        span.attributes.extend(_attributes(spec, rng))
        span.status.code = Status.STATUS_CODE_OK
    return req.SerializeToString()


class _Trace:
    """One trace being laid out: its spans come out one at a time, root first."""

    def __init__(self, spec: PayloadSpec, rng: random.Random) -> None:
        assert spec.trace_spans is not None
        lo, hi = spec.trace_spans
        self.trace_id = rng.randbytes(16)
        self.root = rng.randbytes(8)
        self.size = rng.randint(lo, hi)
        self.emitted = 0
        self.start = 1_700_000_000_000_000_000 + rng.randrange(10**12)
        self.error_at = rng.randrange(self.size) if rng.random() < spec.error_share else -1
        self.slow_at = rng.randrange(self.size) if rng.random() < spec.slow_share else -1

    def emit(self, span: Span, spec: PayloadSpec, rng: random.Random) -> bool:
        """Fill `span` with this trace's next span; True when that was its last."""
        i = self.emitted
        span.trace_id = self.trace_id
        span.span_id = self.root if i == 0 else rng.randbytes(8)
        if i:
            span.parent_span_id = self.root
        span.name = f"GET /api/v1/items/{i % 16}"
        span.kind = Span.SPAN_KIND_SERVER if i == 0 else Span.SPAN_KIND_INTERNAL
        span.start_time_unix_nano = self.start + i * 1000
        # 1-100 ms; the slow span 600-900 ms, so the trace lasts longer than the 500 ms threshold.
        took = rng.randrange(6 * 10**8, 9 * 10**8) if i == self.slow_at else rng.randrange(10**6, 10**8)
        span.end_time_unix_nano = self.start + i * 1000 + took
        span.attributes.extend(_attributes(spec, rng))
        span.status.code = Status.STATUS_CODE_ERROR if i == self.error_at else Status.STATUS_CODE_UNSET
        self.emitted += 1
        return self.emitted == self.size


def build_traces(spec: PayloadSpec, rng: random.Random) -> list[bytes]:
    """`spec.pool` requests of exactly `spec.spans_per_request` spans, cut from one stream in which
    `lanes` traces are open at a time, a span from each in turn: a trace of s spans then covers
    s x lanes places in the stream, about `spread` requests for an average one. A trace open when the
    pool ends is cut there (the next time round it has new ids, so that is just a shorter trace)."""
    assert spec.trace_spans is not None
    mean = sum(spec.trace_spans) / 2
    lanes = [_Trace(spec, rng) for _ in range(max(1, round(spec.spread * spec.spans_per_request / mean)))]
    out = []
    for _ in range(spec.pool):
        req, spans = _new_request(rng)
        i = 0
        while i < spec.spans_per_request:
            for k in range(len(lanes)):
                if i == spec.spans_per_request:
                    break
                if lanes[k].emit(spans.add(), spec, rng):
                    lanes[k] = _Trace(spec, rng)
                i += 1
        out.append(req.SerializeToString())
    return out


def build_pool(spec: PayloadSpec) -> list[bytes]:
    rng = random.Random(spec.seed)
    if spec.trace_spans is not None:
        return build_traces(spec, rng)
    return [build_request(spec, rng) for _ in range(spec.pool)]


def _trace_id_offsets(body: bytes) -> list[tuple[int, list[int]]]:
    """Each trace id in a serialized request and the offsets of its copies."""
    req = ExportTraceServiceRequest.FromString(body)
    spans = [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    ids = dict.fromkeys(s.trace_id for s in spans)
    out = []
    for tid in ids:
        # Field 1 of Span, 16 bytes: tag 0x0a, length 0x10, then the id.
        needle, at, where = b"\x0a\x10" + tid, 0, []
        while (at := body.find(needle, at)) >= 0:
            where.append(at + 2)
            at += 18
        out.append((int.from_bytes(tid, "big"), where))
    assert sum(len(w) for _, w in out) == len(spans), "a trace id's bytes found elsewhere in the request"
    return out


def spans_per_trace(spec: PayloadSpec, pool: list[bytes]) -> float:
    """The pool's spans over its distinct trace ids (a trace cut at the pool's end counts as one)."""
    if spec.trace_spans is None:
        return 1.0
    ids = set()
    for body in pool:
        req = ExportTraceServiceRequest.FromString(body)
        ids.update(s.trace_id for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans)
    return spec.spans_per_request * len(pool) / len(ids)


def stream(spec: PayloadSpec, pool: list[bytes]) -> Iterator[bytes]:
    """The requests to send, round and round the pool. With `trace_spans`, every round gives every
    trace a new id (each id XORed with that round's random mask: the same trace in two requests keeps
    one id, two traces never share one), a few microseconds per span in the sender. The ids are
    located here, before the first request is asked for."""
    if spec.trace_spans is None:
        return itertools.cycle(pool)
    offsets = [_trace_id_offsets(body) for body in pool]
    return _renamed(pool, offsets, random.Random(spec.seed + 1))


def _renamed(pool: list[bytes], offsets: list[list[tuple[int, list[int]]]], rng: random.Random) -> Iterator[bytes]:
    yield from pool
    while True:
        mask = rng.getrandbits(128)
        for body, ids in zip(pool, offsets, strict=True):
            buf = bytearray(body)
            for tid, where in ids:
                new = (tid ^ mask).to_bytes(16, "big")
                for o in where:
                    buf[o:o + 16] = new
            yield bytes(buf)
