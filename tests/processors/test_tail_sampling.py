"""The tail sampler's pure part (`pipelines.tail_sampling`): each key changes what is decided, when,
or what is held; the side-by-side test with the Collector is tests/interop/test_tail_sampling_side_by_side.py."""

from __future__ import annotations

import random
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.config.decode import Errors, decode
from pipelines.batch import EMPTY_CONTEXT, RequestContext
from pipelines.tail_sampling import policies as pol
from pipelines.tail_sampling.config import Config
from pipelines.tail_sampling.engine import Engine, TraceKey, trace_key
from pipelines.tail_sampling.split import Piece, join, split

ALWAYS = {"name": "all", "type": "always_sample"}
ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}


def config(**raw: Any) -> Config:
    errors = Errors()
    cfg = decode(Config, {"policies": [ALWAYS], **raw}, "processors::tail_sampling", errors)
    assert cfg is not None and not errors, errors.lines
    return cfg


def refused(**raw: Any) -> list[str]:
    errors = Errors()
    decode(Config, raw, "processors::tail_sampling", errors)
    return errors.lines


def trace(n: int, spans: int = 1, root: bool = True, error: bool = False, attrs: dict[str, Any] | None = None,
          size: int = 0) -> list[Piece]:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(spans):
        span = ss.spans.add()
        span.trace_id = n.to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        span.parent_span_id = b"" if (root and i == 0) else b"\x01" * 8
        span.status.code = 2 if error else 0
        span.name = "x" * size
        for k, v in (attrs or {}).items():
            kv = span.attributes.add()
            kv.key = k
            if isinstance(v, bool):
                kv.value.bool_value = v
            elif isinstance(v, int):
                kv.value.int_value = v
            else:
                kv.value.string_value = v
    return split(req)


def tid(n: int) -> TraceKey:
    """Trace n's key, for a request with no tenant."""
    return trace_key(EMPTY_CONTEXT, n.to_bytes(16, "big"))


def decide_all(engine: Engine, now: float) -> dict[TraceKey, str]:
    return {t: engine.decide(t, now).decision for t in engine.due(now)}


def test_decision_wait_and_decision_wait_after_root_received() -> None:
    engine = Engine(config(decision_wait="5s", decision_wait_after_root_received="1s"))
    engine.offer(trace(1, root=False), 100.0)
    engine.offer(trace(2, root=True), 100.0)
    assert engine.due(100.9) == []
    assert engine.due(101.0) == [tid(2)]  # its root span arrived: 1 s
    assert sorted(engine.due(105.0)) == [tid(1), tid(2)]  # decision_wait: 5 s
    plain = Engine(config(decision_wait="2s"))
    plain.offer(trace(2, root=True), 100.0)
    assert plain.due(101.5) == [] and plain.due(102.0) == [tid(2)]


def test_late_spans_follow_the_decision_remembered_by_num_traces_or_decision_cache() -> None:
    engine = Engine(config(decision_wait="1s", num_traces=3, policies=[ERRORS]))
    engine.offer(trace(1, error=True) + trace(2) + trace(3), 0.0)
    assert decide_all(engine, 1.0) == {tid(1): pol.SAMPLED, tid(2): pol.NOT_SAMPLED, tid(3): pol.NOT_SAMPLED}
    late = engine.offer(trace(1, root=False) + trace(2, root=False) + trace(3, root=False), 2.0)
    assert late.forward_spans == 1 and late.late_dropped == 2 and not engine.pending
    # Without a decision cache the last num_traces (3) decisions are remembered: a fourth pushes out the first.
    engine.offer(trace(4), 2.0)
    engine.decide(tid(4), 3.0)
    again = engine.offer(trace(1, root=False), 4.0)
    assert again.new_traces == 1 and tid(1) in engine.pending

    cached = Engine(config(decision_wait="1s", policies=[ERRORS],
                           decision_cache={"sampled_cache_size": 1, "non_sampled_cache_size": 5}))
    cached.offer(trace(1, error=True) + trace(2, error=True) + trace(3), 0.0)
    decide_all(cached, 1.0)
    late = cached.offer(trace(1, root=False) + trace(2, root=False) + trace(3, root=False), 2.0)
    # The sampled cache holds one id (the last kept, trace 2); trace 3 stays in the non-sampled cache.
    assert len(late.forward) == 1 and late.forward_spans == 1 and late.late_dropped == 1
    assert list(cached.pending) == [tid(1)]


def test_two_tenants_with_one_trace_id_hold_and_decide_two_traces() -> None:
    a, b = RequestContext("team-a"), RequestContext("team-b", {"x-team": ("blue",)})
    engine = Engine(config(decision_wait="1s", policies=[ERRORS]))
    engine.offer(trace(1, error=True), 0.0, a)
    engine.offer(trace(1, spans=2), 0.0, b)  # b reuses a's trace id: its spans are not a's
    assert engine.pending.keys() == {trace_key(a, tid(1)[1]), trace_key(b, tid(1)[1])}
    decided = {d.key: d for d in (engine.decide(k, 1.0) for k in engine.due(1.0))}
    da, db = decided[trace_key(a, tid(1)[1])], decided[trace_key(b, tid(1)[1])]
    assert (da.decision, da.spans, [p.context for p in da.pieces]) == (pol.SAMPLED, 1, [a])
    assert (db.decision, db.spans, [p.context for p in db.pieces]) == (pol.NOT_SAMPLED, 2, [b])
    # A late span follows its own tenant's decision.
    assert engine.offer(trace(1, root=False), 2.0, b).late_dropped == 1
    late = engine.offer(trace(1, root=False), 2.0, a)
    assert late.forward_spans == 1 and [p.context for p in late.forward] == [a]


def test_num_traces_decides_the_oldest_early_instead_of_losing_it() -> None:
    engine = Engine(config(decision_wait="10s", num_traces=2))
    engine.offer(trace(1), 0.0)
    engine.offer(trace(2), 1.0)
    offer = engine.offer(trace(3), 2.0)
    assert [(d.key, d.reason, d.decision) for d in offer.decided] == [(tid(1), "num_traces", pol.SAMPLED)]
    assert list(engine.pending) == [tid(2), tid(3)]


def test_maximum_trace_size_bytes_drops_a_trace_that_grows_past_it() -> None:
    engine = Engine(config(maximum_trace_size_bytes=400))
    assert engine.offer(trace(1, size=100), 0.0).decided == []
    offer = engine.offer(trace(1, root=False, spans=3, size=100), 0.0)
    assert [(d.reason, d.decision, d.spans) for d in offer.decided] == [("too_large", pol.NOT_SAMPLED, 4)]
    assert engine.offer(trace(1, root=False), 1.0).late_dropped == 1


def test_max_pending_bytes_counts_everything_pending_and_the_largest_trace_pays() -> None:
    engine = Engine(config(max_pending_bytes=40_000, decision_wait="30s"))
    for n in range(1, 11):
        engine.offer(trace(n, spans=2), 0.0)
    assert engine.pressure() == []
    small = engine.pending_bytes
    assert small == sum(t.held for t in engine.pending.values()) and small < 4_000
    engine.offer(trace(99, spans=300, size=100), 1.0)  # one giant trace
    assert engine.pending_bytes > 0.9 * 40_000
    assert engine.pressure() == [tid(99)]  # the giant one is decided early; the others wait their turn
    d = engine.decide(tid(99), 1.0, "max_pending_bytes")
    assert d.kept and d.spans == 300 and engine.pending_bytes == small
    assert not engine.fits(40_000 - small + 1) and engine.fits(40_000 - small)


def test_drop_policies_come_first_and_sample_on_first_match_stops_early() -> None:
    drop = {"name": "nohealth", "type": "drop", "drop": {"drop_sub_policy": [
        {"name": "h", "type": "string_attribute", "string_attribute": {"key": "route", "values": ["/health"]}}]}}
    limiter = {"name": "rl", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 1, "burst_capacity": 1}}
    engine = Engine(config(policies=[limiter, drop, ERRORS], decision_wait="1s"))
    engine.offer(trace(1, attrs={"route": "/health"}, error=True) + trace(2), 0.0)
    d1, d2 = (engine.decide(t, 1.0) for t in (tid(1), tid(2)))
    assert (d1.decision, d1.policy, d1.evaluations) == (pol.DROPPED, "nohealth", [("nohealth", pol.DROPPED)])
    # The dropped trace spent nothing of the rate limiter: trace 2 gets its one token.
    assert (d2.decision, d2.policy) == (pol.SAMPLED, "rl")
    assert [name for name, _ in d2.evaluations] == ["nohealth", "rl", "errors"]
    first = Engine(config(policies=[ALWAYS, ERRORS], sample_on_first_match=True))
    first.offer(trace(3, error=True), 0.0)
    assert [name for name, _ in first.decide(tid(3), 99.0).evaluations] == ["all"]


def test_policy_keys_decide_as_the_collector_does() -> None:
    def decide(policy: dict[str, Any], pieces: list[Piece]) -> str:
        engine = Engine(config(policies=[policy]))
        engine.offer(pieces, 0.0)
        return engine.decide(trace_key(EMPTY_CONTEXT, pieces[0].trace_id), 100.0).decision

    numeric = {"key": "code", "min_value": 500, "max_value": 599}
    assert decide({"name": "n", "type": "numeric_attribute", "numeric_attribute": numeric},
                  trace(1, attrs={"code": 503})) == pol.SAMPLED
    assert decide({"name": "n", "type": "numeric_attribute", "numeric_attribute": {**numeric, "invert_match": True}},
                  trace(1, attrs={"code": 503})) == pol.NOT_SAMPLED
    assert decide({"name": "b", "type": "boolean_attribute", "boolean_attribute": {"key": "retry", "value": False}},
                  trace(1, attrs={"retry": False})) == pol.SAMPLED
    assert decide({"name": "b", "type": "boolean_attribute",
                   "boolean_attribute": {"key": "retry", "value": True, "invert_match": True}},
                  trace(1, attrs={"retry": True})) == pol.NOT_SAMPLED
    assert decide({"name": "l", "type": "latency", "latency": {"threshold_ms": 0, "upper_threshold_ms": 5}},
                  trace(1)) == pol.NOT_SAMPLED  # a zero-length span: 0 ms is not above 0
    assert decide({"name": "c", "type": "span_count", "span_count": {"min_spans": 2, "max_spans": 3}},
                  trace(1, spans=3)) == pol.SAMPLED
    assert decide({"name": "c", "type": "span_count", "span_count": {"min_spans": 2, "max_spans": 3}},
                  trace(1, spans=4)) == pol.NOT_SAMPLED
    assert decide({"name": "s", "type": "string_attribute", "string_attribute": {
        "key": "route", "values": ["^/a.*"], "enabled_regex_matching": True, "invert_match": True}},
        trace(1, attrs={"route": "/b"})) == pol.SAMPLED
    assert decide({"name": "a", "type": "and", "and": {"and_sub_policy": [
        ERRORS, {"name": "n", "type": "not", "not": {"not_sub_policy": {"type": "trace_flags"}}}]}},
        trace(1, error=True)) == pol.SAMPLED
    assert decide({"name": "n", "type": "not", "not": {"not_sub_policy": ERRORS}}, trace(1)) == pol.SAMPLED
    salted = {"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 50, "hash_salt": "s"}}
    ids = [int.from_bytes(random.Random(7).randbytes(16)) ^ n << 64 for n in range(1, 201)]
    kept = sum(decide(salted, trace(n)) == pol.SAMPLED for n in ids)
    unsalted = {"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 50}}
    assert 70 < kept < 130
    assert [decide(salted, trace(n)) for n in ids] != [decide(unsalted, trace(n)) for n in ids]


def test_probabilistic_threshold_is_the_collectors_big_float_product() -> None:
    assert pol.probabilistic_threshold(0.0) == 0
    assert pol.probabilistic_threshold(1.0) == 2**64 - 1
    # MaxUint64 x ratio needs no rounding at 64 bits of mantissa here: the fraction is truncated.
    assert pol.probabilistic_threshold(0.5) == 2**63 - 1
    assert pol.probabilistic_threshold(0.25) == 2**62 - 1
    # 0.1 is not exact: the product is rounded to 64 bits first (ulp 2**-3 here), then truncated.
    assert pol.probabilistic_threshold(0.1) == 1844674407370955263  # from Go: big.Float, as the Collector
    assert pol.probabilistic_threshold(0.9999999) == 18446742229035145215
    assert pol.fnv64a(b"") == 0xCBF29CE484222325 and pol.fnv64a(b"a") == 0xAF63DC4C8601EC8C


def test_rate_and_bytes_limiting_are_token_buckets_with_burst_capacity() -> None:
    def kept(policy: dict[str, Any], times: list[float], spans: int = 10) -> list[bool]:
        engine = Engine(config(policies=[policy]))
        out = []
        for i, now in enumerate(times):
            engine.offer(trace(i + 1, spans=spans), now)
            out.append(engine.decide(tid(i + 1), now).kept)
        return out

    rate = {"name": "r", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 10}}
    assert kept(rate, [0, 0, 0, 1, 1.5]) == [True, True, False, True, False]  # burst: 2 x 10
    burst = {"name": "r", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 10, "burst_capacity": 30}}
    assert kept(burst, [0, 0, 0, 0]) == [True, True, True, False]
    size = len(join([p.data for p in trace(1, spans=10)]))
    by_bytes = {"name": "b", "type": "bytes_limiting", "bytes_limiting": {"bytes_per_second": size,
                                                                           "burst_capacity": size}}
    assert kept(by_bytes, [0, 0, 1]) == [True, False, True]


def test_composite_shares_max_total_spans_per_second_by_rate_allocation() -> None:
    composite = {"name": "c", "type": "composite", "composite": {
        "max_total_spans_per_second": 10, "policy_order": ["errs", "all"],
        "composite_sub_policy": [{"name": "errs", "type": "and", "and": {"and_sub_policy": [ERRORS]}}, ALWAYS],
        "rate_allocation": [{"policy": "errs", "percent": 80}, {"policy": "all", "percent": 20}]}}
    engine = Engine(config(policies=[composite]))
    results = []
    for n, err in ((1, True), (2, True), (3, False), (4, False), (5, False)):
        engine.offer(trace(n, spans=4 if err else 2, error=err), 0.0)
        results.append(engine.decide(tid(n), 7.2).kept)
    # errs may take 8 spans a second (two traces of 4), all 2 (one trace of 2); sub-policies in their
    # listed order, as the Collector evaluates them whatever policy_order says.
    assert results == [True, True, True, False, False]
    engine.offer(trace(6, spans=2), 0.0)
    assert engine.decide(tid(6), 8.0).kept  # a new second


def test_ottl_condition_error_mode() -> None:
    failing = ['attributes["x"] + 1 > 2']

    def run(mode: str, span: list[str], spanevent: tuple[str, ...] = ()) -> tuple[str, int]:
        cond = {"span": span, "spanevent": list(spanevent)} | ({"error_mode": mode} if mode else {})
        engine = Engine(config(policies=[{"name": "o", "type": "ottl_condition", "ottl_condition": cond}, ERRORS]))
        engine.offer(trace(1, attrs={"x": "not a number"}), 0.0)
        d = engine.decide(tid(1), 9.0)
        return d.decision, d.errors

    assert run("propagate", failing) == (pol.NOT_SAMPLED, 1)  # counted, skipped
    assert run("ignore", failing) == (pol.NOT_SAMPLED, 0)
    assert run("", [*failing, 'attributes["x"] == "not a number"']) == (pol.SAMPLED, 0)
    assert run("silent", ['name == "none"'], ('name == "none"',)) == (pol.NOT_SAMPLED, 0)


def test_string_attribute_cache_max_size_bounds_the_regex_results_kept() -> None:
    policy = pol.StringAttribute(decode_policy({"key": "k", "values": ["a+"], "enabled_regex_matching": True,
                                                "cache_max_size": 3}))
    for s in ("a", "b", "aa", "c", "d"):
        policy.match(s)
    assert list(policy.cache) == ["aa", "c", "d"]
    assert len(pol.StringAttribute(decode_policy({"values": ["a"], "enabled_regex_matching": True})).cache) == 0


def decode_policy(raw: dict[str, Any]) -> Any:
    return config(policies=[{"name": "s", "type": "string_attribute", "string_attribute": raw}]).policies[0] \
        .string_attribute


def test_expected_new_traces_per_sec_is_accepted_and_changes_no_decision() -> None:
    a = Engine(config(expected_new_traces_per_sec=10_000, policies=[ERRORS]))
    b = Engine(config(policies=[ERRORS]))
    for e in (a, b):
        e.offer(trace(1, error=True) + trace(2), 0.0)
    assert decide_all(a, 99.0) == decide_all(b, 99.0)


def test_config_errors_name_the_key() -> None:
    lines = refused(policies=[
        {"name": "x", "type": "status_code", "status_code": {"status_codes": ["BAD"]}},
        {"name": "x", "type": "numeric_attribute", "numeric_attribute": {"key": "k"}},
        {"name": "", "type": "and", "and": {"and_sub_policy": [{"name": "c", "type": "composite"}]}},
        {"name": "r", "type": "string_attribute",
         "string_attribute": {"values": ["("], "enabled_regex_matching": True}},
        {"name": "o", "type": "ottl_condition", "ottl_condition": {}},
    ], sampling_strategy="span-ingest", num_shards=4, tail_storage="x", max_pending_bytes=0)
    text = "\n".join(lines)
    for expected in (
        "sampling_strategy: not supported by this gateway", "num_shards: not supported",
        "tail_storage: not supported",
    ):
        assert expected in text, text
    assert refused(policies=[ALWAYS], max_pending_bytes=0) == [
        "processors::tail_sampling: max_pending_bytes must be positive"]
    lines = refused(policies=[
        {"name": "x", "type": "status_code", "status_code": {"status_codes": ["BAD"]}},
        {"name": "x", "type": "numeric_attribute", "numeric_attribute": {"key": "k"}},
        {"name": "", "type": "and", "and": {"and_sub_policy": [{"name": "c", "type": "composite"}]}},
        {"name": "o", "type": "ottl_condition", "ottl_condition": {}}], storage="redis")
    assert lines == [
        "processors::tail_sampling: storage 'redis': want a file_storage extension id",
        'processors::tail_sampling: policies[0]::status_code: unknown status code "BAD", supported: OK, ERROR, UNSET',
        "processors::tail_sampling: policies[1]: duplicate policy name 'x'",
        "processors::tail_sampling: policies[1]::numeric_attribute: at least one of min_value or max_value must be set",
        "processors::tail_sampling: policies[2]: policy name cannot be empty",
        "processors::tail_sampling: policies[2]::and::and_sub_policy[0]: unknown sampling policy type composite",
        "processors::tail_sampling: policies[3]::ottl_condition: expected at least one OTTL condition to filter on",
    ]


def test_split_keeps_each_trace_with_its_resource_and_scope() -> None:
    pieces = trace(1, spans=2) + trace(2, spans=1)
    assert [(p.trace_id, p.spans, p.has_root) for p in pieces] == [(tid(1)[1], 2, True), (tid(2)[1], 1, True)]
    req = ExportTraceServiceRequest.FromString(join([p.data for p in pieces]))
    assert [len(rs.scope_spans[0].spans) for rs in req.resource_spans] == [2, 1]
