"""The gateway's own metrics, under the Collector's names so its dashboards work unchanged.

Components ask for bound counters once at creation (`labels()` is not free on the hot path).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

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


class Telemetry:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.registry.register(ProcessCollector())

        def counters(prefix: str, what: str, labels: list[str]) -> dict[str, Counter]:
            return {
                signal: Counter(f"{prefix}_{unit}", f"{what} ({unit})", labels, registry=r)
                for signal, unit in UNITS.items()
            }

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
        self._proc_dropped = counters("otelcol_processor_dropped", "Items dropped by a processor", ["processor"])
        self.queue_size = Gauge(
            "otelcol_exporter_queue_size",
            "Current size of the sending queue (in its sizer's units: requests by default)",
            ["exporter"], registry=r,
        )
        self.queue_capacity = Gauge(
            "otelcol_exporter_queue_capacity",
            "Fixed capacity of the sending queue (in its sizer's units: requests by default)", ["exporter"],
            registry=r,
        )
        self.batch_send_size = Histogram(
            "otelcol_processor_batch_batch_send_size", "Number of units in the batch",
            ["processor"], buckets=_BATCH_SIZE_BUCKETS, registry=r,
        )
        self.batch_send_size_bytes = Histogram(
            "otelcol_processor_batch_batch_send_size_bytes", "Number of bytes in the batch",
            ["processor"], buckets=_BATCH_BYTES_BUCKETS, registry=r,
        )
        self.batch_timeout_trigger = Counter(
            "otelcol_processor_batch_timeout_trigger_send", "Times the batch was sent due to a timeout trigger",
            ["processor"], registry=r,
        )
        self.batch_size_trigger = Counter(
            "otelcol_processor_batch_batch_size_trigger_send", "Times the batch was sent due to a size trigger",
            ["processor"], registry=r,
        )
        self._recv_failed_requests = Counter(
            "otelcol_gateway_receiver_failed_requests",
            "Requests refused before reaching a pipeline, by reason (bad data, auth, size, media type)",
            ["receiver", "transport", "reason"], registry=r,
        )
        self._proc_refused = counters(
            "otelcol_processor_refused", "Items refused by a processor (memory limit)", ["processor"]
        )
        self.storage_used = Gauge(
            "otelcol_gateway_storage_used_bytes", "Disk used by a file_storage's persistent queues", ["extension"],
            registry=r,
        )
        self.storage_capacity = Gauge(
            "otelcol_gateway_storage_capacity_bytes", "Disk bound of a file_storage (max_size_mib)", ["extension"],
            registry=r,
        )
        self._pipe_in = Counter(
            "otelcol_gateway_pipeline_incoming_items", "Items entering a pipeline", ["pipeline"], registry=r
        )
        self._pipe_out = Counter(
            "otelcol_gateway_pipeline_outgoing_items", "Items leaving a pipeline's processors for its exporters",
            ["pipeline"], registry=r,
        )
        self._unrouted = counters("otelcol_gateway_connector_unrouted", "Items a routing connector sent nowhere "
                                  "(no route matched and no default_pipelines)", ["connector"])

    def receiver_accepted(self, signal: str, receiver: str, transport: str) -> Counter:
        return self._recv_accepted[signal].labels(receiver, transport)

    def receiver_refused(self, signal: str, receiver: str, transport: str) -> Counter:
        return self._recv_refused[signal].labels(receiver, transport)

    def receiver_failed_request(self, receiver: str, transport: str, reason: str) -> Counter:
        return self._recv_failed_requests.labels(receiver, transport, reason)

    def exporter_sent(self, signal: str, exporter: str) -> Counter:
        return self._exp_sent[signal].labels(exporter)

    def exporter_send_failed(self, signal: str, exporter: str) -> Counter:
        return self._exp_failed[signal].labels(exporter)

    def exporter_enqueue_failed(self, signal: str, exporter: str) -> Counter:
        return self._exp_enqueue_failed[signal].labels(exporter)

    def processor_dropped(self, signal: str, processor: str) -> Counter:
        return self._proc_dropped[signal].labels(processor)

    def processor_refused(self, signal: str, processor: str) -> Counter:
        return self._proc_refused[signal].labels(processor)

    def pipeline_incoming(self, pipeline: str) -> Counter:
        return self._pipe_in.labels(pipeline)

    def pipeline_outgoing(self, pipeline: str) -> Counter:
        return self._pipe_out.labels(pipeline)

    def connector_unrouted(self, signal: str, connector: str) -> Counter:
        return self._unrouted[signal].labels(connector)
