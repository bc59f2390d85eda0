"""The `tail_sampling` processor (traces): holds each trace's spans until `decision_wait` after its
first span, then keeps or drops the whole trace by the policies (`pipelines.tail_sampling`).

Delivery: a request is answered once this stage holds its spans (in memory, and on disk before the
answer with `storage`); late spans of a kept trace are handed to the next consumer inside the request,
so its refusal reaches the client. Kept traces go on from the decision timer; when the next consumer
refuses them (retryable) they stay held, counted against `max_pending_bytes`, and are offered again at
the next tick; a permanent refusal is logged and counted as dropped. Spans of traces not kept are
counted in `otelcol_processor_dropped_spans`. At shutdown, held kept traces are offered again until the
shutdown deadline; what is still refused then (or undecided, without `storage`) is counted as dropped
and logged.

Tenants: traces are held by (identity, trace id), and every piece keeps its request's identity and of its
metadata only what the stages downstream batch by or read (`keep_metadata`), so a kept trace goes on as
one batch per context with its tenant, identity and that metadata (`engine.held_context`).

Memory: everything pending is counted in bytes. A request that does not fit in `max_pending_bytes` is
refused with a retryable error (counted by reason) and the largest pending traces are decided early to
make room; past 90% of the bound they are decided early at every tick. The decision loop yields to the
event loop between traces, so a giant trace's evaluation holds no one else's request.

Crash safety (`storage: file_storage/<name>`): pending pieces and decisions are logged
(`tail_sampling_store`); after a restart the pending traces are decided at their deadline (at once
when it has passed) and remembered decisions still steer late spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

from gateway.component import Consumer, ExtensionRef, ProcessorFactory, Settings, Stage
from gateway.processors.ottl_report import reporter
from gateway.processors.tail_sampling_metrics import TailMetrics
from gateway.processors.tail_sampling_store import PendingStore, open_store
from pipelines.batch import Batch, Signal
from pipelines.errors import ConsumerError, PermanentError, RetryableError
from pipelines.tail_sampling import policies as pol
from pipelines.tail_sampling.config import Config, storage_refusals
from pipelines.tail_sampling.engine import (
    PIECE_OVERHEAD,
    Decided,
    Engine,
    Part,
    Reason,
    TraceKey,
    context_key,
    held_context,
    trace_key,
)
from pipelines.tail_sampling.split import join as join_pieces
from pipelines.tail_sampling.split import split

log = logging.getLogger("gateway.processor.tail_sampling")

RETRY_AFTER = 1.0
# How often, at shutdown, held kept traces are offered again to a next consumer that refuses them.
_SHUTDOWN_RETRY = 0.1
# How long the decision loop runs before it lets the event loop serve requests.
_SLICE = 0.005


class TailSamplingStage:
    def __init__(self, settings: Settings[Config], next_consumer: Consumer,
                 clock: Callable[[], float] = time.time) -> None:
        self.id = settings.id
        self.config = settings.config
        self._settings = settings
        self._next = next_consumer
        self._clock = clock
        self.engine = Engine(self.config, reporter(settings.id, "traces", settings.telemetry))
        self.metrics = TailMetrics(settings.telemetry, settings.id)
        self._dropped = settings.telemetry.dropped_spans(
            "traces", settings.id, "sampled_out", settings.telemetry.processor_dropped("traces", settings.id))
        self._refused = settings.telemetry.processor_refused("traces", settings.id)
        self.items = settings.telemetry.processor_items("traces", settings.id)
        self.store: PendingStore | None = None
        # Kept traces the next consumer refused for now: held and offered again at the next tick.
        self._outbox: list[Decided] = []
        self._outbox_bytes = 0
        # The largest request refused for want of room since the last tick: room to make.
        self._need = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Kept traces being offered again at shutdown (out of the outbox while the offer runs).
        self._offering: list[Decided] = []
        self.tick = min(1.0, max(0.02, self.config.decision_wait / 10))
        # Request metadata the stages and exporters after this one batch by: what `storage` writes down;
        # with the headers their client authenticators read, all that a held piece keeps (`keep_metadata`).
        self.metadata_keys: tuple[str, ...] = ()
        self.read_keys: tuple[str, ...] = ()

    async def start(self) -> None:
        if self.config.storage:
            # `validate` refuses this with the config paths; here too, for a service built without it.
            refusals = storage_refusals(self.config, dict.fromkeys(self.metadata_keys, "batching"))
            if refusals:
                raise ValueError(f"processor {self.id}: {'; '.join(refusals)}")
            self.store = await open_store(self._settings.host, self.config.storage, self.id)
            self.store.metadata_keys = self.metadata_keys
            restored = self.store.load(self.engine)
            if restored:
                log.info("%s: %d pending trace(s) restored from %s", self.id, restored, self.config.storage)
        self._task = asyncio.get_running_loop().create_task(self._run())

    # ---------------------------------------------------------------- taking data
    def admit(self, batch: Batch) -> None:
        try:
            self._check(batch)
        except RetryableError:
            # Passed to the processor and refused, as when `consume` is asked first (one pipeline).
            self.items.incoming += batch.items
            raise

    def _check(self, batch: Batch) -> None:
        nbytes = batch.nbytes() + PIECE_OVERHEAD
        if not self.engine.fits(nbytes + self._outbox_bytes):
            self._need = max(self._need, nbytes)
            self._refuse(batch, "max_pending_bytes", f"{self.engine.pending_bytes + self._outbox_bytes} bytes "
                         f"are pending, max_pending_bytes is {self.config.max_pending_bytes}")
        if self.config.block_on_overflow and len(self.engine.pending) >= self.config.num_traces:
            self._refuse(batch, "num_traces", f"{len(self.engine.pending)} traces are pending (num_traces)")
        if self.store is not None:
            reason = self.store.refusal(nbytes)
            if reason is not None:
                self._refuse(batch, "storage", reason)

    def _refuse(self, batch: Batch, reason: str, why: str) -> None:
        self._refused.inc(batch.items)
        self.metrics.inc("refused", batch.items, reason)
        self._wake.set()  # decide early what makes room
        raise RetryableError(f"{self.id}: {why}", RETRY_AFTER)

    async def consume(self, batch: Batch) -> None:
        self.items.incoming += batch.items
        self._check(batch)
        pieces = split(batch.message())
        engine = self.engine
        context = batch.context
        # Late spans first: a refusal from the next consumer then leaves nothing half-taken.
        late = [p for p in pieces if (k := trace_key(context, p.trace_id)) not in engine.pending
                and engine.remembered(k)]
        if late:
            kept = [p for p in late if engine.remembered(trace_key(context, p.trace_id)) == pol.SAMPLED]
            if kept:
                n = sum(p.spans for p in kept)
                await self._next.consume(Batch("traces", join_pieces([p.data for p in kept]), n, batch.context))
                self.items.outgoing += n
                self.metrics.inc("early_releases", n, "true")
            dropped = sum(p.spans for p in late) - sum(p.spans for p in kept)
            self.metrics.inc("early_releases", dropped, "false")
            self._dropped.inc(dropped)
            late_ids = {id(p) for p in late}
            pieces = [p for p in pieces if id(p) not in late_ids]
        if not pieces:
            return
        now = self._clock()
        context = held_context(context, (*self.metadata_keys, *self.read_keys))
        if self.store is not None:
            self.store.append(pieces, now, context)
            await self.store.sync()
        offer = engine.offer(pieces, now, context)
        self.metrics.inc("new_traces", offer.new_traces)
        if offer.forward:
            # Decided while this request waited on the disk: held in the outbox like any kept trace.
            self._hold(Decided(None, pol.SAMPLED, "", "decision_wait", offer.forward, offer.forward_spans, 0))
            self.metrics.inc("early_releases", offer.forward_spans, "true")
        if offer.late_dropped:
            self._dropped.inc(offer.late_dropped)
            self.metrics.inc("early_releases", offer.late_dropped, "false")
        if offer.decided:
            await self._release(offer.decided)
        self._gauges()

    # ---------------------------------------------------------------- deciding
    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.decide_due()
            except Exception:
                log.exception("%s: decision loop failed; trying again at the next tick", self.id)

    async def decide_due(self) -> None:
        """One tick: offer held kept traces again, decide what is due, and what the byte bound needs."""
        if self._outbox:
            held, self._outbox, self._outbox_bytes = self._outbox, [], 0
            await self._release(held, fresh=False)
        now = self._clock()
        due = self.engine.due(now)
        todo: list[tuple[TraceKey, Reason]] = [(t, "decision_wait") for t in due]
        need, self._need = self._need + self._outbox_bytes, 0
        todo += [(t, "max_pending_bytes") for t in self.engine.pressure(set(due), need)]
        await self._decide(todo, now)

    async def _decide(self, todo: list[tuple[TraceKey, Reason]], now: float) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        decided: list[Decided] = []
        for tid, reason in todo:
            if tid not in self.engine.pending:
                continue
            decided.append(self.engine.decide(tid, now, reason))
            if loop.time() - started > _SLICE:
                await self._release(decided)
                decided = []
                await asyncio.sleep(0)
                started = loop.time()
        if decided:
            await self._release(decided)
        self._gauges()

    async def _release(self, decided: list[Decided], fresh: bool = True) -> None:
        kept = [d for d in decided if d.kept]
        done = [d for d in decided if not d.kept]
        for d in decided if fresh else ():
            self._count(d)
        for d in done:
            self._dropped.inc(d.spans)
        # One batch per context (tenant, identity, metadata); what is refused for now stays held, piece by piece.
        unsent: dict[int, list[Part]] = {}
        groups: dict[tuple[object, ...], list[tuple[int, Part]]] = {}
        for d in kept:
            for p in d.pieces:
                groups.setdefault(context_key(p.context), []).append((id(d), p))
        for group in groups.values():
            context, parts = group[0][1].context, [p for _, p in group]
            spans = sum(p.spans for p in parts)
            try:
                await self._next.consume(Batch("traces", join_pieces([p.data for p in parts]), spans, context))
                self.items.outgoing += spans  # once taken: spans held and offered again count once
            except RetryableError as exc:
                log.debug("%s: %d kept span(s) refused downstream, held for the next tick: %s", self.id, spans, exc)
                for owner, p in group:
                    unsent.setdefault(owner, []).append(p)
            except (PermanentError, ConsumerError) as exc:
                log.error("%s: %d kept span(s) refused downstream for good, dropped: %s", self.id, spans, exc)
                self._dropped.inc(spans)
        for d in kept:
            rest = unsent.get(id(d))
            if rest is None:
                done.append(d)
            else:
                self._hold(dataclasses.replace(d, pieces=rest, spans=sum(p.spans for p in rest)))
        if self.store is not None:
            self.store.decided([(d.pieces[0].context, d.trace_id, d.decision) for d in done
                                if d.key is not None and d.pieces])

    def _hold(self, d: Decided) -> None:
        self._outbox.append(d)
        self._outbox_bytes += sum(len(p.data) for p in d.pieces) + PIECE_OVERHEAD

    def _count(self, d: Decided) -> None:
        for name, decision in d.evaluations:
            self.metrics.evaluated(name, decision, d.spans)
        self.metrics.decided(d.decision)
        self.metrics.inc("errors", d.errors)
        if d.reason == "too_large":
            self.metrics.inc("too_large")
        elif d.reason != "decision_wait":
            self.metrics.inc("decided_early", 1, d.reason)

    def _gauges(self) -> None:
        self.metrics.set("on_memory", len(self.engine.pending))
        self.metrics.set("pending_bytes", self.engine.pending_bytes + self._outbox_bytes)

    # ---------------------------------------------------------------- stopping
    async def shutdown(self) -> None:
        """Stop deciding, then: drop the pending traces (drop_pending_traces_on_shutdown), keep them in
        `storage`, or decide them now; offer the kept traces held here until the next consumer takes
        them. Cancelled at the shutdown deadline (`Service.shutdown`), it counts what it still holds as
        dropped and logs it (with `storage`, what is on disk stays there for the next start)."""
        self._stopping = True
        self._wake.set()
        try:
            if self._task is not None:
                await self._task  # the tick in progress finishes: nothing it took is left half-done
                self._task = None
            pending = list(self.engine.pending)
            if self.config.drop_pending_traces_on_shutdown:
                gone = [self.engine.discard(key) for key in pending]
                for trace in gone:
                    self._dropped.inc(trace.spans)
                    self.metrics.inc("decided_early", 1, "shutdown")
                if self.store is not None:
                    self.store.decided([(t.pieces[0].context, t.key[1], pol.DROPPED) for t in gone])
                if pending:
                    log.warning("%s: %d pending trace(s) dropped at shutdown (drop_pending_traces_on_shutdown)",
                                self.id, len(pending))
            elif self.store is None and pending:
                # Nothing would keep them: decide now, as the Collector does at shutdown.
                await self._decide([(t, "shutdown") for t in pending], self._clock())
            elif pending:
                log.info("%s: %d pending trace(s) kept in %s for the next start", self.id, len(pending),
                         self.config.storage)
            while self._outbox:
                held, self._outbox, self._outbox_bytes = self._outbox, [], 0
                self._offering = held
                await self._release(held, fresh=False)
                self._offering = []
                if self._outbox:
                    await asyncio.sleep(_SHUTDOWN_RETRY)
        except asyncio.CancelledError:
            self._left_at_deadline()
            raise
        finally:
            if self._task is not None:
                self._task.cancel()
            if self.store is not None:
                await self.store.close()
                self.store = None

    def _left_at_deadline(self) -> None:
        """What the shutdown deadline leaves held: kept traces the next consumer still refuses, and
        without `storage`, traces not decided yet. Counted as dropped, unless `storage` keeps them."""
        held = [*self._offering, *self._outbox]
        self._offering, self._outbox, self._outbox_bytes = [], [], 0
        spans = sum(d.spans for d in held)
        traces = len(held)
        if self.store is None:
            undecided = [self.engine.discard(key) for key in list(self.engine.pending)]
            spans += sum(t.spans for t in undecided)
            traces += len(undecided)
        if self.store is not None:
            # On disk as pending, to be decided again at the next start; not so late spans of a trace
            # decided while their request waited on the disk (no key): those are lost.
            if held:
                log.warning("%s: %d kept trace(s) still refused downstream at the shutdown deadline; kept in %s "
                            "for the next start", self.id, len(held), self.config.storage)
            late = [d for d in held if d.key is None]
            spans, traces = sum(d.spans for d in late), len(late)
        if spans:
            self._dropped.inc(spans)
            log.warning("%s: %d trace(s) (%d spans) still held at the shutdown deadline, dropped", self.id,
                        traces, spans)


def create(settings: Settings[Config], next_consumer: Consumer, signal: Signal) -> TailSamplingStage:
    return TailSamplingStage(settings, next_consumer)


def storage_refs(config: Config) -> list[ExtensionRef]:
    return [ExtensionRef("storage", config.storage, "storage")] if config.storage else []


def keep_metadata(stage: Stage, metadata_keys: tuple[str, ...], read_keys: tuple[str, ...]) -> None:
    assert isinstance(stage, TailSamplingStage)
    stage.metadata_keys = metadata_keys
    stage.read_keys = read_keys


def check_kept_metadata(config: Config, kept: Mapping[str, str]) -> list[tuple[str, str]]:
    """The loader's check (`ProcessorFactory.check_kept_metadata`), reported at `storage`."""
    return [("storage", message) for message in storage_refusals(config, kept)]


FACTORY = ProcessorFactory(type="tail_sampling", config=Config, create=create, signals=frozenset({"traces"}),
                           extension_refs=storage_refs, keep_metadata=keep_metadata,
                           check_kept_metadata=check_kept_metadata)
