"""A sampled batch as lines for `/api/v1/tap`: one JSON object (or one line of text) per span, log record
or metric."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pipelines.batch import Batch
from pipelines.processors.anyvalue import to_raw

_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: to_raw(kv.value) for kv in kvs}


def items(batch: Batch, limit: int) -> Iterator[dict[str, Any]]:
    """Up to `limit` items of `batch`, each as a dict."""
    msg = batch.message()
    n = 0
    for resource in msg.resource_spans if batch.signal == "traces" else \
            msg.resource_logs if batch.signal == "logs" else msg.resource_metrics:
        service = attributes(resource.resource.attributes).get("service.name", "")
        scopes = resource.scope_spans if batch.signal == "traces" else \
            resource.scope_logs if batch.signal == "logs" else resource.scope_metrics
        for scope in scopes:
            for item in scope.spans if batch.signal == "traces" else \
                    scope.log_records if batch.signal == "logs" else scope.metrics:
                if n >= limit:
                    return
                n += 1
                yield one(batch.signal, service, item)


def one(signal: str, service: str, item: Any) -> dict[str, Any]:
    """One span, log record or metric as a dict (a tap's JSON line)."""
    if signal == "traces":
        return {"signal": signal, "trace_id": item.trace_id.hex(), "span_id": item.span_id.hex(),
                "parent_span_id": item.parent_span_id.hex(), "name": item.name, "service": service,
                "kind": item.kind, "start_unix_nano": item.start_time_unix_nano,
                "end_unix_nano": item.end_time_unix_nano,
                "duration_ns": item.end_time_unix_nano - item.start_time_unix_nano,
                "attributes": attributes(item.attributes),
                "events": [{"name": e.name, "time_unix_nano": e.time_unix_nano,
                            "attributes": attributes(e.attributes)} for e in item.events],
                "status": {"code": _STATUS.get(item.status.code, str(item.status.code)),
                           "message": item.status.message}}
    if signal == "logs":
        return {"signal": signal, "trace_id": item.trace_id.hex(), "span_id": item.span_id.hex(),
                "service": service, "severity": item.severity_text, "body": to_raw(item.body),
                "attributes": attributes(item.attributes)}
    return {"signal": signal, "service": service, "name": item.name, "unit": item.unit,
            "type": item.WhichOneof("data")}


def as_json(item: dict[str, Any]) -> str:
    return json.dumps(item, separators=(",", ":"), default=str)


def as_text(item: dict[str, Any]) -> str:
    """One human line: for a span `trace_id span_id service name STATUS k=v ...`."""
    attrs = " ".join(f"{k}={v}" for k, v in item.get("attributes", {}).items())
    if item["signal"] == "traces":
        head = f"{item['trace_id']} {item['span_id']} {item['service']} {item['name']} {item['status']['code']}"
    elif item["signal"] == "logs":
        head = f"{item['trace_id'] or '-'} {item['service']} {item['severity'] or '-'} {item['body']}"
    else:
        head = f"{item['service']} {item['name']} {item['type']}"
    return f"{head} {attrs}".rstrip()
