"""The Zipkin translation (`pipelines/zipkin`) on its own: a few rules spelled out (the differential
test compares the rest with the Collector), and arbitrary bytes either translate or raise
`PermanentError`, nothing else."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.errors import PermanentError
from pipelines.zipkin import model, v1_json, v2_json, v2_proto
from tests.interop import _zipkin


def _one(spans: list[dict[str, Any]], parse: bool = False) -> Any:
    req = model.to_request(v2_json.decode(json.dumps(spans).encode()), parse)
    return req.resource_spans[0].scope_spans[0].spans[0]


def test_ids_kind_status_and_absent_start() -> None:
    span = _one([{"traceId": "1", "id": "a", "parentId": "a", "kind": "PRODUCER", "duration": 3,
                  "tags": {"otel.status_code": "Error", "otel.status_description": "x", "span.kind": "client"}}])
    assert span.trace_id == bytes(15) + b"\x01" and span.span_id == bytes(7) + b"\x0a"
    assert span.parent_span_id == b"" and span.kind == 4
    assert (span.status.code, span.status.message) == (2, "x")
    attrs = {kv.key: kv.value for kv in span.attributes}
    assert attrs["span.kind"].string_value == "client"  # kept: the span has a Zipkin kind
    assert attrs[model.START_TIME_ABSENT].bool_value and span.end_time_unix_nano == 3000


def test_protobuf_timestamp_zero_is_the_epoch_not_absent() -> None:
    msg = v2_proto.ListOfSpans()
    s = msg.spans.add(trace_id=b"\x01" * 16, id=b"\x02" * 8, duration=5)
    s.local_endpoint.port = -1  # Go truncates to 16 bits
    spans = v2_proto.decode(msg.SerializeToString())
    span = model.to_request(spans, False).resource_spans[0].scope_spans[0].spans[0]
    attrs = {kv.key: kv.value for kv in span.attributes}
    assert model.START_TIME_ABSENT not in attrs and attrs["net.host.port"].int_value == 65535


@pytest.mark.parametrize("body", [b"[]", b"null", _zipkin.v2_json(1)])
def test_v2_json_bodies(body: bytes) -> None:
    model.to_request(v2_json.decode(body), True)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_translate_or_are_refused(data: bytes) -> None:
    for decode in (lambda b: model.to_request(v2_json.decode(b), True),
                   lambda b: model.to_request(v2_proto.decode(b), True),
                   lambda b: v1_json.decode(b, True)):
        with contextlib.suppress(PermanentError):
            decode(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_spans_translate_or_are_refused(data: st.DataObject) -> None:
    body = bytearray(_zipkin.v2_protobuf(1))
    for _ in range(data.draw(st.integers(1, 8))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    text = bytearray(_zipkin.v2_json(1))
    i = data.draw(st.integers(0, len(text) - 1))
    text[i:i + 1] = data.draw(st.sampled_from([b"", b"1", b'"', b"{", b"|", b"\\u0000", b"-"]))
    for decode in (lambda: model.to_request(v2_proto.decode(bytes(body)), False),
                   lambda: model.to_request(v2_json.decode(bytes(text)), True)):
        with contextlib.suppress(PermanentError):
            decode()
