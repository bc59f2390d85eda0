"""`/api/v1/stats`: the gateway's own counters, regrouped by component. Totals since start, never rates
(a client takes the difference of two reads: `gateway top` does)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import Metric

from gateway import retry_state
from gateway.component import InstanceID, StatusEvent

# family -> (component kind, the label naming it, the field it adds to)
_FIELDS: dict[str, tuple[str, str, str]] = {
    "otelcol_receiver_accepted": ("receiver", "receiver", "accepted"),
    "otelcol_receiver_refused": ("receiver", "receiver", "refused"),
    "otelcol_exporter_sent": ("exporter", "exporter", "sent"),
    "otelcol_exporter_send_failed": ("exporter", "exporter", "failed"),
    "otelcol_exporter_enqueue_failed": ("exporter", "exporter", "refused"),
    "otelcol_exporter_queue_size": ("exporter", "exporter", "queue_size"),
    "otelcol_exporter_queue_capacity": ("exporter", "exporter", "queue_capacity"),
    "otelcol_processor_dropped": ("processor", "processor", "dropped_items"),
    "otelcol_processor_refused": ("processor", "processor", "refused"),
    "otelcol_processor_incoming_items": ("processor", "processor", "in"),
    "otelcol_processor_outgoing_items": ("processor", "processor", "out"),
    "otelcol_gateway_connector_unrouted": ("connector", "connector", "unrouted"),
    "otelcol_gateway_pipeline_incoming_items": ("pipeline", "pipeline", "in"),
    "otelcol_gateway_pipeline_outgoing_items": ("pipeline", "pipeline", "out"),
}
_DROPPED = "otelcol_gateway_dropped_spans"


def _family(name: str) -> str:
    """The family a sample's metric belongs to: the name without its unit suffix (`_spans`, ...)."""
    for suffix in ("_spans", "_metric_points", "_log_records"):
        if name.endswith(suffix) and name[: -len(suffix)] in _FIELDS:
            return name[: -len(suffix)]
    return name


def stats(metrics: Iterable[Metric], kinds: Mapping[str, str], statuses: Mapping[InstanceID, StatusEvent],
          retries: Mapping[str, retry_state.RetryState] | None = None) -> dict[str, Any]:
    """Per component (`kind:id`): in, out, refused, dropped by reason, queue fill and capacity, status, and
    for an exporter its `retry` state (`gateway.retry_state`). `kinds` gives every component of the running
    graph its kind, so each is listed, counted or not."""
    components: dict[str, dict[str, Any]] = {
        key: {"kind": kind, "id": key.partition(":")[2], "dropped": {}} for key, kind in kinds.items()}
    for metric in metrics:
        for sample in metric.samples:
            if sample.name.endswith("_created"):
                continue
            family = _family(metric.name)
            if family == _DROPPED:
                cid, reason = sample.labels["component"], sample.labels["reason"]
                for entry in components.values():
                    if entry["id"] == cid and entry["kind"] != "pipeline":
                        entry["dropped"][reason] = entry["dropped"].get(reason, 0) + sample.value
                continue
            if family not in _FIELDS:
                continue
            kind, label, name = _FIELDS[family]
            key = f"{kind}:{sample.labels[label]}"
            entry = components.setdefault(key, {"kind": kind, "id": sample.labels[label], "dropped": {}})
            entry[name] = entry.get(name, 0) + sample.value
    for entry in components.values():
        _in_out(entry)
    for xid, state in (retries or {}).items():
        found = components.get(f"exporter:{xid}")
        if found is not None:
            found["retry"] = state.view()
    for instance, event in statuses.items():
        found = components.get(instance.key)
        if found is not None:
            found["status"] = event.status
            if event.error:
                found["error"] = event.error
    return components


def _in_out(entry: dict[str, Any]) -> None:
    kind = entry["kind"]
    if kind == "receiver":
        entry["in"] = entry.get("accepted", 0) + entry.get("refused", 0)
        entry["out"] = entry.get("accepted", 0)
    elif kind == "exporter":
        entry["out"] = entry.get("sent", 0)
        entry["in"] = entry.get("sent", 0) + entry.get("failed", 0)


# Across workers a component's status is the worst of theirs, with that worker's error.
_SEVERITY = {"StatusNone": 0, "StatusOK": 0, "StatusStarting": 1, "StatusStopping": 2, "StatusStopped": 3,
             "StatusRecoverableError": 4, "StatusPermanentError": 5, "StatusFatalError": 6}
_NAMES = frozenset({"kind", "id", "status", "error", "dropped", "retry"})
# What says how things are now rather than what was counted: a worker that exited takes it with it.
_NOW = frozenset({"queue_size", "queue_capacity", "status", "error", "retry"})


def counters(components: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """A worker's `stats()` without what says how things are now (queues, status, retries): the totals a
    worker that exited had counted, which the sums keep, as `/metrics` does."""
    return {key: {k: v for k, v in c.items() if k not in _NOW} for key, c in components.items()}


def merge(per_worker: Iterable[Mapping[str, Mapping[str, Any]]],
          retired: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Several workers' `stats()` as one: every count and the queues' size and capacity summed, drops by
    reason summed, the worst status with its error, the retry states merged (`retry_state.merge`); and the
    `retired` workers' `counters()` added to the components still there."""
    out: dict[str, dict[str, Any]] = {}
    retries: dict[str, list[dict[str, Any]]] = {}
    for components in per_worker:
        for key, c in components.items():
            entry = out.setdefault(key, {"kind": c["kind"], "id": c["id"], "dropped": {}})
            if "retry" in c:
                retries.setdefault(key, []).append(c["retry"])
            _add(entry, c)
            status = c.get("status")
            if status is not None and _SEVERITY.get(status, 0) >= _SEVERITY.get(entry.get("status", ""), -1):
                worse = _SEVERITY.get(status, 0) > _SEVERITY.get(entry.get("status", ""), -1)
                entry["status"] = status
                if worse or "error" not in entry:
                    entry.pop("error", None)
                    if c.get("error"):
                        entry["error"] = c["error"]
    for key, views in retries.items():
        out[key]["retry"] = retry_state.merge(views)
    for key, c in (retired or {}).items():
        if key in out:
            _add(out[key], c)
    return out


def _add(entry: dict[str, Any], c: Mapping[str, Any]) -> None:
    for reason, n in c.get("dropped", {}).items():
        entry["dropped"][reason] = entry["dropped"].get(reason, 0) + n
    for name, value in c.items():
        if name not in _NAMES:
            entry[name] = entry.get(name, 0) + value
