"""The gateway's own metrics, under the Collector's names so its dashboards work unchanged.

Components ask for bound counters once at creation (`labels()` is not free on the hot path).
`service::telemetry::metrics::level` is applied here, once: a metric above the configured level is
never registered, and the components get `OFF` in its place, which takes the same calls and does
nothing, so no request path asks what the level is.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.retry_state import RetryState

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import Tracer

Level = Literal["none", "basic", "normal", "detailed"]
_RANK: dict[Level, int] = {"none": 0, "basic": 1, "normal": 2, "detailed": 3}

# The lowest level each metric family is shown at. The Collector's (v0.161) come from its default
# views (service/internal/metricviews: the batch processor's metrics from `normal`, its bytes histogram
# only at `detailed`; the receiver, exporter, queue and process metrics at every level). The
# Collector's `detailed` also adds the HTTP and gRPC server and client instrumentation
# (`http_server_*`, `rpc_*`), which the gateway does not emit.
LEVELS: dict[str, Level] = {
    "otelcol_process_cpu_seconds": "basic",
    "otelcol_process_uptime_seconds": "basic",
    "otelcol_process_memory_rss": "basic",
    "otelcol_receiver_accepted": "basic",
    "otelcol_receiver_refused": "basic",
    "otelcol_exporter_sent": "basic",
    "otelcol_exporter_send_failed": "basic",
    "otelcol_exporter_enqueue_failed": "basic",
    "otelcol_exporter_queue_size": "basic",
    "otelcol_exporter_queue_capacity": "basic",
    # The memory limiter's refusals (the Collector's otelcol_processor_memory_limiter_refused_*: basic).
    "otelcol_processor_refused": "basic",
    # processorhelper's, with `processor` and `otel_signal` (otel.signal): the Collector emits them at every level.
    "otelcol_processor_incoming_items": "basic",
    "otelcol_processor_outgoing_items": "basic",
    "otelcol_processor_batch_batch_send_size": "normal",
    "otelcol_processor_batch_timeout_trigger_send": "normal",
    "otelcol_processor_batch_batch_size_trigger_send": "normal",
    "otelcol_processor_batch_batch_send_size_bytes": "detailed",
    # Ours, at `basic`: each counts what the delivery promise says must be counted (what was refused,
    # dropped on purpose, or sent nowhere), or bounds what the gateway holds (the disk of the queues),
    # as the Collector's queue size and capacity do; the pipeline counters are the pipeline-level
    # version of its processor incoming/outgoing items, also at every level.
    "otelcol_processor_dropped": "basic",
    "otelcol_gateway_receiver_failed_requests": "basic",
    "otelcol_gateway_storage_used_bytes": "basic",
    "otelcol_gateway_storage_capacity_bytes": "basic",
    "otelcol_gateway_pipeline_incoming_items": "basic",
    "otelcol_gateway_pipeline_outgoing_items": "basic",
    "otelcol_gateway_connector_unrouted": "basic",
    "otelcol_gateway_processor_ottl_errors": "basic",
    "otelcol_gateway_config_reloads": "basic",
    "otelcol_gateway_dropped_spans": "basic",
    # The tail sampler's (gateway/processors/tail_sampling_metrics.py): the Collector's at `basic`, as
    # its processor metrics are; ours with them, since they count what the delivery promise must.
    "otelcol_processor_tail_sampling_": "basic",
    "otelcol_gateway_processor_tail_sampling_": "basic",
}


def shown(family: str, level: Level) -> bool:
    """Whether `family` (a key of LEVELS) is exposed at `level`."""
    return _RANK[level] > 0 and _RANK[LEVELS[family]] <= _RANK[level]


class OwnTracer(Protocol):
    """The gateway's own tracer (gateway.own_telemetry.traces.Sampled): `keep()` is the sampler's
    decision, asked before any span is made; `tracer` makes the spans kept."""

    tracer: Tracer

    def keep(self) -> bool: ...


class SpanTap(Protocol):
    """Where a component may watch the gateway's own spans as they start and end (zpages' tracez):
    gateway.own_telemetry.traces.OwnTraces."""

    def watch(self, processor: SpanProcessor) -> None: ...

    def unwatch(self, processor: SpanProcessor) -> None: ...


class CounterLike(Protocol):
    def labels(self, *values: str) -> CounterLike: ...

    def inc(self, amount: float = 1) -> None: ...


class GaugeLike(Protocol):
    def labels(self, *values: str) -> GaugeLike: ...

    def set(self, value: float) -> None: ...


class HistogramLike(Protocol):
    def labels(self, *values: str) -> HistogramLike: ...

    def observe(self, amount: float) -> None: ...


class Off:
    """A metric the configured level does not show: every call a component makes, doing nothing."""

    __slots__ = ()

    def labels(self, *values: str) -> Off:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


OFF = Off()


class Both:
    """Two counters counted as one: a drop in its own family and in `otelcol_gateway_dropped_spans`."""

    __slots__ = ("_a", "_b")

    def __init__(self, a: CounterLike, b: CounterLike) -> None:
        self._a, self._b = a, b

    def labels(self, *values: str) -> Both:
        return self

    def inc(self, amount: float = 1) -> None:
        self._a.inc(amount)
        self._b.inc(amount)


# Why a span was dropped (`otelcol_gateway_dropped_spans_total{reason}`), one word per place that drops.
DropReason = Literal["sampled_out", "filtered", "refused_at_edge", "permanent_failure", "retries_exhausted",
                     "shutdown", "unrouted"]

# The unit each signal is counted in, as the Collector names it in metric names.
UNITS = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}

_BATCH_SIZE_BUCKETS = (10, 25, 50, 75, 100, 250, 500, 750, 1000, 2000, 3000, 4000, 5000, 6000, 7000,
                       8000, 9000, 10000, 20000, 30000, 50000, 100000)
_BATCH_BYTES_BUCKETS = (10, 25, 50, 75, 100, 250, 500, 750, 1000, 2000, 3000, 4000, 5000, 6000, 7000,
                        8000, 9000, 10000, 20000, 30000, 50000, 100000, 200000, 300000, 400000, 500000,
                        600000, 700000, 800000, 900000, 1000000, 2000000, 3000000, 4000000, 5000000)


# The Collector exposes no `_created` series; neither do we.
disable_created_metrics()  # type: ignore[no-untyped-call]


_PAGE = os.sysconf("SC_PAGE_SIZE")


def read_rss() -> int:
    """This process's resident set size in bytes (one read of /proc/self/statm); OSError without /proc."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


class ProcessCollector(Collector):
    """otelcol_process_* from the kernel's view of this process."""

    def __init__(self) -> None:
        self._start = time.time()

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        yield CounterMetricFamily(
            "otelcol_process_cpu_seconds", "Total CPU user and system time in seconds",
            value=usage.ru_utime + usage.ru_stime,
        )
        yield CounterMetricFamily(
            "otelcol_process_uptime_seconds", "Uptime of the process", value=time.time() - self._start
        )
        try:
            rss = read_rss()
        except OSError:
            rss = usage.ru_maxrss * 1024
        yield GaugeMetricFamily("otelcol_process_memory_rss", "Total physical memory (resident set size)", value=rss)


class ItemCounts:
    """One processor's incoming and outgoing items (processorhelper's), plain integers its stage adds to: the
    event loop is their only writer, so no lock, and no layer around the stage. Read at scrape time."""

    __slots__ = ("incoming", "outgoing")

    def __init__(self) -> None:
        self.incoming = 0
        self.outgoing = 0


class ProcessorItems(Collector):
    """`otelcol_processor_incoming_items` and `_outgoing_items` from the stages' `ItemCounts`, one per
    processor and signal: the stages of one processor in several pipelines, and those of the graphs a reload
    replaced, add to the same one, so the totals never go back."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], ItemCounts] = {}

    def of(self, processor: str, signal: str) -> ItemCounts:
        return self._counts.setdefault((processor, signal), ItemCounts())

    def collect(self) -> Iterator[CounterMetricFamily]:
        labels = ["processor", "otel_signal"]
        incoming = CounterMetricFamily("otelcol_processor_incoming_items", "Number of items passed to the processor.",
                                       labels=labels)
        outgoing = CounterMetricFamily("otelcol_processor_outgoing_items",
                                       "Number of items emitted from the processor.", labels=labels)
        for (processor, signal), counts in list(self._counts.items()):
            incoming.add_metric([processor, signal], counts.incoming)
            outgoing.add_metric([processor, signal], counts.outgoing)
        yield incoming
        yield outgoing


class Telemetry:
    """The metrics of one gateway process, those above `level` left out (see LEVELS)."""

    def __init__(self, registry: CollectorRegistry | None = None, level: Level = "normal") -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.level: Level = level
        # The gateway's own spans (`service::telemetry::traces`), set by the service; None: no span is made.
        self.tracer: OwnTracer | None = None
        # Set with `tracer`: where the own spans can be watched; None with own traces off.
        self.own_spans: SpanTap | None = None
        # Per exporter id, what its retries are doing now (not a metric: the admin endpoint shows it).
        self.retries: dict[str, RetryState] = {}
        r = self.registry
        if shown("otelcol_process_cpu_seconds", level):
            r.register(ProcessCollector())

        def counter(name: str, what: str, labels: list[str], family: str | None = None) -> CounterLike:
            return Counter(name, what, labels, registry=r) if shown(family or name, level) else OFF

        def gauge(name: str, what: str, labels: list[str]) -> GaugeLike:
            return Gauge(name, what, labels, registry=r) if shown(name, level) else OFF

        def histogram(name: str, what: str, labels: list[str], buckets: tuple[int, ...]) -> HistogramLike:
            return Histogram(name, what, labels, buckets=buckets, registry=r) if shown(name, level) else OFF

        def counters(prefix: str, what: str, labels: list[str]) -> dict[str, CounterLike]:
            return {signal: counter(f"{prefix}_{unit}", f"{what} ({unit})", labels, prefix)
                    for signal, unit in UNITS.items()}

        self._recv_accepted = counters(
            "otelcol_receiver_accepted", "Items successfully pushed into the pipelines", ["receiver", "transport"]
        )
        self._recv_refused = counters(
            "otelcol_receiver_refused", "Items that could not be pushed into the pipelines", ["receiver", "transport"]
        )
        self._exp_sent = counters("otelcol_exporter_sent", "Items successfully sent to destination", ["exporter"])
        self._exp_failed = counters(
            "otelcol_exporter_send_failed", "Items the exporter failed to send to destination", ["exporter"]
        )
        self._exp_enqueue_failed = counters(
            "otelcol_exporter_enqueue_failed", "Items that failed to be added to the sending queue", ["exporter"]
        )
        # Counted by the stages themselves (one `+=` per batch on each side), exported at scrape time.
        self._proc_items: ProcessorItems | None = None
        if shown("otelcol_processor_incoming_items", level):
            self._proc_items = ProcessorItems()
            r.register(self._proc_items)
        self._proc_dropped = counters("otelcol_processor_dropped", "Items dropped by a processor", ["processor"])
        self.queue_size = gauge(
            "otelcol_exporter_queue_size",
            "Current size of the sending queue (in its sizer's units: requests by default)", ["exporter"],
        )
        self.queue_capacity = gauge(
            "otelcol_exporter_queue_capacity",
            "Fixed capacity of the sending queue (in its sizer's units: requests by default)", ["exporter"],
        )
        self.batch_send_size = histogram(
            "otelcol_processor_batch_batch_send_size", "Number of units in the batch", ["processor"],
            _BATCH_SIZE_BUCKETS,
        )
        self.batch_send_size_bytes = histogram(
            "otelcol_processor_batch_batch_send_size_bytes", "Number of bytes in the batch", ["processor"],
            _BATCH_BYTES_BUCKETS,
        )
        self.batch_timeout_trigger = counter(
            "otelcol_processor_batch_timeout_trigger_send", "Times the batch was sent due to a timeout trigger",
            ["processor"],
        )
        self.batch_size_trigger = counter(
            "otelcol_processor_batch_batch_size_trigger_send", "Times the batch was sent due to a size trigger",
            ["processor"],
        )
        self._recv_failed_requests = counter(
            "otelcol_gateway_receiver_failed_requests",
            "Requests refused before reaching a pipeline, by reason (bad data, auth, size, media type)",
            ["receiver", "transport", "reason"],
        )
        self._proc_refused = counters(
            "otelcol_processor_refused", "Items refused by a processor (memory limit)", ["processor"]
        )
        self.storage_used = gauge(
            "otelcol_gateway_storage_used_bytes", "Disk used by a file_storage's persistent queues", ["extension"],
        )
        self.storage_capacity = gauge(
            "otelcol_gateway_storage_capacity_bytes", "Disk bound of a file_storage (max_size_mib)", ["extension"],
        )
        self._pipe_in = counter(
            "otelcol_gateway_pipeline_incoming_items", "Items entering a pipeline", ["pipeline"]
        )
        self._pipe_out = counter(
            "otelcol_gateway_pipeline_outgoing_items", "Items leaving a pipeline's processors for its exporters",
            ["pipeline"],
        )
        self._ottl_errors = counter(
            "otelcol_gateway_processor_ottl_errors", "OTTL statements or conditions that failed on an item and "
            "were skipped (error_mode: ignore or silent)", ["processor", "signal"],
        )
        self.config_reloads = counter(
            "otelcol_gateway_config_reloads", "Config reloads (SIGHUP or a changed config file), by outcome: "
            "applied, invalid (refused by validate), failed (the new graph did not start)", ["outcome"],
        )
        self._dropped_spans = counter(
            "otelcol_gateway_dropped_spans", "Spans dropped, by component and reason: sampled_out, filtered "
            "(processors), refused_at_edge (receivers), permanent_failure, retries_exhausted, shutdown "
            "(exporters), unrouted (routing connector)", ["component", "reason"],
        )
        self._unrouted = counters("otelcol_gateway_connector_unrouted", "Items a routing connector sent nowhere "
                                  "(no route matched and no default_pipelines)", ["connector"])

    def retry_state(self, exporter: str) -> RetryState:
        return self.retries.setdefault(exporter, RetryState())

    def ottl_errors(self, processor: str, signal: str) -> CounterLike:
        return self._ottl_errors.labels(processor, signal)

    def receiver_accepted(self, signal: str, receiver: str, transport: str) -> CounterLike:
        return self._recv_accepted[signal].labels(receiver, transport)

    def receiver_refused(self, signal: str, receiver: str, transport: str) -> CounterLike:
        return self._recv_refused[signal].labels(receiver, transport)

    def receiver_failed_request(self, receiver: str, transport: str, reason: str) -> CounterLike:
        return self._recv_failed_requests.labels(receiver, transport, reason)

    def exporter_sent(self, signal: str, exporter: str) -> CounterLike:
        return self._exp_sent[signal].labels(exporter)

    def exporter_send_failed(self, signal: str, exporter: str) -> CounterLike:
        return self._exp_failed[signal].labels(exporter)

    def exporter_enqueue_failed(self, signal: str, exporter: str) -> CounterLike:
        return self._exp_enqueue_failed[signal].labels(exporter)

    def processor_items(self, signal: str, processor: str) -> ItemCounts:
        """Where a processor's stage counts what it is passed and what it emits; at a level that hides
        them, counts nobody reads."""
        return self._proc_items.of(processor, signal) if self._proc_items is not None else ItemCounts()

    def processor_dropped(self, signal: str, processor: str) -> CounterLike:
        return self._proc_dropped[signal].labels(processor)

    def processor_refused(self, signal: str, processor: str) -> CounterLike:
        return self._proc_refused[signal].labels(processor)

    def pipeline_incoming(self, pipeline: str) -> CounterLike:
        return self._pipe_in.labels(pipeline)

    def pipeline_outgoing(self, pipeline: str) -> CounterLike:
        return self._pipe_out.labels(pipeline)

    def connector_unrouted(self, signal: str, connector: str) -> CounterLike:
        return self._unrouted[signal].labels(connector)

    def dropped_spans(self, signal: str, component: str, reason: DropReason, counter: CounterLike) -> CounterLike:
        """`counter`, which counts a drop of `signal` items, also counting spans in
        `otelcol_gateway_dropped_spans_total{component, reason}` (traces only: the family counts spans)."""
        if signal != "traces" or isinstance(self._dropped_spans, Off):
            return counter
        return Both(counter, self._dropped_spans.labels(component, reason))
