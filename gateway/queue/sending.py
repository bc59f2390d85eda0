"""The sending queue of one exporter, and the batching that happens after it.

A request is put here at acknowledgement time, whole and serialized, into memory or a disk store.
Consumers take *batches*: the oldest entry plus the following entries of the same batch key (tenant
and metadata values), until `send_batch_size` items are gathered or `timeout` has passed since the
oldest was queued. This is the Collector's newer exporter batcher: batching after the queue means
the queue (and the disk, for a persistent queue) already holds every acknowledged span, including
those still waiting to fill a batch, and a full queue refuses the request before it is acknowledged.

Capacity counts entries queued and entries being sent (not yet acknowledged by the backend), in the
configured sizer: requests, items or bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from pipelines.batch import Batch, RequestContext, Signal
from pipelines.errors import PermanentError
from pipelines.processors.batch import BatchPolicy

Sizer = Literal["requests", "items", "bytes"]

# How far past entries of another batch key the assembler looks for more of the same key.
_SCAN_LIMIT = 256


class Entry:
    """One queued request. `data` is None when it lives only on disk (read back at send time)."""

    __slots__ = ("context", "data", "enqueued", "items", "key", "loc", "nbytes", "seq", "signal", "units", "waiter")

    def __init__(self, seq: int, signal: Signal, items: int, nbytes: int, context: RequestContext,
                 data: bytes | None, enqueued: float) -> None:
        self.seq = seq
        self.signal: Signal = signal
        self.items = items
        self.nbytes = nbytes
        self.context = context
        self.data = data
        self.enqueued = enqueued
        self.key: tuple[Any, ...] = ()
        self.loc: Any = None
        self.units = 0
        self.waiter: asyncio.Future[None] | None = None


@runtime_checkable
class QueueStorage(Protocol):
    """An extension that keeps sending queues (`file_storage`), named by an exporter's
    `sending_queue::storage`."""

    async def open_queue(self, owner: str) -> Store: ...


class Store(Protocol):
    """Where entries live besides memory. `write` and `ack` are synchronous (page cache), `sync` not."""

    persistent: bool

    def refusal(self, nbytes: int) -> str | None: ...

    def write(self, entry: Entry, data: bytes) -> None: ...

    async def sync(self) -> None: ...

    def read(self, entry: Entry) -> bytes: ...

    def ack(self, entries: list[Entry]) -> None: ...

    def load(self) -> list[Entry]: ...

    def close(self) -> None: ...


class MemoryStore:
    persistent = False

    def refusal(self, nbytes: int) -> str | None:
        return None

    def write(self, entry: Entry, data: bytes) -> None:
        entry.data = data

    async def sync(self) -> None:
        pass

    def read(self, entry: Entry) -> bytes:
        assert entry.data is not None
        return entry.data

    def ack(self, entries: list[Entry]) -> None:
        pass

    def load(self) -> list[Entry]:
        return []

    def close(self) -> None:
        pass


class SendingQueue:
    def __init__(self, capacity: int, sizer: Sizer, store: Store,
                 on_size: Callable[[int], None] = lambda n: None) -> None:
        self.capacity = capacity
        self.sizer: Sizer = sizer
        self.store = store
        self.used = 0
        self._pending: deque[Entry] = deque()
        self.inflight: set[Entry] = set()
        self._seq = 0
        self._on_size = on_size
        self._assembly = asyncio.Lock()
        self._arrived = asyncio.Event()
        self._changed = asyncio.Event()
        self.closed = False  # no more puts
        self.flushing = False  # batches go out without waiting for their timeout
        self.draining = False  # consumers stop once nothing is pending
        self.parked = False  # consumers stop after the batch they have (a reload hands the rest on)

    def units_of(self, items: int, nbytes: int) -> int:
        return 1 if self.sizer == "requests" else items if self.sizer == "items" else nbytes

    def load(self, policy: BatchPolicy) -> int:
        """Take what the store kept from a previous run; return the number of entries."""
        entries = self.store.load()
        for e in entries:
            e.units = self.units_of(e.items, e.nbytes)
            e.key = policy.key(e.context)
            self._seq = max(self._seq, e.seq)
            self._pending.append(e)
            self.used += e.units
        self._on_size(self.used)
        return len(entries)

    def rekey(self, policy: BatchPolicy) -> None:
        for e in self._pending:
            e.key = policy.key(e.context)

    def refusal(self, batch: Batch) -> str | None:
        """Why this request cannot be queued now, or None. Does not change anything."""
        if self.closed:
            return "the exporter is shutting down"
        nbytes = batch.nbytes()
        units = self.units_of(batch.items, nbytes)
        if units > self.capacity:
            raise PermanentError(f"request of {units} {self.sizer} is larger than the whole sending queue "
                                 f"({self.capacity} {self.sizer})")
        if self.used + units > self.capacity:
            return f"sending queue is full ({self.used}/{self.capacity} {self.sizer})"
        return self.store.refusal(nbytes)

    def adopt(self, old: Entry, data: bytes, policy: BatchPolicy) -> None:
        """Queue a request another exporter's queue held (a config reload hands it on). Acknowledged
        data is never refused: past the capacity, new requests are refused until it drains."""
        self._append(old.signal, old.items, old.context, data, old.enqueued, policy)

    def put(self, batch: Batch, policy: BatchPolicy) -> Entry:
        """Queue a request (after `refusal` said yes). May raise RetryableError from the store (disk full)."""
        return self._append(batch.signal, batch.items, batch.context, batch.data(), time.monotonic(), policy)

    def _append(self, signal: Signal, items: int, context: RequestContext, data: bytes, enqueued: float,
                policy: BatchPolicy) -> Entry:
        self._seq += 1
        kept = policy.kept(context)
        entry = Entry(self._seq, signal, items, len(data), kept, None, enqueued)
        entry.units = self.units_of(entry.items, entry.nbytes)
        entry.key = policy.key(kept)
        self.store.write(entry, data)
        self._pending.append(entry)
        self.used += entry.units
        self._on_size(self.used)
        self._arrived.set()
        return entry

    async def wait_room(self, batch: Batch) -> None:
        """For `blocking: true`: wait until the request fits."""
        while self.refusal(batch) is not None and not self.closed:
            self._changed.clear()
            await self._changed.wait()

    async def take(self, policy: BatchPolicy) -> list[Entry] | None:
        """The next batch of entries, or None once draining and nothing is left."""
        async with self._assembly:
            while self.parked or not self._pending:
                if self.draining or self.parked:
                    return None
                self._arrived.clear()
                await self._arrived.wait()
            first = self._pending.popleft()
            # In flight from here on, so that a drain cut short by the deadline still accounts for them.
            self.inflight.add(first)
            entries = [first]
            items, nbytes = first.items, first.nbytes
            deadline = first.enqueued + policy.timeout
            while True:
                items, nbytes = self._gather(entries, items, nbytes, policy)
                if items >= policy.send_batch_size or self.flushing or self.draining or self.parked:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._arrived.wait()
            if policy.observe is not None:
                policy.observe(items, nbytes, items >= policy.send_batch_size)
            return entries

    def _gather(self, entries: list[Entry], items: int, nbytes: int, policy: BatchPolicy) -> tuple[int, int]:
        key = entries[0].key
        max_items, max_bytes = policy.send_batch_max_size, policy.send_batch_max_bytes
        skipped: list[Entry] = []
        while self._pending and items < policy.send_batch_size and len(skipped) < _SCAN_LIMIT:
            e = self._pending[0]
            if e.key != key or e.signal != entries[0].signal:
                skipped.append(self._pending.popleft())
                continue
            if (max_items and items + e.items > max_items) or (max_bytes and nbytes + e.nbytes > max_bytes):
                break
            self._pending.popleft()
            self.inflight.add(e)
            entries.append(e)
            items += e.items
            nbytes += e.nbytes
        self._pending.extendleft(reversed(skipped))
        return items, nbytes

    def done(self, entries: list[Entry]) -> None:
        """The backend took these entries, or refused them for good: forget them."""
        self.store.ack(entries)
        for e in entries:
            self.inflight.discard(e)
            self.used -= e.units
            if e.waiter is not None and not e.waiter.done():
                e.waiter.set_result(None)
        self._on_size(self.used)
        self._changed.set()

    def give_back(self, entries: list[Entry]) -> None:
        """Sending was interrupted before the backend decided: the entries go back to the head of the
        queue (and stay on disk for the next start)."""
        for e in entries:
            self.inflight.discard(e)
        self._pending.extendleft(reversed(entries))

    def pending_count(self) -> int:
        return len(self._pending)

    def leftovers(self) -> list[Entry]:
        return [*self._pending, *self.inflight]

    def wake(self) -> None:
        self._arrived.set()
        self._changed.set()

    def empty(self) -> bool:
        return not self._pending and not self.inflight

    async def wait_changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()
