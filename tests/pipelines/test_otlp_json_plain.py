"""OTLP/JSON's fast path (`otlp_json.plain`) against ParseDict's: on requests with every span field and
every attribute type, written with field names camelCase or snake_case, enums as numbers or names,
64-bit integers as numbers or strings, and then disturbed (nulls, values of another JSON type, base64
bytes, NaN, a field under both names, unknown keys, bad hex, unknown enum values). Where the fast path
takes a body, ParseDict builds the equal message; where ParseDict refuses one, the fast path does not
take it (so the refusal keeps ParseDict's words); plain bodies take the fast path."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from pipelines import otlp_json
from pipelines.errors import PermanentError

ints64 = st.integers(0, 2**64 - 1)
texts = st.text(max_size=8)


@st.composite
def any_values(draw: Any, depth: int = 2) -> AnyValue:
    kinds = ["string_value", "bool_value", "int_value", "double_value", "bytes_value"]
    if depth:
        kinds += ["array_value", "kvlist_value"]
    kind = draw(st.sampled_from(kinds))
    v = AnyValue()
    if kind == "string_value":
        v.string_value = draw(texts)
    elif kind == "bool_value":
        v.bool_value = draw(st.booleans())
    elif kind == "int_value":
        v.int_value = draw(st.integers(-(2**63), 2**63 - 1))
    elif kind == "double_value":
        v.double_value = draw(st.floats(allow_nan=False, allow_infinity=False))
    elif kind == "bytes_value":
        v.bytes_value = draw(st.binary(max_size=6))
    elif kind == "array_value":
        v.array_value.values.extend(draw(st.lists(any_values(depth - 1), max_size=3)))
    else:
        v.kvlist_value.values.extend(draw(st.lists(key_values(depth - 1), max_size=3)))
    return v


@st.composite
def key_values(draw: Any, depth: int = 2) -> KeyValue:
    return KeyValue(key=draw(texts), value=draw(any_values(depth)))


attributes = st.lists(key_values(), max_size=4)


@st.composite
def requests(draw: Any) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(draw(attributes))
        rs.resource.dropped_attributes_count = draw(st.integers(0, 3))
        rs.schema_url = draw(texts)
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name, ss.scope.version = draw(texts), draw(texts)
            ss.scope.attributes.extend(draw(attributes))
            for _ in range(draw(st.integers(0, 3))):
                span = ss.spans.add()
                span.trace_id = draw(st.binary(min_size=16, max_size=16))
                span.span_id = draw(st.binary(min_size=8, max_size=8))
                span.parent_span_id = draw(st.sampled_from([b"", b"\x01" * 8]))
                span.trace_state, span.name = draw(texts), draw(texts)
                span.flags = draw(st.integers(0, 2**32 - 1))
                span.kind = draw(st.integers(0, 5))
                span.start_time_unix_nano, span.end_time_unix_nano = draw(ints64), draw(ints64)
                span.attributes.extend(draw(attributes))
                span.dropped_attributes_count = draw(st.integers(0, 2**32 - 1))
                for _ in range(draw(st.integers(0, 2))):
                    ev = span.events.add(time_unix_nano=draw(ints64), name=draw(texts))
                    ev.attributes.extend(draw(attributes))
                for _ in range(draw(st.integers(0, 2))):
                    link = span.links.add(trace_id=draw(st.binary(min_size=16, max_size=16)),
                                          span_id=draw(st.binary(min_size=8, max_size=8)), trace_state=draw(texts))
                    link.flags = draw(st.integers(0, 3))
                span.status.code = draw(st.integers(0, 2))
                span.status.message = draw(texts)
    return req


def _snake(node: Any) -> Any:
    if isinstance(node, dict):
        return {_to_snake(k): _snake(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_snake(v) for v in node]
    return node


def _to_snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def render(req: Any, integer_enums: bool, snake: bool, numbers: bool) -> dict[str, Any]:
    tree: dict[str, Any] = json.loads(otlp_json.encode(req, integer_enums=integer_enums))
    if numbers:
        _longs_as_numbers(tree)
    return _snake(tree) if snake else tree


def _longs_as_numbers(node: Any) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, str) and k.endswith(("UnixNano", "intValue")) and v.isdigit():
                node[k] = int(v)
            else:
                _longs_as_numbers(v)
    elif isinstance(node, list):
        for v in node:
            _longs_as_numbers(v)


def slow(request: Any, tree: Any) -> Any:
    """ParseDict's path, as `decode` takes it when `plain` declines."""
    msg = request()
    tree = copy.deepcopy(tree)
    otlp_json._hex_ids_to_base64(tree)
    json_format.ParseDict(tree, msg, ignore_unknown_fields=True)
    return msg


def _dicts(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return [node, *(d for v in node.values() for d in _dicts(v))]
    if isinstance(node, list):
        return [d for v in node for d in _dicts(v)]
    return []


DISTURBANCES = ["null", "wrong_type", "number_as_string", "nan", "both_names", "unknown_key", "bad_hex",
                "unknown_enum", "enum_name", "negative_long", "float_long"]


def disturb(tree: dict[str, Any], how: str, pick: int) -> None:
    dicts = [d for d in _dicts(tree) if d]
    if not dicts:
        return
    d = dicts[pick % len(dicts)]
    key = sorted(d)[pick % len(d)]
    if how == "null":
        d[key] = None
    elif how == "wrong_type":
        d[key] = [d[key]] if not isinstance(d[key], list) else {"x": 1}
    elif how == "number_as_string":
        d[key] = str(d[key]) if isinstance(d[key], (int, float)) and not isinstance(d[key], bool) else 7
    elif how == "nan":
        d[key] = "NaN"
    elif how == "both_names":
        d[_to_snake(key) if _to_snake(key) != key else key + "X"] = copy.deepcopy(d[key])  # parsed JSON never aliases
    elif how == "unknown_key":
        d["noSuchField"] = {"a": [1, None]}
    elif how == "bad_hex":
        # Where the schema has the field: elsewhere ParseDict's path refuses bad hex in a key it would
        # ignore, while the fast path ignores it, as the Collector does.
        for span in (x for x in dicts if "traceId" in x or "trace_id" in x):
            span["traceId" if "traceId" in span else "trace_id"] = "zz" * 16
            break
    elif how == "unknown_enum":
        d["kind"] = 99
    elif how == "enum_name":
        d["kind"] = "SPAN_KIND_CLIENT"
    elif how == "negative_long":
        d["startTimeUnixNano"] = "-5"
    elif how == "float_long":
        d["startTimeUnixNano"] = 1.5


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.booleans(), st.booleans(), st.booleans())
def test_plain_bodies_take_the_fast_path_and_build_what_parsedict_builds(
        req: ExportTraceServiceRequest, integer_enums: bool, snake: bool, numbers: bool) -> None:
    tree = render(req, integer_enums, snake, numbers)
    # bytes_value is base64 in JSON: ParseDict's alone; every other field is plain.
    has_bytes = "bytesValue" in json.dumps(tree) or "bytes_value" in json.dumps(tree)
    fast = otlp_json.plain(ExportTraceServiceRequest, copy.deepcopy(tree))
    assert (fast is None) == has_bytes
    if fast is not None:
        assert fast == slow(ExportTraceServiceRequest, tree) == req


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.booleans(), st.booleans(), st.sampled_from(DISTURBANCES), st.integers(0, 10_000))
def test_disturbed_bodies_build_the_same_or_go_to_parsedict(
        req: ExportTraceServiceRequest, integer_enums: bool, snake: bool, how: str, pick: int) -> None:
    tree = render(req, integer_enums, snake, False)
    disturb(tree, how, pick)
    fast = otlp_json.plain(ExportTraceServiceRequest, copy.deepcopy(tree))
    try:
        expected = slow(ExportTraceServiceRequest, tree)
    except (json_format.ParseError, ValueError, TypeError, PermanentError):
        assert fast is None  # refused by ParseDict: its words, not ours
        return
    if fast is not None:
        assert fast == expected


@pytest.mark.parametrize(("request_type", "body"), [
    (ExportLogsServiceRequest, {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": "5", "severityNumber": 9, "body": {"stringValue": "hi"}, "traceId": "01" * 16,
         "spanId": "02" * 8, "attributes": [{"key": "k", "value": {"intValue": "3"}}]}]}]}]}),
    (ExportMetricsServiceRequest, {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "m", "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
            {"asInt": "4", "timeUnixNano": "9", "exemplars": [{"spanId": "03" * 8, "asDouble": 1.5}]}]}},
        {"name": "h", "histogram": {"dataPoints": [{"count": "2", "bucketCounts": ["1", "1"],
                                                  "explicitBounds": [1.0], "sum": 3.0}]}}]}]}]}),
])
def test_logs_and_metrics_take_it_too(request_type: Any, body: dict[str, Any]) -> None:
    fast = otlp_json.plain(request_type, copy.deepcopy(body))
    assert fast is not None
    assert fast == slow(request_type, body)


def test_decode_still_words_refusals_as_before() -> None:
    with pytest.raises(PermanentError, match="invalid traceId 'zz"):
        otlp_json.decode("traces", json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "zz"}]}]}]}).encode())
    with pytest.raises(PermanentError, match="cannot decode OTLP/JSON"):
        otlp_json.decode("traces", b'{"resourceSpans": [{"scopeSpans": 5}]}')
