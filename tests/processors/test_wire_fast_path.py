"""The wire-level fast paths of `attributes` and `probabilistic_sampler` against their upb reference
paths (`process_upb`), on random requests: several resources and scopes, attributes with the key
present or absent, random and repeated trace ids, tracestates valid and not, `sampling.priority`."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pipelines import wire
from pipelines.batch import Batch, RequestContext
from pipelines.processors import anyvalue
from pipelines.processors.actions import ActionConfig
from pipelines.processors.attributes import AttributesProcessor
from pipelines.processors.attributes import Config as AttributesConfig
from pipelines.processors.probabilistic_sampler import Config as SamplerConfig
from pipelines.processors.probabilistic_sampler import ProbabilisticSampler

KEYS = ["deployment.environment", "a", "b", "sampling.priority", "env"]
values = st.one_of(st.text(max_size=12), st.integers(-(2**63), 2**63 - 1), st.booleans(),
                   st.floats(allow_nan=False), st.sampled_from(["staging", "deployment.environment"]))
priorities = st.one_of(st.integers(-2, 3), st.sampled_from([0.0, 0.5, -1.5]), st.sampled_from(["0", "1", "x", "2.5"]))
STATES = ["", "ot=th:8", "ot=th:c", "ot=rv:abcdef01234567", "ot=rv:00000000000001;th:4", "ot=th:fffff",
          "vendor=x", "vendor=x,ot=th:8", "ot=th:8;xx:yy,other=1", "ot=th:zz", "bad state", "ot=rv:123",
          "ot=th:0", "a=1,b=2"]
trace_ids = st.one_of(st.binary(min_size=16, max_size=16), st.just(bytes(16)),
                      st.sampled_from([b"\x01" * 16, b"\xff" * 16, bytes(9) + b"\x80" + bytes(6)]))


@st.composite
def requests(draw: Any) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    shared = draw(st.lists(trace_ids, min_size=1, max_size=4))
    for _ in range(draw(st.integers(0, 3))):
        rs = req.resource_spans.add()
        for k, v in draw(st.dictionaries(st.sampled_from(KEYS), values, max_size=2)).items():
            anyvalue.put(rs.resource.attributes, k, anyvalue.from_raw(v))
        if draw(st.booleans()):
            rs.schema_url = "https://r"
        for _ in range(draw(st.integers(0, 3))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.sampled_from(["lib", "other"]))
            if draw(st.booleans()):
                ss.schema_url = "https://s"
            for i in range(draw(st.integers(0, 6))):
                span = ss.spans.add()
                span.trace_id = draw(st.one_of(trace_ids, st.sampled_from(shared)))
                span.span_id = (i + 1).to_bytes(8, "big")
                span.name = draw(st.sampled_from(["s", "deployment.environment", "x" * 200]))
                span.trace_state = draw(st.sampled_from(STATES))
                for k, v in draw(st.dictionaries(st.sampled_from(KEYS), values, max_size=4)).items():
                    anyvalue.put(span.attributes, k, anyvalue.from_raw(v))
                if draw(st.integers(0, 4)) == 0:
                    anyvalue.put(span.attributes, "sampling.priority", anyvalue.from_raw(draw(priorities)))
    return req


def batch_from(req: ExportTraceServiceRequest, ctx: RequestContext | None = None, parsed: bool = True) -> Batch:
    data = req.SerializeToString()
    msg = ExportTraceServiceRequest.FromString(data) if parsed else None
    n = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    return Batch("traces", data, n, ctx or RequestContext("t", {"env": ("prod",)}), msg)


def same(fast: Batch | None, ref: Batch | None, given_: Batch, ref_given: Batch | None = None) -> None:
    """Equal results; where the reference passes its input through, so does the fast path."""
    if ref is None:
        assert fast is None
        return
    assert fast is not None
    assert (ref is (ref_given or given_)) == (fast is given_)
    assert fast.items == ref.items
    a = ExportTraceServiceRequest.FromString(fast.data())
    b = ExportTraceServiceRequest.FromString(ref.data())
    assert a == b
    assert a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


action_lists = st.lists(
    st.builds(lambda key, action, src: ActionConfig(key=key, action=action, **src),
              st.sampled_from(KEYS), st.sampled_from(["insert", "upsert"]),
              st.one_of(values.map(lambda v: {"value": v}),
                        st.sampled_from([{"from_context": "metadata.env"}, {"from_context": "auth.tenant"},
                                         {"from_context": "metadata.absent"}]))),
    min_size=1, max_size=3, unique_by=lambda a: a.key)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), action_lists, st.booleans())
def test_attributes_fast_path_equals_upb(req: ExportTraceServiceRequest, actions: list[ActionConfig],
                                         parsed: bool) -> None:
    proc = AttributesProcessor(AttributesConfig(actions=tuple(actions)), "traces")
    assert proc.wire
    batch = batch_from(req, parsed=parsed)
    out = proc.process(batch)
    same(out, proc.process_upb(batch), batch)
    if out is not None and out is not batch:
        # The note for the next processor: these bytes, walked, from this batch.
        hit = out.rewrite
        assert hit is not None and hit.source is batch
        walked = wire.walk(out.data())
        assert [hit.request.span(i) for i in range(len(hit.request))] == [walked.span(i) for i in range(len(walked))]


SAMPLERS = st.builds(
    lambda pct, mode, seed, fail_closed, precision: SamplerConfig(
        sampling_percentage=pct, mode=mode, hash_seed=seed, fail_closed=fail_closed, sampling_precision=precision),
    st.sampled_from([0.0, 0.001, 25.0, 50.0, 33.3, 100.0, 150.0]),
    st.sampled_from(["", "hash_seed", "proportional", "equalizing"]),
    st.sampled_from([0, 1, 42]), st.booleans(), st.sampled_from([1, 4, 14]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), SAMPLERS, st.booleans())
def test_sampler_fast_path_equals_upb(req: ExportTraceServiceRequest, config: SamplerConfig, parsed: bool) -> None:
    s = ProbabilisticSampler(config)
    batch = batch_from(req, parsed=parsed)
    same(s.process(batch), s.process_upb(batch), batch)


@settings(max_examples=300, deadline=None)
@given(trace_ids, st.sampled_from(STATES), st.sampled_from([-1, 0, 1]), SAMPLERS)
def test_rules_equal_decide(tid: bytes, state: str, prio: int, config: SamplerConfig) -> None:
    s = ProbabilisticSampler(config)
    keep, new = s.decide(tid, state, prio)
    want = (b"" if new is None or new == state else wire.field_bytes(0x1A, new.encode())) if keep else None
    assert s._decide_each([tid], [state], [prio]) == [want]
    if prio == -1:
        assert s._decide_uniform([tid], state) == [want]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), action_lists, SAMPLERS)
def test_attributes_then_sampler_equals_upb_chain(req: ExportTraceServiceRequest, actions: list[ActionConfig],
                                                  config: SamplerConfig) -> None:
    """The sampler reads trace ids from the batch the attributes fast path rewrote (Batch.rewrite)."""
    proc = AttributesProcessor(AttributesConfig(actions=tuple(actions)), "traces")
    s = ProbabilisticSampler(config)
    batch = batch_from(req)
    mid = proc.process(batch)
    assert mid is not None
    ref_mid = proc.process_upb(batch)
    assert ref_mid is not None
    same(s.process(mid), s.process_upb(ref_mid), mid, ref_mid)


def test_insert_of_an_absent_key_appends_one_field_per_span() -> None:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(3):
        ss.spans.add(trace_id=bytes([i + 1]) * 16, span_id=b"\x01" * 8, name=f"s{i}")
    proc = AttributesProcessor(AttributesConfig(actions=(
        ActionConfig(key="deployment.environment", value="staging", action="insert"),)), "traces")
    batch = batch_from(req)
    out = proc.process(batch)
    assert out is not None and out.message() == proc.process_upb(batch).message()  # type: ignore[union-attr]
    # Canonical input, attribute appended last: the bytes are the upb serialization itself.
    assert out.data() == proc.process_upb(batch).data()  # type: ignore[union-attr]
    hit = out.rewrite  # type: ignore[union-attr]
    assert hit is not None and hit.source is batch
    assert wire.rebuild(hit.request, [b""] * 3) == out.data()  # type: ignore[union-attr]


def test_non_canonical_spans_duplicate_trace_state_and_unknown_fields() -> None:
    """Bytes no encoder writes but a parser accepts: a span with two trace_state fields (the last
    wins), unknown fields at every level. The fast paths give what the upb paths give."""
    span = Span(trace_id=b"\x07" * 16, span_id=b"\x01" * 8, name="s", trace_state="ot=th:c").SerializeToString()
    span += wire.field_bytes(0x1A, b"") + wire.field_bytes(0x1A, b"vendor=1") + b"\xf8\x07\x05"  # unknown 127
    scope = wire.field_bytes(0x12, span) + b"\xa0\x06\x01"  # unknown field 100 in ScopeSpans
    res = wire.field_bytes(0x12, scope) + b"\xa0\x06\x02"
    data = wire.field_bytes(0x0A, res) + b"\xa0\x06\x03"
    msg = ExportTraceServiceRequest.FromString(data)
    assert msg.resource_spans[0].scope_spans[0].spans[0].trace_state == "vendor=1"
    for pct in (0.0, 50.0, 100.0):
        s = ProbabilisticSampler(SamplerConfig(sampling_percentage=pct))
        for parsed in (True, False):
            batch = Batch("traces", data, 1, RequestContext(), msg if parsed else None)
            same(s.process(batch), s.process_upb(batch), batch)
    proc = AttributesProcessor(AttributesConfig(actions=(ActionConfig(key="k", value=1, action="upsert"),)), "traces")
    batch = Batch("traces", data, 1, RequestContext(), msg)
    same(proc.process(batch), proc.process_upb(batch), batch)


def test_walk_rebuild_round_trip_and_bad_bytes() -> None:
    req = ExportTraceServiceRequest()
    for r in range(2):
        rs = req.resource_spans.add(schema_url=f"r{r}")
        for s in range(2):
            ss = rs.scope_spans.add(schema_url=f"s{s}")
            for i in range(3):
                ss.spans.add(trace_id=bytes([i + 1]) * 16, span_id=b"\x01" * 8, name="n" * (60 * i))
    data = req.SerializeToString()
    walked = wire.walk(data)
    assert len(walked) == 12
    assert wire.rebuild(walked, [b""] * 12) == data
    kept = wire.rebuild(walked, [None] * 6 + [b""] * 6, prune=True)
    assert len(ExportTraceServiceRequest.FromString(kept).resource_spans) == 1
    for bad in (data[:-1], b"\x0a\x05\x12\x10", b"\x0b\x00"):
        try:
            wire.walk(bad)
        except wire.WireError:
            continue
        raise AssertionError(f"walk accepted {bad!r}")


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.integers(0, 2**32 - 1))
def test_unrolled_fnv_equals_the_loop(tid: bytes, seed: int) -> None:
    from pipelines.processors.probabilistic_sampler import fnv1a32, fnv1a32_16

    h = fnv1a32(seed.to_bytes(4, "little"))
    assert fnv1a32_16(tid, h) == fnv1a32(tid, h)


resource_actions = st.lists(st.one_of(
    action_lists.map(lambda acts: acts[0]),
    st.builds(lambda key, action: ActionConfig(key=key, action=action), st.sampled_from(KEYS),
              st.sampled_from(["delete", "hash"])),
    st.builds(lambda key, to: ActionConfig(key=key, action="convert", converted_type=to), st.sampled_from(KEYS),
              st.sampled_from(["int", "double", "string"])),
    st.builds(lambda key, value, action: ActionConfig(key=key, value=value, action=action), st.sampled_from(KEYS),
              values, st.sampled_from(["update", "upsert"]))), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), resource_actions, st.booleans())
def test_resource_fast_path_equals_upb(req: ExportTraceServiceRequest, actions: list[ActionConfig],
                                       parsed: bool) -> None:
    from pipelines.processors.resource import Config as ResourceConfig
    from pipelines.processors.resource import ResourceProcessor

    proc = ResourceProcessor(ResourceConfig(attributes=tuple(actions)), "traces")
    batch = batch_from(req, parsed=parsed)
    same(proc.process(batch), proc.process_upb(batch), batch)


def test_resource_fast_path_other_signals_and_merged_resources() -> None:
    from pipelines import otlp
    from pipelines.processors.resource import Config as ResourceConfig
    from pipelines.processors.resource import ResourceProcessor
    from tests.processors.build import log_request, metric_request

    acts = (ActionConfig(key="env", value="prod", action="upsert"), ActionConfig(key="a", action="delete"))
    for signal, req in (("logs", log_request([{"x": 1}], {"service.name": "s", "a": 1})),
                        ("metrics", metric_request([{"x": 1}], {"service.name": "s", "a": 1}))):
        proc = ResourceProcessor(ResourceConfig(attributes=acts), signal)
        data = req.SerializeToString()
        batch = Batch(signal, data, 1, RequestContext(), otlp.parse(signal, data))  # type: ignore[arg-type]
        same(proc.process(batch), proc.process_upb(batch), batch)
    # A resource field that occurs twice is one merged resource to a parser; so it is here.
    res1 = wire.field_bytes(0x0A, wire.field_bytes(0x0A, b"\x0a\x01a\x12\x02\x18\x01"))  # attributes a=1
    res2 = wire.field_bytes(0x0A, wire.field_bytes(0x0A, b"\x0a\x01b\x12\x02\x18\x02"))  # attributes b=2
    span = Span(trace_id=b"\x07" * 16, span_id=b"\x01" * 8).SerializeToString()
    data = wire.field_bytes(0x0A, res1 + wire.field_bytes(0x12, wire.field_bytes(0x12, span)) + res2)
    msg = ExportTraceServiceRequest.FromString(data)
    assert [kv.key for kv in msg.resource_spans[0].resource.attributes] == ["a", "b"]
    proc = ResourceProcessor(ResourceConfig(attributes=acts), "traces")
    batch = Batch("traces", data, 1, RequestContext(), msg)
    same(proc.process(batch), proc.process_upb(batch), batch)
