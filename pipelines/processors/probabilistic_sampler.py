"""The `probabilistic_sampler` processor for traces, decision for decision the Collector's.

Modes (`mode`, default `proportional`, or `hash_seed` when a `hash_seed` is set):
- `hash_seed`: FNV-1a 32 over the seed (4 bytes, little-endian) then the 16 trace-id bytes; the low
  14 bits are the bucket; kept iff bucket < uint32(float32(pct) * float32(163.84)). Kept spans get
  `ot=rv:..;th:..` derived from that hash, as the Collector writes them.
- `proportional` / `equalizing` (OTEP 235): randomness from `rv` or the trace id's low 56 bits;
  proportional multiplies the arriving probability by the ratio, equalizing applies a fixed threshold;
  `th` is only ever raised.
A `sampling.priority` span attribute overrides: 0 drops, > 0 keeps. Errors (bad tracestate, a
tracestate already carrying rv/th in hash_seed mode, an inconsistent th) drop the span when
`fail_closed` (the default) and keep it otherwise.

The decision depends on the trace id and tracestate only, so every span of a trace gets the same one
in any process; the only attribute read is `sampling.priority`.

Fast path: trace ids and trace states are read from the batch (or from the batch an earlier
wire-level processor rewrote: `Batch.rewrite`): where the receiver's check
(`pipelines.otlp.check`, `Batch.ids`) found every span's bytes beginning with its only trace_id and
no trace_state, the ids are sliced from the span bodies in C and every state is ""; else they are read
from the batch's parse. Decisions are made
per (tracestate, priority) as a rule on the trace id (`_rule`: a threshold compared with the id's low
56 bits as bytes, or the hash), and the output is the kept spans' bytes (`pipelines.wire.rebuild`),
each with its new `trace_state` field appended where it changes. `process_upb` stays the reference.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pipelines import wire
from pipelines.batch import Batch
from pipelines.config_types import unsupported
from pipelines.processors import anyvalue
from pipelines.processors import tracestate as ts
from pipelines.processors.tracestate import TraceState, TraceStateError

NUM_HASH_BUCKETS = 0x4000
_BUCKET_MASK = NUM_HASH_BUCKETS - 1
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
MODES = ("hash_seed", "proportional", "equalizing")
PRIORITY_KEY = "sampling.priority"
_PRIORITY_BYTES = PRIORITY_KEY.encode()


def f32(x: float) -> float:
    """Round to the nearest float32, as Go stores a float32."""
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def fnv1a32(data: bytes, h: int = _FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def fnv1a32_16(t: bytes, h: int) -> int:
    """fnv1a32 of exactly 16 bytes, unrolled; the mask is applied every 4 bytes (the low 32 bits of
    a product depend only on the low 32 bits of its factors, and xor with a byte only on the low 8)."""
    b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15 = t
    p, m = _FNV_PRIME, 0xFFFFFFFF
    h = ((((h ^ b0) * p ^ b1) * p ^ b2) * p ^ b3) * p & m
    h = ((((h ^ b4) * p ^ b5) * p ^ b6) * p ^ b7) * p & m
    h = ((((h ^ b8) * p ^ b9) * p ^ b10) * p ^ b11) * p & m
    return ((((h ^ b12) * p ^ b13) * p ^ b14) * p ^ b15) * p & m


def scaled_sample_rate(percentage: float) -> int:
    """uint32(pct * percentageScaleFactor) as the Collector computes it: in float32, truncated."""
    pct = min(f32(percentage), 100.0)
    return int(f32(pct * f32(NUM_HASH_BUCKETS / 100.0)))


def hash_randomness(hashed32: int) -> int:
    """The Collector's 56-bit randomness from the 32-bit hash (14 bits decide; the rest fill rv).

    The Collector's comment speaks of the 18 unused bits, but its code shifts by 18 and so takes the
    top 14; we do the same, so the `rv` written to tracestate is the Collector's to the bit (checked
    side by side against the reference Collector in tests/interop/test_sampler_side_by_side.py)."""
    hashed = hashed32 & _BUCKET_MASK
    unused = hashed32 >> 18
    mixed28 = (unused ^ (unused << 10)) & ((1 << 28) - 1)
    return ((NUM_HASH_BUCKETS - 1 - hashed) << 42) | (mixed28 << 14) | hashed


_LOGS_ONLY = "a logs key of the Collector's sampler; this gateway samples traces only"


@dataclass(frozen=True)
class Config:
    sampling_percentage: float = 0.0
    hash_seed: int = 0
    mode: str = ""
    fail_closed: bool = True
    sampling_precision: int = 4
    # Logs-only keys in the Collector: this sampler takes traces only, so asking for anything but their
    # defaults is refused.
    attribute_source: str = unsupported(_LOGS_ONLY, default="traceID")
    from_attribute: str = unsupported(_LOGS_ONLY, default="")
    sampling_priority: str = unsupported(_LOGS_ONLY, default="")

    def validate(self) -> list[str]:
        errors = []
        pct = f32(self.sampling_percentage) if math.isfinite(self.sampling_percentage) else self.sampling_percentage
        if math.isinf(pct) or math.isnan(pct):
            errors.append(f"sampling rate is invalid: {'NaN' if math.isnan(pct) else ('+Inf' if pct > 0 else '-Inf')}%")
        elif pct < 0:
            errors.append(f"sampling rate is negative: {pct:f}%")
        elif 0 < pct / 100 < ts.MIN_SAMPLING_PROBABILITY:
            errors.append(f"sampling rate is too small: {pct:g}%")
        if self.mode not in ("", *MODES):
            errors.append(f'unsupported sampler mode "{self.mode}"')
        if not 0 <= self.hash_seed <= 0xFFFFFFFF:
            errors.append(f"hash_seed {self.hash_seed} does not fit in 32 bits (0 to 4294967295)")
        if self.sampling_precision <= 0:
            errors.append(f"invalid sampling precision: {self.sampling_precision}")
        elif self.sampling_precision > ts.NUM_HEX_DIGITS:
            errors.append(f"sampling precision is too great, should be <= 14: {self.sampling_precision}")
        return errors

    def resolved_mode(self) -> str:
        return self.mode or ("hash_seed" if self.hash_seed else "proportional")


def span_priority(attrs: Any) -> int:
    """OpenTracing's sampling.priority: -1 defer, 0 drop, 1 keep."""
    v = anyvalue.get(attrs, PRIORITY_KEY)
    if v is None:
        return -1
    kind = v.WhichOneof("value")
    if kind == "int_value":
        n: float = v.int_value
    elif kind == "double_value":
        n = v.double_value
    elif kind == "string_value":
        parsed = anyvalue.parse_go_float(v.string_value)
        if parsed is None:
            return -1
        n = parsed
    else:
        return -1
    return 0 if n == 0 else (1 if n > 0 else -1)


# (keep, new tracestate or None when it stays as it is)
Decision = tuple[bool, str | None]
# How spans with one (tracestate, priority) are decided, for a trace id of 16 bytes, not all zero:
# ("const", suffix or None): the same for every trace id (None: dropped; else kept, `suffix` appended);
# ("tid", threshold as 7 big-endian bytes or None for never, suffix): kept iff the id's low 56 bits
#   are >= the threshold;
# ("hash", threshold, tracestate text before rv, after rv): hash_seed mode, rv from the id's hash;
# None: decide() span by span.
Rule = tuple[Any, ...] | None
_ZERO_ID = bytes(16)
_ANY_ID = b"\x01" * 16
_LEADING_TRACE_ID = itemgetter(slice(2, 18))  # of a span body that begins with its trace_id field


def _state_field(state: str) -> bytes:
    """Span.trace_state (field 3), appended after a span's bytes: the last occurrence wins."""
    return wire.field_bytes(0x1A, state.encode())


class ProbabilisticSampler:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.fail_closed = config.fail_closed
        self.precision = config.sampling_precision
        self.mode = config.resolved_mode()
        pct = min(f32(config.sampling_percentage), 100.0)
        self.never = pct == 0
        ratio = max(pct / 100, ts.MIN_SAMPLING_PROBABILITY)
        self.ratio = ratio
        self.threshold = ts.NEVER_SAMPLE
        if self.mode == "hash_seed":
            scaled = scaled_sample_rate(config.sampling_percentage)
            self.never = self.never or scaled == 0
            self.threshold = (NUM_HASH_BUCKETS - scaled) << 42
            self._seed_state = fnv1a32(struct.pack("<I", config.hash_seed))
        elif self.mode == "equalizing":
            self.threshold = ts.probability_to_threshold(ratio, self.precision)

    # -- one decision
    def decide(self, trace_id: bytes, raw_state: str, priority: int = -1) -> Decision:
        carrier: TraceState | None
        err = False
        missing = False
        randomness = ts.ALL_PROBABILITIES_RANDOMNESS
        try:
            carrier = TraceState.parse(raw_state)
        except TraceStateError:
            carrier, err = None, True
        if self.never:
            pass
        elif self.mode == "hash_seed":
            if any(trace_id):
                randomness = hash_randomness(fnv1a32(trace_id, self._seed_state))
            else:
                missing = True
            if carrier is not None:
                if carrier.rv or carrier.th:
                    carrier, err = None, True
                else:
                    carrier.set_randomness(randomness)
        elif carrier is not None and carrier.rv:
            randomness = carrier.randomness
        elif carrier is not None and any(trace_id):
            randomness = ts.trace_id_randomness(trace_id)
        else:
            missing = True
        if not err:
            if missing:
                err = True
            elif carrier is not None and carrier.th and randomness < carrier.threshold:
                carrier.clear_threshold()
                err = True
        failed = ts.NEVER_SAMPLE if self.fail_closed else ts.ALWAYS_SAMPLE
        threshold = failed if err else self._threshold(carrier)
        if priority == 0:
            threshold = ts.NEVER_SAMPLE
        elif priority == 1:
            threshold = ts.ALWAYS_SAMPLE
        sampled = randomness >= threshold
        if not sampled:
            return False, None
        if carrier is None:
            return True, None
        carrier.update_threshold(threshold)
        return True, carrier.serialize()

    def _threshold(self, carrier: TraceState | None) -> int:
        if self.never:
            return ts.NEVER_SAMPLE
        if self.mode != "proportional":
            return self.threshold
        incoming = ts.probability(carrier.threshold) if carrier is not None and carrier.th else 1.0
        try:
            return ts.probability_to_threshold(incoming * self.ratio, self.precision)
        except ts.ProbabilityRangeError:
            return ts.NEVER_SAMPLE

    # -- per-(tracestate, priority) rules for the fast path; decide() is their reference
    def rule(self, raw_state: str, priority: int) -> Rule:
        try:
            carrier = TraceState.parse(raw_state)
        except TraceStateError:
            carrier = None
        if self.never or (self.mode != "hash_seed" and (carrier is None or carrier.rv)):
            # The randomness does not come from the trace id: one decision for all.
            keep, new = self.decide(_ANY_ID, raw_state, priority)
            return ("const", (b"" if new is None or new == raw_state else _state_field(new)) if keep else None)
        if carrier is None or carrier.th or (self.mode == "hash_seed" and carrier.rv):
            return None
        threshold = self.threshold if self.mode == "hash_seed" else self._threshold(carrier)
        if priority == 0:
            threshold = ts.NEVER_SAMPLE
        elif priority == 1:
            threshold = ts.ALWAYS_SAMPLE
        carrier.update_threshold(threshold)
        if self.mode == "hash_seed":
            marker = "\x00" * ts.NUM_HEX_DIGITS
            carrier.rv = marker
            before, _, after = carrier.serialize().partition(marker)
            return ("hash", threshold, before, after)
        new = carrier.serialize()
        suffix = b"" if new == raw_state else _state_field(new)
        if threshold >= ts.NEVER_SAMPLE:
            return ("tid", None, suffix)
        return ("tid", threshold.to_bytes(7, "big"), suffix)

    # -- a batch
    def process(self, batch: Batch) -> Batch | None:
        data = batch.data()
        if batch.rewrite is not None:
            req, origin = batch.rewrite.request, batch.rewrite.source
        else:
            try:
                req = wire.walk(data)
            except wire.WireError:
                return self.process_upb(batch)
            origin = batch
        checked = origin.ids
        states: list[str] | None
        if checked is not None and checked.ids_first and checked.plain_states:
            # `req.bodies` are the checked bytes' spans (a rewrite keeps its source's ids and states).
            tids = list(map(_LEADING_TRACE_ID, req.bodies))
            states = None
            n = len(tids)
        else:
            msg = origin.message()
            spans = [sp for rs in msg.resource_spans for ss in rs.scope_spans for sp in ss.spans]
            n = len(spans)
            if n != len(req):
                return self.process_upb(batch)
            tids = [sp.trace_id for sp in spans]
            states = [sp.trace_state for sp in spans]
        prios: list[int] | None = None
        if _PRIORITY_BYTES in data:
            # The priority is an attribute: read from the bytes as they are now (an earlier processor
            # may have written it), span by span, only where the key's bytes occur.
            prios = [-1] * n
            for i in req.holding(_PRIORITY_BYTES):
                try:
                    prios[i] = span_priority(Span.FromString(req.span(i)).attributes)
                except DecodeError:
                    return self.process_upb(batch)
        extra: list[bytes | None]
        first = states[0] if states else ""
        if prios is None and (states is None or states.count(first) == n):
            extra = self._decide_uniform(tids, first)
        else:
            extra = self._decide_each(tids, [""] * n if states is None else states, prios)
        dropped = extra.count(None)
        if dropped == n:
            return None
        if dropped == 0 and extra.count(b"") == n:
            return batch
        out = wire.rebuild(req, extra, prune=True)
        return Batch(batch.signal, out, n - dropped, batch.context)

    def _decide_uniform(self, tids: list[bytes], state: str) -> list[bytes | None]:
        """Every span has the same tracestate and no priority: one rule, applied in a comprehension."""
        rule = self.rule(state, -1)
        if rule is None:
            return self._decide_each(tids, [state] * len(tids), None)
        if rule[0] == "hash":
            return self._decide_hash(tids, state, rule)
        if rule[0] == "const":
            extra = [rule[1]] * len(tids)
        else:
            _, t7, suffix = rule
            extra = [None] * len(tids) if t7 is None else [suffix if t[9:] >= t7 else None for t in tids]
        if _ZERO_ID in tids or set(map(len, tids)) != {16}:
            for i, t in enumerate(tids):
                if len(t) != 16 or t == _ZERO_ID:
                    extra[i] = self._one(t, state, -1)
        return extra

    def _decide_hash(self, tids: list[bytes], state: str, rule: tuple[Any, ...]) -> list[bytes | None]:
        """hash_seed mode, one tracestate, no priority: a hash per distinct trace id."""
        _, threshold, before, after = rule
        seed = self._seed_state
        seen: dict[bytes, bytes | None] = {}
        extra: list[bytes | None] = []
        add = extra.append
        for tid in tids:
            x = seen.get(tid, b"?")
            if x == b"?":
                if len(tid) != 16 or tid == _ZERO_ID:
                    x = self._one(tid, state, -1)
                else:
                    randomness = hash_randomness(fnv1a32_16(tid, seed))
                    x = _state_field(before + ts.rvalue(randomness) + after) if randomness >= threshold else None
                seen[tid] = x
            add(x)
        return extra

    def _decide_each(self, tids: list[bytes], states: list[str], prios: list[int] | None) -> list[bytes | None]:
        rules: dict[tuple[str, int], Rule] = {}
        cache: dict[tuple[bytes, str, int], bytes | None] = {}
        extra: list[bytes | None] = []
        add = extra.append
        for i, tid in enumerate(tids):
            state = states[i]
            prio = prios[i] if prios is not None else -1
            key = (state, prio)
            if key in rules:
                rule = rules[key]
            else:
                rule = rules[key] = self.rule(state, prio)
            if rule is None or len(tid) != 16 or tid == _ZERO_ID:
                add(self._one(tid, state, prio))
                continue
            kind = rule[0]
            if kind == "const":
                add(rule[1])
            elif kind == "tid":
                t7 = rule[1]
                add(rule[2] if t7 is not None and tid[9:] >= t7 else None)
            else:
                ckey = (tid, state, prio)
                if ckey in cache:
                    add(cache[ckey])
                    continue
                randomness = hash_randomness(fnv1a32_16(tid, self._seed_state))
                if randomness >= rule[1]:
                    x: bytes | None = _state_field(rule[2] + ts.rvalue(randomness) + rule[3])
                else:
                    x = None
                cache[ckey] = x
                add(x)
        return extra

    def _one(self, tid: bytes, state: str, prio: int) -> bytes | None:
        keep, new = self.decide(tid, state, prio)
        if not keep:
            return None
        return b"" if new is None or new == state else _state_field(new)

    def process_upb(self, batch: Batch) -> Batch | None:
        """The reference: decisions on the upb parse, kept spans edited in an owned copy."""
        decisions: list[Decision] = []
        cache: dict[tuple[bytes, str, int], Decision] = {}
        kept = 0
        rewrites = 0
        # Attributes are read only for sampling.priority, and only if the bytes hold that key at all.
        priorities = _PRIORITY_BYTES in batch.data()
        for rs in batch.message().resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    key = (span.trace_id, span.trace_state, span_priority(span.attributes) if priorities else -1)
                    d = cache.get(key)
                    if d is None:
                        d = cache[key] = self.decide(*key)
                    decisions.append(d)
                    if d[0]:
                        kept += 1
                        if d[1] is not None and d[1] != key[1]:
                            rewrites += 1
        if kept == 0:
            return None
        if kept == len(decisions) and rewrites == 0:
            return batch
        out = batch.with_context(batch.context)
        msg = out.mutable_message()
        it = iter(decisions)
        for rs in msg.resource_spans:
            for ss in rs.scope_spans:
                spans = ss.spans
                drop = []
                for i, span in enumerate(spans):
                    keep, state = next(it)
                    if not keep:
                        drop.append(i)
                    elif state is not None and state != span.trace_state:
                        span.trace_state = state
                for i in reversed(drop):
                    del spans[i]
        _prune_empty(msg)
        out.changed()
        return out


def _prune_empty(msg: Any) -> None:
    resources = msg.resource_spans
    for ri in range(len(resources) - 1, -1, -1):
        scopes = resources[ri].scope_spans
        for si in range(len(scopes) - 1, -1, -1):
            if not scopes[si].spans:
                del scopes[si]
        if not scopes:
            del resources[ri]
