"""The gateway's own spans held in memory for zpages' `/debug/tracez`, as the Collector's (OpenCensus)
tracez keeps them: per span name, the spans running now, a count of the ended ones in each latency
bucket and of those with an error status, and the last few of each bucket and of the errors."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

# The lower bounds of OpenCensus' latency buckets, in nanoseconds, and how tracez labels them.
BUCKETS_NS = (0, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000, 10_000_000_000,
              100_000_000_000)
BUCKET_LABELS = (">0s", ">10µs", ">100µs", ">1ms", ">10ms", ">100ms", ">1s", ">10s", ">1m40s")
# Spans kept per bucket and per name's errors (OpenCensus keeps 10 of each).
SAMPLES = 10
# Span names tracked at most: ours are a few per receiver and exporter; past this, new names are counted
# under none, so a name that carried an unbounded value could not grow the store.
MAX_NAMES = 1024


@dataclass
class Summary:
    """One span name: `running` by span id, `latency` counts per bucket, `errors` count, and samples."""

    running: dict[int, Span] = field(default_factory=dict)
    latency: list[int] = field(default_factory=lambda: [0] * len(BUCKETS_NS))
    errors: int = 0
    latency_samples: list[deque[ReadableSpan]] = field(
        default_factory=lambda: [deque(maxlen=SAMPLES) for _ in BUCKETS_NS])
    error_samples: deque[ReadableSpan] = field(default_factory=lambda: deque(maxlen=SAMPLES))


def bucket(duration_ns: int) -> int:
    """The index of the latency bucket `duration_ns` falls in."""
    i = 0
    while i + 1 < len(BUCKETS_NS) and duration_ns >= BUCKETS_NS[i + 1]:
        i += 1
    return i


class TracezStore(SpanProcessor):
    """A span processor that keeps the summaries; read with `snapshot()` from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, Summary] = {}

    def _summary(self, name: str) -> Summary | None:
        s = self._names.get(name)
        if s is None and len(self._names) < MAX_NAMES:
            s = self._names[name] = Summary()
        return s

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            s = self._summary(span.name)
            if s is not None:
                s.running[span.context.span_id] = span

    def on_end(self, span: ReadableSpan) -> None:
        duration = (span.end_time or 0) - (span.start_time or 0)
        with self._lock:
            s = self._summary(span.name)
            if s is None:
                return
            if span.context is not None:
                s.running.pop(span.context.span_id, None)
            if span.status.status_code is StatusCode.ERROR:
                s.errors += 1
                s.error_samples.append(span)
            else:
                i = bucket(duration)
                s.latency[i] += 1
                s.latency_samples[i].append(span)

    def snapshot(self) -> dict[str, Summary]:
        """A copy of every name's summary, by name."""
        with self._lock:
            return {name: Summary(dict(s.running), list(s.latency), s.errors,
                                  [deque(d, maxlen=SAMPLES) for d in s.latency_samples],
                                  deque(s.error_samples, maxlen=SAMPLES))
                    for name, s in sorted(self._names.items())}
