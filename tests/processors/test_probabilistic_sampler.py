"""The probabilistic sampler: hash_seed decisions equal a reference written here from the published
description of the Collector's algorithm; whole traces; the sampled fraction; tracestate th/rv as the
Collector writes them; proportional/equalizing (OTEP 235); sampling.priority; fail_closed; config."""

from __future__ import annotations

import ctypes
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.decode import Errors, decode
from pipelines.processors.probabilistic_sampler import Config, ProbabilisticSampler
from pipelines.processors.tracestate import TraceState, probability_to_threshold
from tests.processors.build import batch_of, span_request


def reference_keep(trace_id: bytes, seed: int, percentage: float) -> bool:
    """From the description: FNV-1a 32 (offset basis 2166136261, prime 16777619) over the seed as 4
    little-endian bytes then the 16 trace-id bytes; bucket = low 14 bits; kept iff
    bucket < uint32(float32(pct) * float32(16384 / 100)), the product rounded to float32."""
    h = 2166136261
    for byte in seed.to_bytes(4, "little") + trace_id:
        h = ((h ^ byte) * 16777619) % 2**32
    pct = min(ctypes.c_float(percentage).value, 100.0)
    scaled = int(ctypes.c_float(pct * ctypes.c_float(163.84).value).value)
    return (h & 0x3FFF) < scaled


def sampler(**kw: Any) -> ProbabilisticSampler:
    return ProbabilisticSampler(Config(**kw))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16).filter(any), st.integers(0, 2**32 - 1),
       st.floats(0.001, 150, allow_nan=False))
def test_hash_seed_decisions_equal_the_reference(trace_id: bytes, seed: int, pct: float) -> None:
    s = sampler(sampling_percentage=pct, hash_seed=seed, mode="hash_seed")
    assert s.decide(trace_id, "")[0] == reference_keep(trace_id, seed, pct)


@pytest.mark.parametrize("pct", [25.0, 15.3, 33.33, 0.01, 99.99, 50.0])
def test_hash_seed_agreement_over_many_traces(pct: float) -> None:
    rng = random.Random(pct)
    s = sampler(sampling_percentage=pct, hash_seed=1234)
    ids = [rng.randbytes(16) for _ in range(5000)]
    assert [s.decide(t, "")[0] for t in ids] == [reference_keep(t, 1234, pct) for t in ids]


@pytest.mark.parametrize("mode", ["hash_seed", "proportional", "equalizing"])
def test_fraction_of_20000_random_traces_at_25_percent(mode: str) -> None:
    rng = random.Random(20_000)
    s = sampler(sampling_percentage=25, hash_seed=7 if mode == "hash_seed" else 0, mode=mode)
    kept = sum(s.decide(rng.randbytes(16), "")[0] for _ in range(20_000))
    assert 0.235 <= kept / 20_000 <= 0.265, kept / 20_000


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 3)), min_size=1, max_size=120),
       st.sampled_from(["hash_seed", "proportional", "equalizing"]), st.floats(1, 99))
def test_whole_traces_are_kept_or_dropped_together(spans: list[tuple[int, int]], mode: str, pct: float) -> None:
    ids = {t: random.Random(t).randbytes(16) for t, _ in spans}
    req = span_request([{"trace_id": ids[t], "name": f"s{k}"} for t, k in spans])
    s = sampler(sampling_percentage=pct, mode=mode, hash_seed=3)
    out = s.process(batch_of(req))
    kept = [] if out is None else [sp.trace_id for rs in out.message().resource_spans
                                   for ss in rs.scope_spans for sp in ss.spans]
    for t, tid in ids.items():
        n_in = sum(1 for u, _ in spans if u == t)
        assert kept.count(tid) in (0, n_in)
    # a second process with the same config decides the same
    out2 = sampler(sampling_percentage=pct, mode=mode, hash_seed=3).process(batch_of(req))
    assert (out2.data() if out2 else None) == (out.data() if out else None)
    if out is not None:
        assert out.items == len(kept)


def test_hash_seed_writes_rv_and_th_as_the_collector() -> None:
    tid = bytes(range(1, 17))
    keep, state = sampler(sampling_percentage=100, hash_seed=1).decide(tid, "vendor=x")
    assert keep and state is not None
    parsed = TraceState.parse(state)
    assert state.startswith("ot=rv:") and state.endswith(";th:0,vendor=x")
    h = 2166136261
    for byte in (1).to_bytes(4, "little") + tid:
        h = ((h ^ byte) * 16777619) % 2**32
    assert parsed.randomness >> 42 == 0x3FFF - (h & 0x3FFF)
    # 25%: reject threshold 3/4 of the range, written "c"
    s = sampler(sampling_percentage=25, hash_seed=1)
    kept = next(st for t in (random.Random(i).randbytes(16) for i in range(100))
                for keep, st in [s.decide(t, "")] if keep)
    assert kept is not None and kept.endswith(";th:c")


def test_hash_seed_refuses_tracestates_that_carry_sampling_info() -> None:
    tid = bytes(range(1, 17))
    assert sampler(sampling_percentage=100, hash_seed=1).decide(tid, "ot=th:8") == (False, None)
    assert sampler(sampling_percentage=100, hash_seed=1, fail_closed=False).decide(tid, "ot=rv:00000000000001") == (
        True, None)


def test_proportional_multiplies_and_only_raises_th() -> None:
    high = bytes(8) + b"\x00" + b"\xff" * 7  # randomness ffffffffffffff: kept at any threshold
    s = sampler(sampling_percentage=25)
    assert s.decide(high, "") == (True, "ot=th:c")
    assert s.decide(high, "ot=th:8,x=y") == (True, "ot=th:e,x=y")  # 1/2 * 1/4 = 1/8
    assert s.decide(high, "ot=rv:ffffffffffffff;th:c") == (True, "ot=rv:ffffffffffffff;th:f")
    eq = sampler(sampling_percentage=50, mode="equalizing")
    assert eq.decide(high, "") == (True, "ot=th:8")
    assert eq.decide(high, "ot=th:e") == (True, "ot=th:e")  # arriving at 1/8: not raised back to 1/2


def test_randomness_from_rv_else_low_56_bits_of_trace_id() -> None:
    s = sampler(sampling_percentage=50, mode="equalizing")
    low = b"\xff" * 9 + b"\x00" * 7
    assert s.decide(low, "")[0] is False
    assert s.decide(low, "ot=rv:80000000000000")[0] is True
    assert s.decide(low, "ot=rv:7fffffffffffff")[0] is False


def test_inconsistent_th_and_bad_tracestate_fail_closed_or_open() -> None:
    low = b"\xff" * 9 + b"\x00" * 7
    assert sampler(sampling_percentage=100).decide(low, "ot=th:8") == (False, None)
    assert sampler(sampling_percentage=100, fail_closed=False).decide(low, "ot=th:8") == (True, "ot=th:0")
    assert sampler(sampling_percentage=100).decide(low, "ot=th:zz") == (False, None)
    assert sampler(sampling_percentage=100, fail_closed=False).decide(low, "bad tracestate") == (True, None)
    assert sampler(sampling_percentage=100).decide(bytes(16), "")[0] is False  # no randomness


def test_sampling_priority_overrides() -> None:
    req = span_request([{"attrs": {"sampling.priority": 0}}, {"attrs": {"sampling.priority": 1}},
                        {"attrs": {"sampling.priority": "2.5"}}, {"attrs": {"sampling.priority": -1}}, {}])
    out = sampler(sampling_percentage=0.0000001).process(batch_of(req))
    assert out is not None
    names = [sp.name for rs in out.message().resource_spans for ss in rs.scope_spans for sp in ss.spans]
    assert names == ["span-1", "span-2"]
    out = sampler(sampling_percentage=100).process(batch_of(req))
    assert out is not None and out.items == 4


def test_nothing_kept_returns_none_and_empty_containers_are_pruned() -> None:
    req = span_request([{"attrs": {"sampling.priority": 0}}] * 3)
    assert sampler(sampling_percentage=100).process(batch_of(req)) is None
    req.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 8)
    out = sampler(sampling_percentage=100).process(batch_of(req))
    assert out is not None and len(out.message().resource_spans) == 1 and out.items == 1


def test_probability_to_threshold_precision() -> None:
    assert probability_to_threshold(0.25, 4) == 0xC << 52
    assert probability_to_threshold(1 / 3, 4) == 0xAAAB << 40
    assert probability_to_threshold(1 / 3, 0) == (1 << 56) - round((1 << 56) / 3)
    assert probability_to_threshold(1.0, 4) == 0


@pytest.mark.parametrize(("body", "messages"), [
    ({"sampling_percentage": -1}, ["sampling rate is negative: -1.000000%"]),
    ({"sampling_percentage": float("inf")}, ["sampling rate is invalid: +Inf%"]),
    ({"sampling_percentage": 1e-15}, ["sampling rate is too small: 1e-15%"]),
    ({"sampling_precision": 0}, ["invalid sampling precision: 0"]),
    ({"sampling_precision": 15}, ["sampling precision is too great, should be <= 14: 15"]),
    ({"mode": "random"}, ['unsupported sampler mode "random"']),
    ({"hash_seed": 2**32}, ["hash_seed 4294967296 does not fit in 32 bits (0 to 4294967295)"]),
])
def test_config_errors(body: dict[str, Any], messages: list[str]) -> None:
    errors = Errors()
    decode(Config, body, "processors::probabilistic_sampler", errors)
    assert errors.lines == [f"processors::probabilistic_sampler: {m}" for m in messages]


def test_defaults_are_the_collectors() -> None:
    c = Config()
    assert (c.sampling_percentage, c.fail_closed, c.sampling_precision, c.resolved_mode()) == (
        0.0, True, 4, "proportional")
    assert Config(hash_seed=5).resolved_mode() == "hash_seed"


def test_sampling_precision_is_the_number_of_hex_digits_of_th() -> None:
    high = bytes(8) + b"\x00" + b"\xff" * 7  # kept at any threshold
    assert sampler(sampling_percentage=100 / 3).decide(high, "") == (True, "ot=th:aaab")  # the default, 4
    assert sampler(sampling_percentage=100 / 3, sampling_precision=2).decide(high, "") == (True, "ot=th:ab")
    assert sampler(sampling_percentage=100 / 3, sampling_precision=10).decide(high, "") == (True, "ot=th:aaaaaae148")
