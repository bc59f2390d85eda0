"""The tail sampler's state, without I/O or clocks: every call that depends on time takes `now`.

Pending traces (`Pending`) hold their pieces (`split.Piece` bytes) until their deadline
(`decision_wait` after the first span, sooner after a root span with
`decision_wait_after_root_received`). `decide` runs the policies as the Collector's `makeDecision`
does: the `drop` policies first (a trace one of them drops is not shown to the others, so a rate
limiter spends nothing on it), then the others in config order; a policy that fails is counted and
skipped; DROPPED wins over SAMPLED, which wins over NOT_SAMPLED; `sample_on_first_match` stops at
the first SAMPLED.

A decided trace's id is remembered, so a late span follows the decision: in the LRU decision caches
(`decision_cache`) when their size is set, else in a table of the `num_traces` most recent decisions,
which is what the Collector's trace map gives a late span when it has no cache.

Bounds, all in bytes or counts that the caller can see (`pending_bytes`, `len(pending)`):
`max_pending_bytes` on everything pending (each piece's bytes plus a fixed overhead per piece and per
trace); `num_traces` on pending traces; `maximum_trace_size_bytes` on one trace. Where the Collector
evicts a pending trace unseen when `num_traces` is reached, `offer` decides the oldest one early on
what it has; `pressure` names the largest traces to decide early when the bytes pass the high mark,
so one giant trace pays for the room it takes, not the traces around it.

Tenants: a trace is known by its key, (the request's identity, trace id) (`trace_key`), pending and
remembered alike, so two tenants that use the same trace id hold two traces, decided apart, and one's
spans never change the other's decision. Each piece keeps the context of the request it came in
(`Part`): its identity and only the metadata the stages after the sampler need (`held_context`), so a
kept trace goes on as one batch per context (`context_key`), never mixing tenants.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from pipelines.batch import EMPTY_CONTEXT, RequestContext
from pipelines.ottl_processors.groups import Report
from pipelines.tail_sampling import policies as pol
from pipelines.tail_sampling.config import Config
from pipelines.tail_sampling.split import Piece

PIECE_OVERHEAD = 64
TRACE_OVERHEAD = 256
HIGH_MARK, LOW_MARK = 0.9, 0.75
Reason = Literal["decision_wait", "too_large", "max_pending_bytes", "num_traces", "shutdown"]
# (the request's identity, trace id): what a pending or decided trace is known by.
TraceKey = tuple[Hashable, bytes]


def trace_key(context: RequestContext, trace_id: bytes) -> TraceKey:
    return (context.identity_key(), trace_id)


class Part(NamedTuple):
    """A piece of a trace as held: its bytes, span count, and the context of the request it came in."""

    context: RequestContext
    data: bytes
    spans: int


def held_context(context: RequestContext, keys: Iterable[str]) -> RequestContext:
    """What a held piece keeps of its request's context: the identity and, of the request metadata, only
    `keys` (those the stages after the sampler batch by or read). Per-request headers (content-length,
    user-agent, grpc-timeout) would split a kept trace into one batch per request, and a credential
    (authorization) has no business being held."""
    metadata = {k: v for k in keys if (v := context.get_metadata(k))}
    if metadata == context.metadata:
        return context
    return RequestContext(context.tenant, metadata, context.auth)


def context_key(context: RequestContext) -> tuple[Any, ...]:
    """Equal for contexts that may share a batch: the same identity and metadata."""
    return (context.identity_key(), tuple(sorted(context.metadata.items())))


@dataclass
class Pending:
    key: TraceKey
    arrival: float
    deadline: float
    pieces: list[Part] = field(default_factory=list)
    spans: int = 0
    size: int = 0  # the Collector's SizeBytes: the pieces' bytes
    held: int = TRACE_OVERHEAD  # what it counts against max_pending_bytes


@dataclass(frozen=True)
class Decided:
    key: TraceKey | None  # None: late spans of a trace decided before, nothing to write down
    decision: str  # policies.SAMPLED / NOT_SAMPLED / DROPPED
    policy: str  # the policy that sampled or dropped it, or ""
    reason: Reason
    pieces: list[Part]
    spans: int
    held: int
    # (policy name, its decision) for each policy that answered; errors: how many failed.
    evaluations: list[tuple[str, str]] = field(default_factory=list)
    errors: int = 0

    @property
    def kept(self) -> bool:
        return self.decision == pol.SAMPLED

    @property
    def trace_id(self) -> bytes:
        return self.key[1] if self.key is not None else b""


@dataclass
class Offer:
    """What `offer` made of a request: pieces to send now (late spans of kept traces), span counts of
    late spans dropped by a remembered decision, and traces decided on the way (too large, or the oldest
    decided early to stay within `num_traces`)."""

    forward: list[Part] = field(default_factory=list)
    forward_spans: int = 0
    late_dropped: int = 0
    new_traces: int = 0
    decided: list[Decided] = field(default_factory=list)


@dataclass
class _Named:
    name: str
    policy: pol.Policy
    is_drop: bool


class Engine:
    def __init__(self, config: Config, report: Report = lambda message: None) -> None:
        self.config = config
        named = [_Named(p.name, pol.build(p, report), p.type == "drop") for p in config.policies]
        self.policies = [p for p in named if p.is_drop] + [p for p in named if not p.is_drop]
        self.pending: dict[TraceKey, Pending] = {}
        self.pending_bytes = 0
        caches = config.decision_cache
        self._lru: dict[str, OrderedDict[TraceKey, str]] = {pol.SAMPLED: OrderedDict(),
                                                             pol.NOT_SAMPLED: OrderedDict()}
        self._lru_size = {pol.SAMPLED: caches.sampled_cache_size, pol.NOT_SAMPLED: caches.non_sampled_cache_size}
        self._recent: OrderedDict[TraceKey, str] = OrderedDict()

    # ---------------------------------------------------------------- remembered decisions
    def remembered(self, key: TraceKey) -> str | None:
        """SAMPLED or NOT_SAMPLED when the trace was decided and that is still remembered."""
        for kept, lru in self._lru.items():
            if key in lru:
                lru.move_to_end(key)
                return kept
        return self._recent.get(key)

    def remember(self, key: TraceKey, decision: str) -> None:
        kept = pol.SAMPLED if decision == pol.SAMPLED else pol.NOT_SAMPLED
        size = self._lru_size[kept]
        table = self._lru[kept] if size > 0 else self._recent
        table[key] = kept
        table.move_to_end(key)
        if len(table) > (size if size > 0 else self.config.num_traces):
            table.popitem(last=False)

    def forget(self, key: TraceKey) -> None:
        for table in (*self._lru.values(), self._recent):
            table.pop(key, None)

    # ---------------------------------------------------------------- taking spans
    def fits(self, nbytes: int) -> bool:
        return self.pending_bytes + nbytes <= self.config.max_pending_bytes

    def offer(self, pieces: Iterable[Piece], now: float, context: RequestContext = EMPTY_CONTEXT) -> Offer:
        """The pieces of one request, all of `context`."""
        out = Offer()
        limit = self.config.maximum_trace_size_bytes
        for piece in pieces:
            key = trace_key(context, piece.trace_id)
            trace = self.pending.get(key)
            if trace is None:
                kept = self.remembered(key)
                if kept is not None:
                    if kept == pol.SAMPLED:
                        out.forward.append(Part(context, piece.data, piece.spans))
                        out.forward_spans += piece.spans
                    else:
                        out.late_dropped += piece.spans
                    continue
                if len(self.pending) >= self.config.num_traces:
                    oldest = next(iter(self.pending))
                    out.decided.append(self.decide(oldest, now, "num_traces"))
                trace = self._new(key, now)
                out.new_traces += 1
            if piece.has_root and self.config.decision_wait_after_root_received > 0:
                trace.deadline = min(trace.deadline, now + self.config.decision_wait_after_root_received)
            self.add(trace, Part(context, piece.data, piece.spans))
            if limit and trace.size > limit:
                out.decided.append(self._too_large(trace))
        return out

    def restore(self, key: TraceKey, part: Part, arrival: float) -> None:
        """A pending piece read back from storage after a restart."""
        self.forget(key)
        trace = self.pending.get(key) or self._new(key, arrival)
        self.add(trace, part)

    def _new(self, key: TraceKey, now: float) -> Pending:
        trace = self.pending[key] = Pending(key, now, now + self.config.decision_wait)
        self.pending_bytes += trace.held
        return trace

    def add(self, trace: Pending, part: Part) -> None:
        trace.pieces.append(part)
        trace.spans += part.spans
        trace.size += len(part.data)
        trace.held += len(part.data) + PIECE_OVERHEAD
        self.pending_bytes += len(part.data) + PIECE_OVERHEAD

    def _too_large(self, trace: Pending) -> Decided:
        self._remove(trace)
        self.remember(trace.key, pol.NOT_SAMPLED)
        return Decided(trace.key, pol.NOT_SAMPLED, "", "too_large", trace.pieces, trace.spans, trace.held)

    def _remove(self, trace: Pending) -> None:
        del self.pending[trace.key]
        self.pending_bytes -= trace.held

    # ---------------------------------------------------------------- deciding
    def due(self, now: float) -> list[TraceKey]:
        return [key for key, t in self.pending.items() if t.deadline <= now]

    def pressure(self, deciding: Collection[TraceKey] = (), need: int = 0) -> list[TraceKey]:
        """Traces to decide early, largest first (then oldest), when the pending bytes (and `need`, a
        request refused for want of room) pass the high mark: enough to bring them under the low mark,
        counting those already being decided."""
        bound = self.config.max_pending_bytes
        if self.pending_bytes + need <= HIGH_MARK * bound:
            return []
        excess = self.pending_bytes + need - LOW_MARK * bound - sum(self.pending[t].held for t in deciding)
        chosen = []
        for t in sorted(self.pending.values(), key=lambda t: (-t.held, t.arrival)):
            if excess <= 0:
                break
            if t.key not in deciding:
                chosen.append(t.key)
                excess -= t.held
        return chosen

    def discard(self, key: TraceKey) -> Pending:
        """Let go of a pending trace undecided (drop_pending_traces_on_shutdown)."""
        trace = self.pending[key]
        self._remove(trace)
        return trace

    def decide(self, key: TraceKey, now: float, reason: Reason = "decision_wait") -> Decided:
        trace = self.pending[key]
        self._remove(trace)
        data = pol.TraceData(key[1], trace.spans, trace.size,
                             [ResourceSpans.FromString(p.data) for p in trace.pieces])
        decision, policy, evaluations, errors = self.evaluate(data, now)
        self.remember(key, decision)
        return Decided(key, decision, policy, reason, trace.pieces, trace.spans, trace.held, evaluations, errors)

    def evaluate(self, data: pol.TraceData, now: float) -> tuple[str, str, list[tuple[str, str]], int]:
        """(decision, deciding policy, each policy's answer, failures) as the Collector's makeDecision."""
        evaluations: list[tuple[str, str]] = []
        errors = 0
        first: dict[str, str] = {}
        for p in self.policies:
            try:
                d = p.policy.evaluate(data, now)
            except pol.PolicyError:
                errors += 1
                continue
            evaluations.append((p.name, d))
            first.setdefault(d, p.name)
            if d == pol.DROPPED:
                return pol.DROPPED, p.name, evaluations, errors
            if p.is_drop:
                continue
            if d == pol.SAMPLED and self.config.sample_on_first_match:
                break
        if pol.SAMPLED in first:
            return pol.SAMPLED, first[pol.SAMPLED], evaluations, errors
        return pol.NOT_SAMPLED, "", evaluations, errors
