"""The gateway's own spans: a span per received request (receiver, transport, items, outcome) and per
export call (exporter, signal, items, outcome), through the SDK's tracer, its sampler and its span
processors, which export them over OTLP themselves: they never enter the gateway's pipelines.

With `service::telemetry::traces` off (no processors, or `level: none`) there is no tracer: the
components keep their untraced paths and create no span object at all.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, Tracer

from gateway.config.telemetry import TracesTelemetry
from gateway.own_telemetry.exporters import exporter, ratio

SCOPE = "otel-trace-gateway"

# The W3C form, strictly: version 00, lowercase hex, neither id all zeros.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

# What the receiver tells the client, as the span's outcome; anything else is an error status.
_OK = "ok"
RECEIVED_NAMES = {"traces": "TraceDataReceived", "metrics": "MetricsReceived", "logs": "LogsReceived"}


def link_to(traceparent: str | None) -> list[Link]:
    """A link to the client's span named by an incoming `traceparent`, never a parent: a client must
    not decide what the gateway samples nor put the gateway's spans in its traces. A malformed header
    links nothing."""
    if not traceparent:
        return []
    m = _TRACEPARENT.fullmatch(traceparent.strip())
    if m is None:
        return []
    trace_id, span_id = int(m[1], 16), int(m[2], 16)
    if trace_id == 0 or span_id == 0:
        return []
    ctx = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(m[3], 16) & 1))
    return [Link(ctx)]


class Sampled:
    """The gateway's tracer and its sampling ratio: `keep()` first, then a span only for what is kept."""

    __slots__ = ("keep", "tracer")

    def __init__(self, tracer: Tracer, ratio: float) -> None:
        self.tracer = tracer
        draw = random.random
        self.keep: Callable[[], bool] = (lambda: True) if ratio >= 1.0 else (lambda: draw() < ratio)


def end(span: trace.Span, outcome: str, items: int) -> None:
    span.set_attribute("items", items)
    span.set_attribute("outcome", outcome)
    if outcome != _OK:
        span.set_status(Status(StatusCode.ERROR, outcome))
    span.end()


def receiver_span(tracer: Tracer, receiver: str, transport: str, signal: str,
                  traceparent: str | None) -> trace.Span:
    return tracer.start_span(f"receiver/{receiver}/{RECEIVED_NAMES[signal]}", kind=SpanKind.SERVER,
                             attributes={"receiver": receiver, "transport": transport, "signal": signal},
                             links=link_to(traceparent))


def exporter_span(tracer: Tracer, exporter_id: str, signal: str) -> trace.Span:
    return tracer.start_span(f"exporter/{exporter_id}/{signal}", kind=SpanKind.CLIENT,
                             attributes={"exporter": exporter_id, "signal": signal})


def _processor(config: TracesTelemetry, index: int) -> SpanProcessor:
    p = config.processors[index]
    if p.batch is not None:
        b = p.batch
        assert b.exporter.otlp is not None
        return BatchSpanProcessor(exporter(b.exporter.otlp, "traces"), max_queue_size=b.max_queue_size,
                                  schedule_delay_millis=b.schedule_delay, max_export_batch_size=b.max_export_batch_size,
                                  export_timeout_millis=b.export_timeout)
    assert p.simple is not None and p.simple.exporter.otlp is not None
    return SimpleSpanProcessor(exporter(p.simple.exporter.otlp, "traces"))


class _Tee(SpanProcessor):
    """The span processors watching the own spans (`OwnTraces.watch`): a tuple, replaced whole, so a
    span never sees the list change under it."""

    def __init__(self) -> None:
        self.processors: tuple[SpanProcessor, ...] = ()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for p in self.processors:
            p.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for p in self.processors:
            p.on_end(span)


class OwnTraces:
    """A tracer provider of our own (never the process-global one), its processors added at `start`."""

    def __init__(self, config: TracesTelemetry, resource: Resource) -> None:
        self.config = config
        on = config.level != "none" and bool(config.processors)
        # The sampler decides before a span is made (`Sampled.keep`): an unsampled request costs one random
        # draw, where the SDK's sampler would cost a span context and its ids (some 3 us a request).
        self.ratio = ratio(config.sampler)
        self.provider = TracerProvider(sampler=ALWAYS_ON, resource=resource) if on and self.ratio > 0 else None
        self.tracer: Sampled | None = (
            Sampled(self.provider.get_tracer(SCOPE), self.ratio) if self.provider is not None else None)
        self._tee: _Tee | None = None

    def watch(self, processor: SpanProcessor) -> None:
        """Also hand every own span to `processor` until `unwatch` (an extension, which a reload may
        replace: the SDK's provider can add a processor but never remove one)."""
        if self.provider is None:
            return
        if self._tee is None:
            self._tee = _Tee()
            self.provider.add_span_processor(self._tee)
        self._tee.processors = (*self._tee.processors, processor)

    def unwatch(self, processor: SpanProcessor) -> None:
        if self._tee is not None:
            self._tee.processors = tuple(p for p in self._tee.processors if p is not processor)

    def start(self) -> None:
        if self.provider is not None:
            for i in range(len(self.config.processors)):
                self.provider.add_span_processor(_processor(self.config, i))

    def shutdown(self) -> None:
        """Flush what is held and stop the processors' threads (safe to call twice)."""
        if self.provider is not None:
            self.provider.shutdown()
            self.provider = None

