"""`service::telemetry::metrics::readers: [{periodic: ...}]`: the gateway's metrics (one Prometheus
registry, `gateway.telemetry`) pushed over OTLP every `interval` by the SDK's metric exporter.

The registry stays the one source: each reader reads it as a scrape would and turns the families into
the SDK's `MetricsData` (counters as cumulative monotonic sums under the Collector's names without
`_total`, gauges, histograms with their buckets), on a thread of its own, and once more at shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric as Family

from gateway.config.telemetry import PeriodicReader
from gateway.own_telemetry.exporters import exporter

log = logging.getLogger("gateway.telemetry")

SCOPE = InstrumentationScope("otel-trace-gateway")


def _labels(labels: dict[str, str], drop: str = "") -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != drop}


def _histogram(family: Family, start: int, now: int) -> list[HistogramDataPoint]:
    """Prometheus' cumulative `le` buckets of each series as OTLP's per-bucket counts."""
    buckets: dict[tuple[tuple[str, str], ...], list[tuple[float, int]]] = {}
    sums: dict[tuple[tuple[str, str], ...], float] = {}
    counts: dict[tuple[tuple[str, str], ...], int] = {}
    for s in family.samples:
        key = tuple(sorted(_labels(s.labels, "le").items()))
        if s.name.endswith("_bucket"):
            buckets.setdefault(key, []).append((float(s.labels["le"]), int(s.value)))
        elif s.name.endswith("_sum"):
            sums[key] = float(s.value)
        elif s.name.endswith("_count"):
            counts[key] = int(s.value)
    out = []
    for key, series in buckets.items():
        cumulative = sorted(series)
        per_bucket = [c - (cumulative[i - 1][1] if i else 0) for i, (_, c) in enumerate(cumulative)]
        bounds = [le for le, _ in cumulative if le != float("inf")]
        # Prometheus keeps no min and max; NaN is what the SDK's encoder leaves out.
        out.append(HistogramDataPoint(
            attributes=dict(key), start_time_unix_nano=start, time_unix_nano=now, count=counts.get(key, 0),
            sum=sums.get(key, 0.0), bucket_counts=per_bucket, explicit_bounds=bounds, min=float("nan"),
            max=float("nan")))
    return out


def to_metrics(families: Iterable[Family], start: int, now: int) -> list[Metric]:
    """Prometheus families as the SDK's metrics (cumulative from `start`, at `now`, in ns)."""
    out: list[Metric] = []
    for f in families:
        if f.type == "counter":
            points = [NumberDataPoint(_labels(s.labels), start, now, s.value) for s in f.samples
                      if s.name.endswith("_total") or s.name == f.name]
            data: Sum | Gauge | Histogram = Sum(points, AggregationTemporality.CUMULATIVE, is_monotonic=True)
        elif f.type == "gauge":
            data = Gauge([NumberDataPoint(_labels(s.labels), start, now, s.value) for s in f.samples])
        elif f.type == "histogram":
            data = Histogram(_histogram(f, start, now), AggregationTemporality.CUMULATIVE)
        else:
            continue
        if data.data_points:
            out.append(Metric(f.name, f.documentation, "", data))
    return out


class MetricsPusher:
    """One `periodic` reader: every `interval` ms a read of the registry, exported within `timeout` ms."""

    def __init__(self, config: PeriodicReader, registry: CollectorRegistry, resource: Resource) -> None:
        assert config.exporter.otlp is not None
        self._exporter: MetricExporter = exporter(config.exporter.otlp, "metrics")
        self._config = config
        self._registry = registry
        self._resource = resource
        self._start = time.time_ns()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-metrics-reader", daemon=True)

    def collect(self) -> MetricsData:
        metrics = to_metrics(self._registry.collect(), self._start, time.time_ns())
        return MetricsData([ResourceMetrics(self._resource, [ScopeMetrics(SCOPE, metrics, "")], "")])

    def export_once(self) -> None:
        try:
            self._exporter.export(self.collect(), timeout_millis=self._config.timeout)
        except Exception:  # a reader must outlive a bad export; the SDK logs its own failures
            log.exception("exporting the gateway's metrics failed")

    def _run(self) -> None:
        while not self._stop.wait(self._config.interval / 1000):
            self.export_once()

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        """A last export of what was counted, then the exporter closes (safe to call twice)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.export_once()
        self._exporter.shutdown()
