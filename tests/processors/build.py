"""Requests built by hand for processor tests: traces, logs and metrics with chosen attributes."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipelines.batch import Batch, RequestContext
from pipelines.processors import anyvalue


def put_attrs(attrs: Any, values: dict[str, Any]) -> None:
    for k, v in values.items():
        anyvalue.put(attrs, k, anyvalue.from_raw(v))


def span_request(spans: list[dict[str, Any]], resource: dict[str, Any] | None = None,
                 scope: tuple[str, str] = ("lib", "1.0")) -> Any:
    """One resource and scope; each span dict may give name, kind, trace_id, attrs, trace_state."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    put_attrs(rs.resource.attributes, resource if resource is not None else {"service.name": "svc"})
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = scope
    for i, s in enumerate(spans):
        span = ss.spans.add()
        span.name = s.get("name", f"span-{i}")
        span.kind = s.get("kind", 1)
        span.trace_id = s.get("trace_id", (i + 1).to_bytes(16, "big"))
        span.span_id = (i + 1).to_bytes(8, "big")
        span.trace_state = s.get("trace_state", "")
        put_attrs(span.attributes, s.get("attrs", {}))
    return req


def batch_of(req: Any, signal: str = "traces", context: RequestContext | None = None) -> Batch:
    data = req.SerializeToString()
    msg = type(req).FromString(data)
    from pipelines import otlp

    return Batch(signal, data, otlp.count_items(signal, msg), context or RequestContext(), msg)  # type: ignore[arg-type]


def span_attrs(batch: Batch) -> list[dict[str, Any]]:
    return [{kv.key: anyvalue.to_raw(kv.value) for kv in span.attributes}
            for rs in batch.message().resource_spans for ss in rs.scope_spans for span in ss.spans]


def log_request(records: list[dict[str, Any]], resource: dict[str, Any] | None = None) -> Any:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    put_attrs(rl.resource.attributes, resource or {"service.name": "svc"})
    sl = rl.scope_logs.add()
    for r in records:
        put_attrs(sl.log_records.add().attributes, r)
    return req


def metric_request(points: list[dict[str, Any]], resource: dict[str, Any] | None = None) -> Any:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    put_attrs(rm.resource.attributes, resource or {"service.name": "svc"})
    m = rm.scope_metrics.add().metrics.add()
    m.name = "m"
    for p in points:
        dp = m.sum.data_points.add()
        dp.as_int = 1
        put_attrs(dp.attributes, p)
    return req
