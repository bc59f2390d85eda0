"""The Jaeger decoders and translation (`pipelines/jaeger`) on their own: a few rules spelled out (the
differential test compares the rest with the Collector), the three encodings of one batch agreeing,
and arbitrary or mutated bytes either translating or raising `PermanentError`, nothing else."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.errors import PermanentError
from pipelines.jaeger import model, proto, thrift
from tests.interop import _jaeger


def _decoders() -> list[Callable[[bytes], Any]]:
    return [thrift.decode_batch, lambda b: thrift.decode_agent(b, "binary"),
            lambda b: thrift.decode_agent(b, "compact"), lambda b: model.proto_request(proto.decode(b))]


def test_one_batch_in_three_thrift_encodings_translates_the_same() -> None:
    batch = _jaeger.thrift_batch(1)
    want = thrift.decode_batch(_jaeger.thrift_http_body(batch))
    assert len(want.resource_spans[0].scope_spans[0].spans) == len(_jaeger.span_specs(1))
    for protocol in ("binary", "compact"):
        assert thrift.decode_agent(_jaeger.agent_packet(batch, protocol), protocol) == want


def test_ids_parent_scope_and_unknown_tag_types() -> None:
    req = model.proto_request(proto.decode(_jaeger.proto_request(1)))
    spans = {s.name: (s, ss.scope) for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans}
    short, _ = spans["op-43"]  # the 64-bit trace id
    assert short.trace_id[:8] == bytes(8) and short.trace_id[8:] != bytes(8)
    followed, _ = spans["op-38"]  # FOLLOWS_FROM only: the parent, and still a link
    assert followed.parent_span_id
    assert [ln.attributes[0].value.string_value for ln in followed.links] == ["follows_from"]
    _, scope = spans["op-29"]
    assert (scope.name, scope.version) == ("lib-a", "1.2")
    typed, _ = spans["op-33"]
    attrs = {kv.key: kv.value for kv in typed.attributes}
    assert attrs["u"].string_value == '<Unknown Jaeger TagType "9">' and attrs["y"].bytes_value == b"\x00\xff"
    assert attrs["dup"].int_value == 2


def test_a_span_with_every_field_zero_is_skipped_and_an_absent_batch_is_none() -> None:
    t = _jaeger.ttypes()
    blank = t.Span(traceIdLow=0, traceIdHigh=0, spanId=0, parentSpanId=0, operationName="", flags=0, startTime=0,
                   duration=0)
    body = _jaeger.thrift_http_body(t.Batch(process=t.Process(serviceName="s"), spans=[blank]))
    assert not thrift.decode_batch(body).resource_spans[0].scope_spans
    assert thrift.decode_agent(b"\x82\x21\x01\x09emitBatch\x00", "compact") is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_translate_or_are_refused(data: bytes) -> None:
    for decode in _decoders():
        with contextlib.suppress(PermanentError):
            decode(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_batches_translate_or_are_refused(data: st.DataObject) -> None:
    batch = _jaeger.thrift_batch(1)
    encodings = [_jaeger.thrift_http_body(batch), _jaeger.agent_packet(batch, "binary"),
                 _jaeger.agent_packet(batch, "compact"), _jaeger.proto_request(1)]
    for body, decode in zip(encodings, _decoders(), strict=True):
        mutated = bytearray(body)
        for _ in range(data.draw(st.integers(1, 8))):
            mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(mutated)))
        for candidate in (bytes(mutated), bytes(mutated[:cut])):
            with contextlib.suppress(PermanentError):
                decode(candidate)


def test_a_status_code_tag_of_thousands_of_digits_is_no_status_code() -> None:
    """Past int64 Go's ParseInt fails; Python's int() of 5,000 digits raises (its digit limit) or is slow."""
    from pipelines.jaeger.model import _http_code

    assert _http_code(("s", "9" * 5000)) is None
    assert _http_code(("s", "0" * 30 + "404")) == 404
    assert _http_code(("s", "9223372036854775808")) is None
