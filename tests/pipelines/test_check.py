"""`otlp.check` (validation on schema views) against the reference `parse` + `validate`, on requests
built field by field: canonical and not, ids of every length, repeated and missing id fields, broken
attributes and links, bad UTF-8, unknown fields, then truncated or corrupted. It accepts exactly what
the reference accepts but for the occurrence rule (an id occurrence of a wrong length that a later one
overrides), which an independent wire decoder here checks; it counts the same, and its error messages
are the reference's. The sampler decides the same with the check's ids as with the parse."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pipelines import otlp, schema_views, wire
from pipelines.batch import Batch, RequestContext
from pipelines.errors import PermanentError
from pipelines.processors.attributes import AttributesProcessor
from pipelines.processors.attributes import Config as AttributesConfig
from pipelines.processors.probabilistic_sampler import Config as SamplerConfig
from pipelines.processors.probabilistic_sampler import ProbabilisticSampler
from tests.processors.test_wire_fast_path import SAMPLERS, action_lists, requests, same


def fld(number: int, payload: bytes) -> bytes:
    return wire.field_bytes(number << 3 | 2, payload)


def vint(number: int, value: int) -> bytes:
    return wire.varint(number << 3) + wire.varint(value)


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], one_in: int) -> st.SearchStrategy[Any]:
    """`rare` about once in `one_in` draws (never if 0); shrinks towards `common`."""
    if not one_in:
        return common
    return st.integers(1, one_in).flatmap(lambda i: rare if i == one_in else common)


class Parts:
    """Strategies for the pieces of a request; a broken piece comes once in about `one_in` draws (0: never,
    but for non-canonical spans, which may still lack or repeat an id)."""

    def __init__(self, one_in: int) -> None:
        self.one_in = one_in
        self.texts = mostly(st.text(max_size=6).map(str.encode),
                            st.sampled_from([b"\xff", b"ok\xc3", b"\xed\xa0\x80"]), one_in)
        good = st.builds(lambda k, v: KeyValue(key=k, value=AnyValue(string_value=v)).SerializeToString(),
                         st.text(max_size=5), st.text(max_size=5))
        nested = self.texts.map(lambda v: fld(1, b"k") + fld(2, fld(6, fld(1, fld(1, b"in") + fld(2, fld(1, v))))))
        self.attrs = mostly(st.one_of(good, nested),
                            st.sampled_from([b"\x0a\x05ab", b"\x12\x03\x0a\x01\xff", b"\x08", fld(1, b"\xff")]),
                            one_in)
        self.span_fields = st.one_of(
            self.ids(16).map(lambda v: fld(1, v)), self.ids(8).map(lambda v: fld(2, v)),
            self.texts.map(lambda v: fld(3, v)), self.ids(8).map(lambda v: fld(4, v)),
            self.texts.map(lambda v: fld(5, v)), st.integers(0, 9).map(lambda v: vint(6, v)),
            self.attrs.map(lambda v: fld(9, v)), self.links().map(lambda v: fld(13, v)),
            st.just(fld(11, fld(2, b"event"))), st.sampled_from([vint(1, 3), fld(100, b"x"), vint(2, 0)]))

    def ids(self, n: int) -> st.SearchStrategy[bytes]:
        """Mostly `n` bytes; sometimes empty, shorter or longer."""
        return mostly(st.binary(min_size=n, max_size=n), st.sampled_from([b"", b"\x01" * (n - 1), b"\x02" * (n + 1)]),
                      self.one_in)

    def links(self) -> st.SearchStrategy[bytes]:
        canonical = st.builds(lambda t, s, state: fld(1, t) + fld(2, s) + state, self.ids(16), self.ids(8),
                              st.one_of(st.just(b""), self.texts.map(lambda v: fld(3, v))))
        loose = st.lists(st.one_of(self.ids(16).map(lambda v: fld(1, v)), self.ids(8).map(lambda v: fld(2, v)),
                                   self.texts.map(lambda v: fld(3, v)), self.attrs.map(lambda v: fld(4, v))),
                         max_size=4).map(b"".join)
        return mostly(canonical, loose, self.one_in and 6)

    def spans(self) -> st.SearchStrategy[bytes]:
        @st.composite
        def span(draw: Any) -> bytes:
            if self.one_in and not draw(st.integers(0, 7)):
                return b"".join(draw(st.lists(self.span_fields, max_size=7)))
            parts = [fld(1, draw(self.ids(16))), fld(2, draw(self.ids(8)))]
            if draw(st.booleans()):
                parts.append(fld(3, draw(st.sampled_from([b"", b"ot=th:8", b"vendor=x"]))))
            if draw(st.booleans()):
                parts.append(fld(4, draw(self.ids(8))))
            parts.append(fld(5, draw(self.texts)))
            parts += [fld(9, a) for a in draw(st.lists(self.attrs, max_size=3))]
            parts += [fld(13, a) for a in draw(st.lists(self.links(), max_size=2))]
            if self.one_in and not draw(st.integers(0, 9)):
                parts.insert(draw(st.integers(0, len(parts))), draw(self.span_fields))
            if self.one_in and not draw(st.integers(0, 7)):
                # An earlier occurrence of an id field, which a parser overrides.
                number, n = draw(st.sampled_from([(1, 16), (2, 8), (4, 8)]))
                parts.insert(0, fld(number, draw(st.sampled_from([b"", b"\x05" * 5, b"\x09" * n]))))
            return b"".join(parts)

        return span()

    def requests(self) -> st.SearchStrategy[bytes]:
        @st.composite
        def request(draw: Any) -> bytes:
            out = []
            for _ in range(draw(st.integers(1, 3))):
                res = [fld(1, fld(1, a)) for a in draw(st.lists(self.attrs, max_size=1))]
                for _ in range(draw(st.integers(0, 3))):
                    scope = [fld(1, fld(1, draw(self.texts)))] if draw(st.booleans()) else []
                    scope += [fld(2, s) for s in draw(st.lists(self.spans(), min_size=1, max_size=5))]
                    if draw(st.booleans()):
                        scope.append(fld(3, b"https://s"))
                    res.append(fld(2, b"".join(scope)))
                out.append(fld(1, b"".join(res)))
            return b"".join(out)

        return request()


# Mostly clean requests (a broken piece now and then), and requests with many broken pieces.
_CLEAN = Parts(0).requests()
trace_requests = st.one_of(_CLEAN, _CLEAN, Parts(40).requests(), Parts(6).requests())
texts = Parts(30).texts
attrs = Parts(30).attrs


@st.composite
def corrupted(draw: Any, requests_: st.SearchStrategy[bytes]) -> bytes:
    data: bytes = draw(requests_)
    kind = draw(st.integers(0, 11))
    if kind == 0 and data:
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == 1 and data:
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
    if kind == 2:
        return data + draw(st.binary(max_size=4))
    return data


# -- an independent reading of the wire, for the occurrence rule


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def fields(buf: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(number, wire type, payload if length-delimited) of each field; only for bytes a parser accepts."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wt = key >> 3, key & 7
        payload = b""
        if wt == 0:
            _, i = _varint(buf, i)
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        elif wt == 2:
            n, i = _varint(buf, i)
            payload, i = buf[i:i + n], i + n
        elif wt == 3:
            depth = 1
            while depth:
                key, i = _varint(buf, i)
                if key & 7 == 3:
                    depth += 1
                elif key & 7 == 4:
                    depth -= 1
                elif key & 7 == 0:
                    _, i = _varint(buf, i)
                elif key & 7 == 1:
                    i += 8
                elif key & 7 == 5:
                    i += 4
                else:
                    n, i = _varint(buf, i)
                    i += n
        yield number, wt, payload


def sub(buf: bytes, number: int) -> list[bytes]:
    return [p for n, wt, p in fields(buf) if n == number and wt == 2]


def occurrences_ok(data: bytes, signal: str) -> bool:
    """Every occurrence of every id field is empty or of its fixed length."""
    for res in sub(data, 1):
        for scope in sub(res, 2):
            for item in sub(scope, 2):
                if signal == "logs":
                    checks = [(item, 9, 16), (item, 10, 8)]
                else:
                    checks = [(item, 1, 16), (item, 2, 8), (item, 4, 8)]
                    checks += [(link, n, want) for link in sub(item, 13) for n, want in ((1, 16), (2, 8))]
                for holder, number, want in checks:
                    if any(len(v) not in (0, want) for v in sub(holder, number)):
                        return False
    return True


def reference(signal: str, data: bytes) -> tuple[str, Any]:
    try:
        return "ok", otlp.validate(signal, otlp.parse(signal, data))
    except PermanentError as exc:
        return "error", str(exc)


def checked(signal: str, data: bytes) -> tuple[str, Any]:
    try:
        return "ok", otlp.check(signal, data)[0]
    except PermanentError as exc:
        return "error", str(exc)


def agrees(signal: str, data: bytes) -> None:
    want = reference(signal, data)
    got = checked(signal, data)
    if want[0] == "ok" and not occurrences_ok(data, signal):
        assert got[0] == "error" and "every occurrence of the field counts" in got[1], got
    else:
        assert got == want


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted(trace_requests))
def test_check_accepts_what_parse_and_validate_accept(data: bytes) -> None:
    agrees("traces", data)
    try:
        n, info = otlp.check("traces", data)
    except PermanentError:
        return
    msg = otlp.parse("traces", data)
    real = [sp for rs in msg.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    assert n == len(real)
    if info.ids_first:
        assert [b[2:18] for b in wire.walk(data).bodies] == [sp.trace_id for sp in real]
    if info.plain_states:
        assert all(sp.trace_state == "" for sp in real)


@st.composite
def log_requests(draw: Any) -> bytes:
    ids = Parts(draw(st.sampled_from([0, 6, 40]))).ids
    records = st.lists(st.one_of(ids(16).map(lambda v: fld(9, v)), ids(8).map(lambda v: fld(10, v)),
                                 texts.map(lambda v: fld(3, v)), attrs.map(lambda v: fld(6, v)),
                                 texts.map(lambda v: fld(5, fld(1, v))), st.just(vint(9, 1))), max_size=5)
    out = []
    for _ in range(draw(st.integers(0, 2))):
        scopes = [fld(2, b"".join(fld(2, b"".join(r)) for r in draw(st.lists(records, max_size=4))))
                  for _ in range(draw(st.integers(0, 2)))]
        out.append(fld(1, b"".join(scopes)))
    return b"".join(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted(log_requests()))
def test_logs_check_accepts_what_parse_and_validate_accept(data: bytes) -> None:
    agrees("logs", data)


def test_metrics_check_is_parse_and_validate_and_keeps_the_parse() -> None:
    from tests.processors.build import metric_request

    data = metric_request([{"a": 1}, {"b": 2}]).SerializeToString()
    n, info = otlp.check("metrics", data)
    assert n == 2 and info.msg is not None
    assert Batch("metrics", data, n, ids=info).message() is info.msg
    with pytest.raises(PermanentError, match="cannot decode OTLP metrics"):
        otlp.check("metrics", b"\x0a\x05")


# -- the occurrence rule, case by case

TID, SID = b"\x01" * 16, b"\x02" * 8


def one_span(span: bytes) -> bytes:
    return fld(1, fld(2, fld(2, span)))


def canonical(**kw: Any) -> bytes:
    return Span(trace_id=TID, span_id=SID, name="s", **kw).SerializeToString()


@pytest.mark.parametrize(("field", "bad"), [(1, b"\x03" * 5), (2, b"\x03" * 3), (4, b"\x03" * 7)])
def test_a_wrong_occurrence_overridden_by_a_right_one_is_refused(field: int, bad: bytes) -> None:
    name = {1: "trace_id", 2: "span_id", 4: "parent_span_id"}[field]
    data = one_span(fld(field, bad) + canonical(parent_span_id=SID))
    assert reference("traces", data) == ("ok", 1)  # a parser keeps the last occurrence
    with pytest.raises(PermanentError, match=f"invalid {name} at resource_spans\\[0\\].scope_spans\\[0\\]: a span "
                                             f"has an occurrence of {len(bad)} bytes"):
        otlp.check("traces", data)


def test_a_wrong_link_id_occurrence_is_refused() -> None:
    link = fld(1, b"\x03" * 4) + Span.Link(trace_id=TID, span_id=SID).SerializeToString()
    data = one_span(canonical() + fld(13, link))
    assert reference("traces", data) == ("ok", 1)
    with pytest.raises(PermanentError, match="invalid link trace_id at resource_spans"):
        otlp.check("traces", data)


def test_a_wrong_log_id_occurrence_is_refused() -> None:
    record = fld(9, b"\x03" * 5) + fld(9, TID) + fld(10, SID)
    data = fld(1, fld(2, fld(2, record)))
    assert reference("logs", data) == ("ok", 1)
    with pytest.raises(PermanentError, match=r"invalid trace_id at resource_logs\[0\]\.scope_logs\[0\]: a log"):
        otlp.check("logs", data)


def test_empty_or_repeated_right_occurrences_pass_as_before_without_the_ids() -> None:
    for span in (fld(1, b"") + canonical(), canonical() + fld(1, TID), canonical() + fld(2, SID),
                 fld(2, SID) + fld(1, TID) + fld(5, b"s")):  # and ids not first
        data = one_span(span)
        n, info = otlp.check("traces", data)
        assert n == 1 and not info.ids_first and info.msg is not None


def test_counts_that_match_over_a_scope_do_not_hide_a_missing_id() -> None:
    """Two trace_id occurrences in one span and none in the other: two in all, but one span has none."""
    scope = fld(2, canonical() + fld(1, TID)) + fld(2, Span(span_id=SID, name="b").SerializeToString())
    data = fld(1, fld(2, scope))
    want = reference("traces", data)
    assert want == ("error", "invalid trace_id at resource_spans[0].scope_spans[0] span 'b': 0 bytes, want 16")
    assert checked("traces", data) == want
    link = Span.Link(trace_id=TID, span_id=SID).SerializeToString()
    data = one_span(canonical() + fld(13, link + fld(2, SID)) + fld(13, fld(1, TID)))
    assert checked("traces", data) == reference("traces", data) == ("error", "invalid link in span 's' at "
                                                                    "resource_spans[0].scope_spans[0]: trace_id "
                                                                    "must be 16 bytes and span_id 8 bytes")


def test_views_reject_bad_utf8_anywhere_as_the_real_parse_does() -> None:
    """The views keep proto3 strings: upb checks UTF-8 in them as in the real schema."""
    bad = b"\xc3("
    kv = fld(1, b"k") + fld(2, fld(1, bad))
    nested = fld(1, b"k") + fld(2, fld(6, fld(1, kv)))  # in a kvlist_value (AnyValue field 6)
    for span in (canonical() + fld(5, bad), canonical() + fld(3, bad), canonical() + fld(9, kv),
                 canonical() + fld(9, nested), canonical() + fld(11, fld(2, bad)),
                 canonical() + fld(13, Span.Link(trace_id=TID, span_id=SID).SerializeToString() + fld(3, bad)),
                 canonical() + fld(15, fld(2, bad))):
        data = one_span(span)
        assert reference("traces", data)[0] == "error"
        assert checked("traces", data) == reference("traces", data)
        assert "bad UTF-8" in checked("traces", data)[1]
    scope_name = fld(1, fld(2, fld(1, fld(1, bad)) + fld(2, canonical())))
    assert checked("traces", scope_name) == reference("traces", scope_name)
    from google.protobuf import descriptor_pb2

    for view in (schema_views.TRACES, schema_views.TRACE_SCOPES, schema_views.LOGS, schema_views.LOG_SCOPES):
        for dep in view.DESCRIPTOR.file.dependencies:
            proto = descriptor_pb2.FileDescriptorProto()
            dep.CopyToProto(proto)
            assert proto.syntax == "proto3"


def test_batch_carries_ids_with_its_bytes_only() -> None:
    data = one_span(canonical())
    n, info = otlp.check("traces", data)
    batch = Batch("traces", data, n, RequestContext("t"), ids=info)
    assert batch.share().ids is info and batch.with_context(RequestContext("u")).ids is info
    assert batch.message().resource_spans[0].scope_spans[0].spans[0].trace_id == TID  # parsed when asked
    owned = batch.share()
    owned.mutable_message().resource_spans[0].scope_spans[0].spans[0].name = "x"
    assert owned.ids is None and batch.ids is info
    owned.changed()
    assert owned.ids is None
    with pytest.raises(ValueError):
        Batch("traces", None, 1, msg=batch.message(), ids=info)


# -- the sampler with and without the check's ids


def _plain(req: ExportTraceServiceRequest, states: bool) -> ExportTraceServiceRequest:
    if not states:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    sp.trace_state = ""
    return req


def _pair(req: ExportTraceServiceRequest) -> tuple[Batch, Batch]:
    data = req.SerializeToString()
    n, info = otlp.check("traces", data)
    ctx = RequestContext("t", {"env": ("prod",)})
    return Batch("traces", data, n, ctx, ids=info), Batch("traces", data, n, ctx, otlp.parse("traces", data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.booleans(), SAMPLERS)
def test_sampler_decides_the_same_with_the_ids(req: ExportTraceServiceRequest, states: bool,
                                               config: SamplerConfig) -> None:
    s = ProbabilisticSampler(config)
    with_ids, parsed = _pair(_plain(req, states))
    assert with_ids.ids is not None and with_ids.ids.ids_first and (states or with_ids.ids.plain_states)
    same(s.process(with_ids), s.process(parsed), with_ids, parsed)
    same(s.process(with_ids), s.process_upb(parsed), with_ids, parsed)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.booleans(), action_lists, SAMPLERS)
def test_attributes_then_sampler_the_same_with_the_ids(req: ExportTraceServiceRequest, states: bool, actions: Any,
                                                       config: SamplerConfig) -> None:
    """The sampler reads the ids of the batch the attributes processor rewrote (`Batch.rewrite`)."""
    proc = AttributesProcessor(AttributesConfig(actions=tuple(actions)), "traces")
    s = ProbabilisticSampler(config)
    with_ids, parsed = _pair(_plain(req, states))
    mid, ref_mid = proc.process(with_ids), proc.process(parsed)
    assert mid is not None and ref_mid is not None
    same(s.process(mid), s.process_upb(ref_mid), mid, ref_mid)


def test_nesting_depth_limit_is_the_real_parse_s() -> None:
    """The views nest as the real schema does, so upb's depth limit falls at the same place."""

    def nested(depth: int) -> bytes:
        value = fld(1, b"x")  # AnyValue.string_value
        for _ in range(depth):
            value = fld(5, fld(1, value))  # AnyValue.array_value.values
        return value

    outcomes = set()
    for depth in range(40, 56):
        spans_ = one_span(canonical() + fld(9, fld(1, b"k") + fld(2, nested(depth))))
        logs = fld(1, fld(2, fld(2, fld(9, TID) + fld(5, nested(depth)))))
        for signal, data in (("traces", spans_), ("logs", logs)):
            want = reference(signal, data)
            assert checked(signal, data) == want
            outcomes.add(want[0])
    assert outcomes == {"ok", "error"}
