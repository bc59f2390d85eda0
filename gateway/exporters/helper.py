"""The exporter helper: a plain push function wrapped in layers, as the Collector's exporterhelper
does: a sending queue (memory or disk, `gateway.queue.sending`), batching after the queue, and retry
(`gateway.exporters.retry`), each exporter with its own queue and consumers so that a slow or dead
backend never delays another. Shared config blocks live here (the retry block with its layer).

Guarantee: a request is acknowledged once the queue holds it; from then on it is delivered, or counted
in `otelcol_exporter_send_failed_*` (a permanent refusal, retries run out, or an in-memory queue that
the shutdown deadline cut short), and logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.component import ExtensionRef, Settings, Status, StatusEvent
from gateway.exporters.retry import Interrupted, RetryConfig, RetrySender
from gateway.own_telemetry.traces import end, exporter_span
from gateway.queue.sending import Entry, MemoryStore, QueueStorage, SendingQueue, Store
from gateway.telemetry import OFF, UNITS, DropReason
from pipelines.batch import Batch
from pipelines.config_types import Duration
from pipelines.errors import ConsumerError, PermanentError, RetryableError
from pipelines.headers_on_disk import disk_refusals, listed_credentials
from pipelines.processors.batch import Batcher, BatchPolicy
from pipelines.processors.batch import Config as BatcherConfig

log = logging.getLogger("gateway.exporter")


@dataclass(frozen=True)
class QueueConfig:
    enabled: bool = True
    num_consumers: int = 10
    queue_size: int = 1000
    sizer: Literal["requests", "items", "bytes"] = "requests"
    storage: str | None = None
    blocking: bool = False
    wait_for_result: bool = False
    # Ours: request headers, beyond the tenant headers (`pipelines.headers_on_disk`), that the operator
    # declares free of credentials, so that a persistent queue may write them to its files.
    persist_metadata_keys: tuple[str, ...] = ()

    def validate(self) -> list[str]:
        errors = []
        if self.enabled and self.num_consumers < 1:
            errors.append("num_consumers must be at least 1")
        if self.enabled and self.queue_size < 1:
            errors.append("queue_size must be positive")
        errors.extend(listed_credentials(self.persist_metadata_keys, "persist_metadata_keys"))
        return errors


def kept_on_disk_refusals(queue: QueueConfig, kept: Mapping[str, str]) -> list[str]:
    """Why a persistent queue must not keep the request headers in `kept` (header -> the config path
    that asks for it): only `PERSISTABLE_HEADERS` and the `persist_metadata_keys` listed, and never one
    that may carry credentials, are written to its files (`pipelines.headers_on_disk`). Nothing for an
    in-memory queue."""
    if not (queue.enabled and queue.storage):
        return []
    return disk_refusals(kept, queue.persist_metadata_keys, "a persistent queue",
                         "sending_queue::persist_metadata_keys", "use an in-memory queue")


def check_kept_metadata(config: ExporterCommon, kept: Mapping[str, str]) -> list[tuple[str, str]]:
    """The loader's check (`ExporterFactory.check_kept_metadata`), reported at `sending_queue::storage`."""
    return [("sending_queue::storage", message) for message in kept_on_disk_refusals(config.sending_queue, kept)]


@dataclass(frozen=True)
class ExporterCommon:
    """Keys every exporter built on the helper accepts."""

    timeout: Duration = 5.0
    sending_queue: QueueConfig = field(default_factory=QueueConfig)
    retry_on_failure: RetryConfig = field(default_factory=RetryConfig)


def storage_refs(config: ExporterCommon) -> list[ExtensionRef]:
    """The extension an exporter's config names: a persistent queue's `sending_queue::storage`."""
    storage = config.sending_queue.storage
    return [ExtensionRef("sending_queue::storage", storage, "storage")] if storage else []


class Pusher(Protocol):
    async def start(self) -> None: ...

    async def push(self, batch: Batch) -> int | None:
        """Send one batch; raise PermanentError or RetryableError on failure. May return the number of
        items the backend rejected in a partial-success answer."""
        ...

    async def shutdown(self) -> None: ...


class _OncePerInterval:
    """A log filter of our own: the same failure is logged at most once per interval, then counted."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self.interval:
            self._last[key] = now
            return True
        return False


# The delay a refused client is asked to wait when a queue is full (or the pusher cannot take requests now).
QUEUE_FULL_RETRY_AFTER = 1.0
# How long `shutdown()` drains when the service did not call `drain()` first.
_FALLBACK_DRAIN = 5.0
# Why an exporter drops what it had taken (`_fail`).
_SEND_DROPS: tuple[DropReason, ...] = ("permanent_failure", "retries_exhausted", "shutdown")


class Exporter:
    """An exporter: a pusher behind a sending queue and retry, with its metrics. Consumers see this object."""

    def __init__(self, settings: Settings[Any], pusher: Pusher, common: ExporterCommon | None = None,
                 context_keys: tuple[str, ...] = (), refusal: Callable[[], str | None] | None = None) -> None:
        """`common`: the exporter's `sending_queue` and `retry_on_failure`; an exporter without those keys
        (debug) sends synchronously, without retry, as in the Collector. `context_keys`: request metadata
        the pusher reads (a `headers_setter`'s `from_context`): kept in the queue with each request, and
        requests with different values never share a batch. `refusal`: why the pusher cannot take new
        requests now (None: it can); such requests are refused at admission (retryable, counted)."""
        self._refusal = refusal
        self.context_keys = tuple(k.lower() for k in context_keys)
        self.id = settings.id
        self.pusher = pusher
        self.queue_config = common.sending_queue if common is not None else QueueConfig(enabled=False)
        self.retry_config = common.retry_on_failure if common is not None else RetryConfig(enabled=False)
        self._host = settings.host
        self._status = settings.status
        self._reported: Status = "StatusOK"
        t = settings.telemetry
        self._sent = {s: t.exporter_sent(s, settings.id) for s in UNITS}
        self._failed = {s: t.exporter_send_failed(s, settings.id) for s in UNITS}
        self._enqueue_failed = {s: t.exporter_enqueue_failed(s, settings.id) for s in UNITS}
        # Spans counted failed, by why, also in otelcol_gateway_dropped_spans_total.
        self._dropped_spans = {r: t.dropped_spans("traces", settings.id, r, OFF) for r in _SEND_DROPS}
        self._size_gauge = t.queue_size.labels(settings.id)
        if self.queue_config.enabled:
            t.queue_capacity.labels(settings.id).set(self.queue_config.queue_size)
        self._log_gate = _OncePerInterval()
        self._stop = asyncio.Event()
        self.stopping = self._stop  # set once sending must stop (the shutdown deadline, or a persistent queue's drain)
        self._retry = RetrySender(settings.id, self.retry_config, self._stop, state=t.retry_state(settings.id))
        self._tracer = t.tracer
        self.policy = self._with_context_keys(BatchPolicy())
        self.queue: SendingQueue | None = None
        self._consumers: list[asyncio.Task[None]] = []
        self._drained = False
        # Set once `start` opened the queue: a reload starts a persistent queue's new exporter only after
        # its predecessor closed the storage, while requests may already reach it.
        self._opened = asyncio.Event()

    def set_batching(self, policy: BatchPolicy) -> None:
        """From the graph, when a `batch` processor is upstream: its settings shape this exporter's batches."""
        self.policy = self._with_context_keys(policy)
        if self.queue is not None:
            self.queue.rekey(policy)

    def _with_context_keys(self, policy: BatchPolicy) -> BatchPolicy:
        extra = tuple(k for k in self.context_keys if k not in policy.metadata_keys)
        return dataclasses.replace(policy, metadata_keys=policy.metadata_keys + extra) if extra else policy

    async def start(self) -> None:
        await self.pusher.start()
        qc = self.queue_config
        if not qc.enabled:
            return
        store: Store = MemoryStore()
        # `validate` refuses this with the config paths; here too, for a service built without it.
        refusals = kept_on_disk_refusals(qc, {k: "batching" for k in self.policy.metadata_keys})
        if refusals:
            raise ValueError(f"exporter {self.id}: {'; '.join(refusals)}")
        if qc.storage:
            storage = self._host.extension(qc.storage)
            if not isinstance(storage, QueueStorage):
                raise TypeError(f"exporter {self.id}: sending_queue::storage {qc.storage!r} is not a storage extension")
            store = await storage.open_queue(self.id)
        self.queue = SendingQueue(qc.queue_size, qc.sizer, store, self._size_gauge.set)
        loaded = self.queue.load(self.policy)
        if loaded:
            log.info("exporter %s: %d request(s) from the persistent queue to send", self.id, loaded)
        loop = asyncio.get_running_loop()
        self._consumers = [loop.create_task(self._consume_loop()) for _ in range(qc.num_consumers)]
        self._opened.set()

    # -- the pipeline's side
    def admit(self, batch: Batch) -> None:
        """Refuse (retryable, counted) a request the queue cannot take now, or (permanent) one whose
        metadata values would pass the batch processor's cardinality limit; change nothing otherwise."""
        combinations = self.policy.combinations
        if combinations is not None:
            try:
                combinations.check(batch.context)
            except PermanentError:
                self._enqueue_failed[batch.signal].inc(batch.items)
                raise
        reason = self._refusal() if self._refusal is not None else None
        if reason is not None:
            self._refuse(batch, reason)
        if self.queue is None:
            return
        try:
            reason = self.queue.refusal(batch)
        except PermanentError:
            self._enqueue_failed[batch.signal].inc(batch.items)
            raise
        if reason is None or (self.queue_config.blocking and not self.queue.closed):
            return
        self._refuse(batch, reason)

    def _refuse(self, batch: Batch, reason: str) -> None:
        self._enqueue_failed[batch.signal].inc(batch.items)
        if self._log_gate.allow("enqueue"):
            log.warning("exporter %s refused %d %s: %s", self.id, batch.items, batch.signal, reason)
        raise RetryableError(f"exporter {self.id}: {reason}", QUEUE_FULL_RETRY_AFTER)

    async def consume(self, batch: Batch) -> None:
        if self.queue is None and self.queue_config.enabled:
            await self._opened.wait()
            if self.queue is None:
                raise RetryableError(f"exporter {self.id}: its sending queue did not open", QUEUE_FULL_RETRY_AFTER)
        queue = self.queue
        self.admit(batch)
        if self.policy.combinations is not None:
            self.policy.combinations.add(batch.context)
        if queue is None:
            await self._send_now(batch)
            return
        if self.queue_config.blocking:
            await queue.wait_room(batch)
            self.admit(batch)
        try:
            entry = queue.put(batch, self.policy)
        except RetryableError:
            self._enqueue_failed[batch.signal].inc(batch.items)
            raise
        if self.queue_config.wait_for_result:
            entry.waiter = asyncio.get_running_loop().create_future()
        await queue.store.sync()
        if entry.waiter is not None:
            await entry.waiter

    async def _send_now(self, batch: Batch) -> None:
        try:
            rejected = await self._send(batch)
        except Interrupted as exc:
            self._fail(batch.signal, batch.items, "shutdown")
            raise RetryableError(f"exporter {self.id} is shutting down: {exc}") from None
        except ConsumerError as exc:
            self._refused(batch.signal, batch.items, exc)
            raise
        self._count_sent(batch.signal, batch.items, rejected)

    # -- the queue's consumers
    async def _consume_loop(self) -> None:
        queue = self.queue
        assert queue is not None
        while True:
            entries = await queue.take(self.policy)
            if entries is None:
                return
            try:
                delivered = await self._deliver(queue, entries)
            except Exception as exc:  # a bug: never let it take a consumer down, nor loop on the batch
                log.exception("exporter %s: sending a batch failed unexpectedly", self.id)
                self._refused(entries[0].signal, sum(e.items for e in entries), PermanentError(repr(exc)))
                delivered = True
            if delivered:
                queue.done(entries)
            else:
                queue.give_back(entries)
                return

    async def _deliver(self, queue: SendingQueue, entries: list[Entry]) -> bool:
        """Send a batch of entries; False if shutdown interrupted it before the backend decided."""
        signal = entries[0].signal
        items = sum(e.items for e in entries)
        try:
            # Not joined here: a sender that can write the pieces as they are saves a copy of the batch
            # (and one that joins them holds only the joined bytes: nothing else keeps this list).
            batch = Batch.concat(signal, [queue.store.read(e) for e in entries], items, entries[0].context)
        except OSError as exc:
            self._refused(signal, items, PermanentError(f"cannot read the queued data back: {exc}"))
            return True
        for chunk in self._chunks(batch):
            try:
                rejected = await self._send(chunk)
            except Interrupted:
                return False
            except ConsumerError as exc:
                self._refused(chunk.signal, chunk.items, exc)
                continue
            self._count_sent(chunk.signal, chunk.items, rejected)
        return True

    async def _push(self, batch: Batch) -> int | None:
        """One attempt, its outcome reported as the exporter's status: a retryable failure is a recoverable
        error until a send succeeds, a permanent refusal a permanent error (the Collector's componentstatus)."""
        try:
            rejected = await self.pusher.push(batch)
        except PermanentError as exc:
            self._report("StatusPermanentError", exc)
            raise
        except Exception as exc:  # retryable, or unclassified (which the retry layer retries)
            self._report("StatusRecoverableError", exc)
            raise
        self._report("StatusOK")
        return rejected

    def _report(self, status: Status, error: BaseException | None = None) -> None:
        if status != self._reported:  # the same status again changes nothing (and keeps when it began)
            self._reported = status
            self._status.report(StatusEvent(status, None if error is None else str(error)))

    async def _send(self, batch: Batch) -> int | None:
        """One export call (with its retries), in a span of the gateway's own when its traces are on."""
        if self._tracer is None or not self._tracer.keep():
            return await self._retry.send(self._push, batch)
        span = exporter_span(self._tracer.tracer, self.id, batch.signal)
        outcome = "ok"
        try:
            return await self._retry.send(self._push, batch)
        except Interrupted:
            outcome = "interrupted"
            raise
        except PermanentError:
            outcome = "permanent_error"
            raise
        except ConsumerError:
            outcome = "retries_exhausted"
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            end(span, outcome, batch.items)

    def _chunks(self, batch: Batch) -> list[Batch]:
        """A single queued request may exceed the batch bounds; split it (bigger than any merge would)."""
        p = self.policy
        too_many = p.send_batch_max_size and batch.items > p.send_batch_max_size
        too_big = p.send_batch_max_bytes and batch.nbytes() > p.send_batch_max_bytes
        if not (too_many or too_big) or batch.items <= 1:
            return [batch]
        batcher = Batcher(batch.signal, BatcherConfig(
            send_batch_size=p.send_batch_max_size or batch.items, timeout=1.0,
            send_batch_max_size=p.send_batch_max_size, send_batch_max_bytes=p.send_batch_max_bytes,
        ))
        chunks = batcher.add(batch.data(), batch.items) + batcher.drain()
        return [Batch(batch.signal, data, n, batch.context) for data, n in chunks if n]

    def _count_sent(self, signal: str, items: int, rejected: Any) -> None:
        r = rejected if isinstance(rejected, int) and rejected > 0 else 0
        self._sent[signal].inc(max(0, items - r))
        if r:
            self._fail(signal, r, "permanent_failure")

    def _fail(self, signal: str, items: int, reason: DropReason) -> None:
        self._failed[signal].inc(items)
        if signal == "traces":
            self._dropped_spans[reason].inc(items)

    def _refused(self, signal: str, items: int, exc: ConsumerError) -> None:
        permanent = isinstance(exc, PermanentError)
        self._fail(signal, items, "permanent_failure" if permanent else "retries_exhausted")
        kind = "permanent" if permanent else "retries exhausted"
        if self._log_gate.allow(f"{kind}:{exc}"):
            log.error("exporter %s dropped %d %s (%s): %s", self.id, items, signal, kind, exc)

    # -- a config reload
    async def park(self, within: float) -> list[tuple[Entry, bytes]]:
        """Take no more requests and stop sending: a push under way finishes (within `within`, then it
        is cut short and its batch counts as still queued), a batch waiting to retry goes back to the
        queue. What is left, with its data, for the exporter of the new config to `adopt`; a
        persistent queue keeps it on disk until `release`d."""
        self._drained = True
        self._opened.set()
        self._stop.set()
        queue = self.queue
        if queue is None:
            return []
        queue.closed = queue.parked = True
        queue.wake()
        if self._consumers:
            _, still = await asyncio.wait(self._consumers, timeout=max(0.0, within))
            for task in still:
                task.cancel()
            await asyncio.gather(*self._consumers, return_exceptions=True)
        left = sorted(queue.leftovers(), key=lambda e: e.seq)
        out: list[tuple[Entry, bytes]] = []
        for e in left:
            try:
                out.append((e, queue.store.read(e)))
            except OSError as exc:
                self._refused(e.signal, e.items, PermanentError(f"cannot read the queued data back: {exc}"))
        return out

    def adopt(self, entries: list[tuple[Entry, bytes]]) -> int:
        """Queue what the same-named exporter of the old config held; the number of requests taken (a
        write refused by the disk is counted as failed)."""
        queue = self.queue
        assert queue is not None
        taken = 0
        for old, data in entries:
            try:
                queue.adopt(old, data, self.policy)
                taken += 1
            except RetryableError as exc:
                self._refused(old.signal, old.items, exc)
        return taken

    def release(self, entries: list[Entry]) -> None:
        """The exporter of the new config holds these entries now: forget them here (off the disk)."""
        if self.queue is not None:
            self.queue.store.ack(entries)

    # -- shutdown
    async def drain(self, within: float) -> None:
        """Send what is queued within `within` seconds. An in-memory queue keeps retrying until then and counts
        what is left as failed; a persistent queue stops retrying at once and keeps the rest on disk."""
        if self._drained:
            return
        self._drained = True
        queue = self.queue
        if queue is None:
            self._stop.set()
            return
        queue.closed = queue.flushing = queue.draining = True
        queue.wake()
        if queue.store.persistent:
            self._stop.set()
        if self._consumers:
            _, still = await asyncio.wait(self._consumers, timeout=max(0.0, within))
            self._stop.set()
            for task in still:
                task.cancel()
            await asyncio.gather(*self._consumers, return_exceptions=True)
        left = queue.leftovers()
        if not left:
            return
        by_signal: dict[str, int] = {}
        for e in left:
            by_signal[e.signal] = by_signal.get(e.signal, 0) + e.items
            if e.waiter is not None and not e.waiter.done():
                e.waiter.cancel()
        what = ", ".join(f"{n} {UNITS[s]}" for s, n in by_signal.items())
        if queue.store.persistent:
            log.info("exporter %s: %s kept in the persistent queue for the next start", self.id, what)
            return
        for s, n in by_signal.items():
            self._fail(s, n, "shutdown")
        log.error("exporter %s: the shutdown deadline passed with %s still queued; dropped", self.id, what)

    async def shutdown(self) -> None:
        await self.drain(_FALLBACK_DRAIN)
        await self.pusher.shutdown()
        if self.queue is not None:
            self.queue.store.close()
