"""The tail sampler's policies, decision for decision the Collector's (contrib v0.161.0,
`processor/tailsamplingprocessor/internal/sampling`, with the `usetracestate` gate off, its default).

A policy looks at a whole trace (`TraceData`: the spans received so far, as ResourceSpans, one per
request that carried some) and answers SAMPLED, NOT_SAMPLED or DROPPED (`drop` only); a failure
raises `PolicyError` (the Collector's Error decision). Quirks kept on purpose, because a mixed fleet
must keep the same traces: an attribute of another type reads as the type's zero value (pdata's
`Int()`, `Bool()`, `Str()`); `latency` compares the running span of the spans seen so far, span by
span; an empty-string span attribute never matches `string_attribute`; `invert_match` samples only
when no resource and no span matches. Time-dependent policies (`rate_limiting`, `bytes_limiting`,
`composite`) take `now`, in seconds, from the caller.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from pipelines.batch import EMPTY_CONTEXT
from pipelines.ottl.compile import Predicate, compile_condition
from pipelines.ottl.contexts import Env
from pipelines.ottl_processors.groups import OttlRefusal, Report, Runner
from pipelines.processors import anyvalue
from pipelines.processors.actions import compile_go_regex
from pipelines.tail_sampling import config as c

SAMPLED, NOT_SAMPLED, DROPPED = "sampled", "not_sampled", "dropped"
_FNV64_OFFSET, _FNV64_PRIME, _U64 = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
DEFAULT_HASH_SALT = "default-hash-seed"
DEFAULT_REGEX_CACHE = 128


class PolicyError(Exception):
    """A policy could not decide (an OTTL condition failed with error_mode propagate)."""


@dataclass
class TraceData:
    """What a policy sees of one trace: its spans so far (`batches`, parsed ResourceSpans), how many,
    and how large (`size`: the Collector's SizeBytes, the sum of each ResourceSpans' size)."""

    trace_id: bytes
    span_count: int
    size: int
    batches: list[Any] = field(default_factory=list)

    def traces_size(self) -> int:
        """The serialized size of all the batches as one request (the Collector's TracesSize)."""
        return sum(1 + _varint_len(n) + n for n in (b.ByteSize() for b in self.batches))

    def spans(self) -> Iterator[tuple[Any, Any, Any]]:
        for rs in self.batches:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    yield rs, ss, span


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


class Policy(Protocol):
    def evaluate(self, td: TraceData, now: float) -> str: ...


Check = Callable[[Any], bool]


def _any(td: TraceData, on_resource: Check, on_span: Check) -> str:
    """hasResourceOrSpanWithCondition: sampled when a resource or a span satisfies its check."""
    for rs in td.batches:
        if on_resource(rs.resource) or any(on_span(sp) for ss in rs.scope_spans for sp in ss.spans):
            return SAMPLED
    return NOT_SAMPLED


def _none(td: TraceData, matches_resource: Check, matches_span: Check) -> str:
    """The inverted form: not sampled as soon as a resource or a span matches; else sampled."""
    for rs in td.batches:
        if matches_resource(rs.resource) or any(matches_span(sp) for ss in rs.scope_spans for sp in ss.spans):
            return NOT_SAMPLED
    return SAMPLED


def _attr_filter(invert: bool, on_resource: Check, on_span: Check) -> Callable[[TraceData], str]:
    def attrs(check: Check) -> Check:
        return lambda holder: check(holder.attributes)
    if invert:
        return lambda td: _none(td, attrs(on_resource), attrs(on_span))
    return lambda td: _any(td, attrs(on_resource), attrs(on_span))


def _int(v: Any) -> int:
    return int(v.int_value) if v.WhichOneof("value") == "int_value" else 0


def _bool(v: Any) -> bool:
    return bool(v.bool_value) if v.WhichOneof("value") == "bool_value" else False


def _str(v: Any) -> str:
    return str(v.string_value) if v.WhichOneof("value") == "string_value" else ""


@dataclass
class Fixed:
    decision: str

    def evaluate(self, td: TraceData, now: float) -> str:
        return self.decision


class Latency:
    def __init__(self, cfg: c.LatencyCfg) -> None:
        self.lower, self.upper = cfg.threshold_ms, cfg.upper_threshold_ms

    def evaluate(self, td: TraceData, now: float) -> str:
        lo = hi = 0
        for _, _, span in td.spans():
            start, end = span.start_time_unix_nano, span.end_time_unix_nano
            if lo == 0 or start < lo:
                lo = start
            if hi == 0 or end > hi:
                hi = end
            # Timestamps compare as uint64, then subtract as times (int64 nanoseconds, saturating).
            d = max(_INT64_MIN, min(_INT64_MAX, _i64(hi) - _i64(lo)))
            ms = d // 1_000_000 if d >= 0 else -(-d // 1_000_000)
            if (ms > self.lower) if self.upper == 0 else (self.lower < ms <= self.upper):
                return SAMPLED
        return NOT_SAMPLED


def _i64(u: int) -> int:
    return u - (1 << 64) if u > _INT64_MAX else u


class Filter:
    """A policy that is a function of the trace only."""

    def __init__(self, fn: Callable[[TraceData], str]) -> None:
        self.fn = fn

    def evaluate(self, td: TraceData, now: float) -> str:
        return self.fn(td)


def numeric(cfg: c.NumericAttributeCfg) -> Filter:
    lo = cfg.min_value if cfg.min_value != 0 else _INT64_MIN
    hi = cfg.max_value if cfg.max_value != 0 else _INT64_MAX

    def matches(attrs: Any) -> bool:
        v = anyvalue.get(attrs, cfg.key)
        return v is not None and lo <= _int(v) <= hi

    return Filter(_attr_filter(cfg.invert_match, matches, matches))


def boolean(cfg: c.BooleanAttributeCfg) -> Filter:
    def matches(attrs: Any) -> bool:
        v = anyvalue.get(attrs, cfg.key)
        return v is not None and _bool(v) == cfg.value

    return Filter(_attr_filter(cfg.invert_match, matches, matches))


class StringAttribute:
    def __init__(self, cfg: c.StringAttributeCfg) -> None:
        self.key = cfg.key
        self.regexes: list[re.Pattern[str]] | None = None
        self.values = frozenset(v for v in cfg.values if v)
        # What each regex-matched value gave, the Collector's LRU of `cache_max_size` (128 when unset).
        self.cache: OrderedDict[str, bool] = OrderedDict()
        self.cache_size = cfg.cache_max_size if cfg.cache_max_size > 0 else DEFAULT_REGEX_CACHE
        if cfg.enabled_regex_matching:
            self.regexes = [compile_go_regex(v) for v in cfg.values]

        def on_resource(attrs: Any) -> bool:
            v = anyvalue.get(attrs, self.key)
            return v is not None and self.match(_str(v))

        def on_span(attrs: Any) -> bool:
            v = anyvalue.get(attrs, self.key)
            return v is not None and _str(v) != "" and self.match(_str(v))

        self.fn = _attr_filter(cfg.invert_match, on_resource, on_span)

    def match(self, s: str) -> bool:
        if self.regexes is None:
            return s in self.values
        hit = self.cache.get(s)
        if hit is not None:
            self.cache.move_to_end(s)
            return hit
        hit = any(r.search(s) for r in self.regexes)
        self.cache[s] = hit
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return hit

    def evaluate(self, td: TraceData, now: float) -> str:
        return self.fn(td)


def status_code(cfg: c.StatusCodeCfg) -> Filter:
    codes = frozenset(c.STATUS_CODES[s] for s in cfg.status_codes)
    return Filter(lambda td: _any(td, _never, lambda sp: sp.status.code in codes))


def _never(_: Any) -> bool:
    return False


def span_count(cfg: c.SpanCountCfg) -> Filter:
    lo, hi = cfg.min_spans, cfg.max_spans

    def decide(td: TraceData) -> str:
        n = td.span_count
        return SAMPLED if (hi == 0 and n >= lo) or lo <= n <= hi else NOT_SAMPLED

    return Filter(decide)


def trace_flags() -> Filter:
    return Filter(lambda td: _any(td, _never, lambda sp: sp.flags & 1 != 0))


def trace_state(cfg: c.TraceStateCfg) -> Filter:
    values = frozenset(v for v in cfg.values if v and len(cfg.key) + len(v) < 256)

    def matches(span: Any) -> bool:
        members = w3c_tracestate(span.trace_state)
        return members is not None and members.get(cfg.key, "") in values

    return Filter(lambda td: _any(td, _never, matches))


_KEY_PART = re.compile(r"[a-z][a-z0-9_\-*/]{0,255}\Z")
_TENANT = re.compile(r"[a-z0-9][a-z0-9_\-*/]{0,240}\Z")
_SYSTEM = re.compile(r"[a-z][a-z0-9_\-*/]{0,13}\Z")
_W3C_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]\Z")


def w3c_tracestate(raw: str) -> dict[str, str] | None:
    """A tracestate's members as Go's `trace.ParseTraceState` reads them; None when it refuses it."""
    members: dict[str, str] = {}
    for part in raw.split(","):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key, value = key.lstrip(" \t"), value.rstrip(" \t")
        tenant, at, system = key.partition("@")
        key_ok = (_TENANT.match(tenant) and _SYSTEM.match(system)) if at else _KEY_PART.match(key)
        if not eq or not key_ok or not _W3C_VALUE.match(value) or key in members:
            return None
        members[key] = value
        if len(members) > 32:
            return None
    return members


def fnv64a(data: bytes, h: int = _FNV64_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * _FNV64_PRIME) & _U64
    return h


def probabilistic_threshold(ratio: float) -> int:
    """uint64(MaxUint64 * ratio) as the Collector computes it: a big.Float product rounded to 64
    bits of mantissa (nearest, ties to even), then truncated; clamped to [0, MaxUint64]."""
    p = Fraction(_U64) * Fraction(ratio)
    if p <= 0:
        return 0
    if p >= _U64:
        return _U64
    exp = p.numerator.bit_length() - p.denominator.bit_length()
    if Fraction(2) ** exp > p:
        exp -= 1
    ulp = Fraction(2) ** (exp - 63)
    return int(round(p / ulp) * ulp)  # round() on a Fraction rounds half to even


class Probabilistic:
    def __init__(self, cfg: c.ProbabilisticCfg) -> None:
        self.salt = (cfg.hash_salt or DEFAULT_HASH_SALT).encode()
        self.threshold = probabilistic_threshold(cfg.sampling_percentage / 100)
        self._seeded = fnv64a(self.salt)

    def evaluate(self, td: TraceData, now: float) -> str:
        return SAMPLED if fnv64a(td.trace_id, self._seeded) <= self.threshold else NOT_SAMPLED


class TokenBucket:
    """golang.org/x/time/rate's limiter as AllowN uses it: starts full, refills at `rate` a second."""

    def __init__(self, rate: int, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.last: float | None = None

    def allow(self, n: int, now: float) -> bool:
        if self.last is not None and now > self.last:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now if self.last is None else max(self.last, now)
        if n <= self.burst and self.tokens >= n:
            self.tokens -= n
            return True
        return False


class Limiting:
    def __init__(self, per_second: int, burst: int, cost: Callable[[TraceData], int]) -> None:
        self.bucket = TokenBucket(per_second, burst if burst > 0 else 2 * per_second)
        self.cost = cost

    def evaluate(self, td: TraceData, now: float) -> str:
        return SAMPLED if self.bucket.allow(self.cost(td), now) else NOT_SAMPLED


class OttlCondition:
    def __init__(self, cfg: c.OTTLConditionCfg, report: Report) -> None:
        runner = Runner("silent" if cfg.error_mode == "" else cfg.error_mode, report)
        self.runner = runner
        self.span = [(t, compile_condition(t, "span")) for t in cfg.span]
        self.event = [(t, compile_condition(t, "spanevent")) for t in cfg.spanevent]

    def _any(self, conditions: list[tuple[str, Predicate]], env: Env) -> bool:
        env.cache = None
        try:
            return any(self.runner.holds(pred, text, env) for text, pred in conditions)
        except OttlRefusal as exc:
            raise PolicyError(str(exc)) from None

    def evaluate(self, td: TraceData, now: float) -> str:
        env = Env(EMPTY_CONTEXT)
        for rs, ss, span in td.spans():
            env.resource, env.scope, env.item = rs, ss, span
            if self.span and self._any(self.span, env):
                return SAMPLED
            for i, event in enumerate(span.events if self.event else ()):
                env.event, env.event_index = event, i
                if self._any(self.event, env):
                    return SAMPLED
        return NOT_SAMPLED


class And:
    def __init__(self, subs: list[Policy]) -> None:
        self.subs = subs

    def evaluate(self, td: TraceData, now: float) -> str:
        for sub in self.subs:
            if sub.evaluate(td, now) == NOT_SAMPLED:
                return NOT_SAMPLED
        return SAMPLED


class Drop(And):
    def evaluate(self, td: TraceData, now: float) -> str:
        return NOT_SAMPLED if super().evaluate(td, now) == NOT_SAMPLED else DROPPED


class Not:
    def __init__(self, sub: Policy) -> None:
        self.sub = sub

    def evaluate(self, td: TraceData, now: float) -> str:
        d = self.sub.evaluate(td, now)
        return {SAMPLED: NOT_SAMPLED, NOT_SAMPLED: SAMPLED}.get(d, d)


class Composite:
    """Sub-policies in order; the first that samples does so if its share of
    `max_total_spans_per_second` (rate_allocation percent, else an equal share) has room this second."""

    def __init__(self, cfg: c.CompositeCfg, subs: list[Policy]) -> None:
        total = cfg.max_total_spans_per_second
        percent = {r.policy: r.percent for r in cfg.rate_allocation}
        default = total / len(subs) if subs else 0.0
        self.total = total
        self.subs = [(sub, int(percent[p.name] / 100 * total if percent.get(p.name, 0) > 0 else default))
                     for sub, p in zip(subs, cfg.composite_sub_policy, strict=True)]
        self.spent = [0] * len(subs)
        self.second = 0

    def evaluate(self, td: TraceData, now: float) -> str:
        if int(now) != self.second:
            self.second = int(now)
            self.spent = [0] * len(self.subs)
        for i, (sub, allocated) in enumerate(self.subs):
            if sub.evaluate(td, now) == SAMPLED:
                spent = self.spent[i] + td.span_count
                if spent <= allocated and spent <= self.total:
                    self.spent[i] = spent
                    return SAMPLED
                return NOT_SAMPLED
        return NOT_SAMPLED


def build(p: c.SharedPolicyCfg, report: Report) -> Policy:
    """The evaluator of one policy (its config already validated)."""
    t = p.type
    if t == "always_sample":
        return Fixed(SAMPLED)
    if t == "latency":
        return Latency(p.latency)
    if t == "numeric_attribute":
        return numeric(p.numeric_attribute)
    if t == "probabilistic":
        return Probabilistic(p.probabilistic)
    if t == "status_code":
        return status_code(p.status_code)
    if t == "string_attribute":
        return StringAttribute(p.string_attribute)
    if t == "boolean_attribute":
        return boolean(p.boolean_attribute)
    if t == "rate_limiting":
        return Limiting(p.rate_limiting.spans_per_second, p.rate_limiting.burst_capacity, lambda td: td.span_count)
    if t == "bytes_limiting":
        return Limiting(p.bytes_limiting.bytes_per_second, p.bytes_limiting.burst_capacity, TraceData.traces_size)
    if t == "span_count":
        return span_count(p.span_count)
    if t == "trace_state":
        return trace_state(p.trace_state)
    if t == "trace_flags":
        return trace_flags()
    if t == "ottl_condition":
        return OttlCondition(p.ottl_condition, report)
    if t == "and" and isinstance(p, (c.PolicyCfg, c.CompositeSubPolicyCfg)):
        return And([build(s, report) for s in p.and_.and_sub_policy])
    if t == "drop" and isinstance(p, c.PolicyCfg):
        return Drop([build(s, report) for s in p.drop.drop_sub_policy])
    if t == "not" and isinstance(p, (c.PolicyCfg, c.AndSubPolicyCfg)):
        return Not(build(p.not_.not_sub_policy, report))
    if t == "composite" and isinstance(p, c.PolicyCfg):
        return Composite(p.composite, [build(s, report) for s in p.composite.composite_sub_policy])
    raise ValueError(f"unknown sampling policy type {t}")
