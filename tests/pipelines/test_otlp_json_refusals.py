"""What OTLP/JSON's fast path must leave to ParseDict: non-finite doubles, two members of one oneof,
bodies nested past the depth a protobuf parse takes; numbers too large for a double refused."""

from __future__ import annotations

import copy
import json

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipelines import otlp, otlp_json
from pipelines.errors import PermanentError
from tests.pipelines.test_otlp_json_plain import slow


def _attr(value: object) -> dict:
    return {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "01" * 16, "spanId": "02" * 8, "name": "s",
                                                          "attributes": [{"key": "k", "value": value}]}]}]}]}


REFUSED_BY_PARSEDICT = {
    "NaN literal": (ExportTraceServiceRequest, _attr({"doubleValue": float("nan")})),
    "Infinity literal": (ExportTraceServiceRequest, _attr({"doubleValue": float("inf")})),
    "AnyValue with two values": (ExportTraceServiceRequest, _attr({"stringValue": "a", "intValue": "5"})),
    "data point asDouble and asInt": (ExportMetricsServiceRequest, {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "m", "gauge": {"dataPoints": [{"asDouble": 1.5, "asInt": "3"}]}}]}]}]}),
    "metric gauge and sum": (ExportMetricsServiceRequest, {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "m", "gauge": {"dataPoints": [{"asInt": "3"}]}, "sum": {"dataPoints": []}}]}]}]}),
}


@pytest.mark.parametrize("case", REFUSED_BY_PARSEDICT)
def test_plain_does_not_take_what_parsedict_refuses(case: str) -> None:
    request, tree = REFUSED_BY_PARSEDICT[case]
    with pytest.raises(json_format.ParseError):
        slow(request, tree)
    assert otlp_json.plain(request, copy.deepcopy(tree)) is None


def _deep(n: int) -> dict:
    v: dict = {"stringValue": "x"}
    for _ in range(n):
        v = {"arrayValue": {"values": [v]}}
    return _attr(v)


def test_a_body_nested_past_the_protobuf_depth_limit_is_refused() -> None:
    body = json.dumps(_deep(60)).encode()
    try:
        msg = otlp_json.decode("traces", body)
    except PermanentError:
        return
    # taken: the gateway's own protobuf parser (and any upb/C++ receiver downstream) cannot read it back,
    # nor a batch it is merged into with other clients' spans
    other = ExportTraceServiceRequest()
    other.resource_spans.add().scope_spans.add().spans.add(name="someone else's span")
    merged = other.SerializeToString() + msg.SerializeToString()
    with pytest.raises(PermanentError, match="MaxDepth"):
        otlp.parse("traces", merged)
    pytest.fail("decoded a message nested past upb's depth limit (ParseDict refuses it: max_recursion_depth=100)")
