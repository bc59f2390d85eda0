"""The tail sampler's metrics: the Collector's `otelcol_processor_tail_sampling_*` names where it has
them (a policy's `policy` label is `<processor name>.<policy>` as the Collector writes it, the policy
alone for an unnamed processor), and ours, `otelcol_gateway_processor_tail_sampling_*`, for what the
Collector does not have (the byte bound, early decisions by reason, refusals by reason).

Registered once per `Telemetry` (two tail samplers share the families, told apart by `processor`)."""

from __future__ import annotations

import weakref

from prometheus_client import Counter, Gauge

from gateway.telemetry import Telemetry, shown

_PREFIX = "otelcol_processor_tail_sampling_"
_OURS = "otelcol_gateway_processor_tail_sampling_"


class _Families:
    def __init__(self, telemetry: Telemetry) -> None:
        r, level = telemetry.registry, telemetry.level

        def counter(name: str, what: str, labels: list[str]) -> Counter | None:
            family = _OURS if name.startswith(_OURS) else _PREFIX
            return Counter(name, what, labels, registry=r) if shown(family, level) else None

        def gauge(name: str, what: str, labels: list[str]) -> Gauge | None:
            family = _OURS if name.startswith(_OURS) else _PREFIX
            return Gauge(name, what, labels, registry=r) if shown(family, level) else None

        p = ["processor"]
        self.count_traces = counter(_PREFIX + "count_traces_sampled", "Count of traces that were sampled or "
                                    "not per sampling policy", [*p, "policy", "sampled", "decision"])
        self.count_spans = counter(_PREFIX + "count_spans_sampled", "Count of spans that were sampled or not "
                                   "per sampling policy", [*p, "policy", "sampled", "decision"])
        self.global_traces = counter(_PREFIX + "global_count_traces_sampled", "Global count of traces that "
                                     "were sampled or not by at least one policy", [*p, "sampled", "decision"])
        self.early_releases = counter(_PREFIX + "early_releases_from_cache_decision", "Spans released or "
                                      "dropped at once by a remembered decision (late spans)", [*p, "sampled"])
        self.new_traces = counter(_PREFIX + "new_trace_id_received", "Counts the arrival of new traces", p)
        self.too_large = counter(_PREFIX + "traces_dropped_too_large", "Count of traces that were dropped "
                                 "because they were too large", p)
        self.errors = counter(_PREFIX + "sampling_policy_evaluation_error", "Count of sampling policy "
                              "evaluation errors", p)
        self.on_memory = gauge(_PREFIX + "sampling_traces_on_memory", "Tracks the number of traces current "
                               "on memory", p)
        self.pending_bytes = gauge(_OURS + "pending_bytes", "Bytes of everything pending a decision, counted "
                                   "against max_pending_bytes", p)
        self.decided_early = counter(_OURS + "decided_early_traces", "Traces decided before their "
                                     "decision_wait, by reason (max_pending_bytes, num_traces, shutdown)",
                                     [*p, "reason"])
        self.refused = counter(_OURS + "refused_spans", "Spans refused with a retryable error, by reason "
                               "(max_pending_bytes, num_traces with block_on_overflow, storage)", [*p, "reason"])


_FAMILIES: weakref.WeakKeyDictionary[Telemetry, _Families] = weakref.WeakKeyDictionary()


class TailMetrics:
    """One processor's bound view of the families (None where the level hides a family)."""

    def __init__(self, telemetry: Telemetry, processor: str) -> None:
        self.f = _FAMILIES.get(telemetry) or _FAMILIES.setdefault(telemetry, _Families(telemetry))
        self.processor = processor
        self.name = processor.partition("/")[2]

    def policy(self, name: str) -> str:
        return f"{self.name}.{name}" if self.name else name

    def evaluated(self, policy: str, decision: str, spans: int) -> None:
        sampled = "true" if decision == "sampled" else "false"
        labels = (self.processor, self.policy(policy), sampled, decision)
        if self.f.count_traces is not None:
            self.f.count_traces.labels(*labels).inc()
        if self.f.count_spans is not None:
            self.f.count_spans.labels(*labels).inc(spans)

    def decided(self, decision: str) -> None:
        if self.f.global_traces is not None:
            self.f.global_traces.labels(self.processor, "true" if decision == "sampled" else "false", decision).inc()

    def inc(self, family: str, amount: float = 1, *labels: str) -> None:
        metric: Counter | None = getattr(self.f, family)
        if metric is not None and amount:
            metric.labels(self.processor, *labels).inc(amount)

    def set(self, family: str, value: float) -> None:
        metric: Gauge | None = getattr(self.f, family)
        if metric is not None:
            metric.labels(self.processor).set(value)
