"""A joint the graph puts after a `batch` processor that other processors follow: it joins the
requests that reach it in the same turn of the event loop (same tenant and request metadata, within the
batch processor's `send_batch_size` and `send_batch_max_bytes`) into one batch, so the processors after
it run once per group instead of once per request, as they do after the Collector's batch processor.

A request waits for no timer: the first of a group yields one turn of the loop, while the requests
already read from the network join it; then the group goes on as one batch, and each request is
answered when the group is held downstream, or refused with it. Under light load a group is one
request, passed on as it came; with many small requests in flight, groups grow by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from gateway.component import Consumer
from pipelines.batch import Batch, RequestContext
from pipelines.errors import RetryableError


class _Group:
    __slots__ = ("batches", "done", "items", "nbytes")

    def __init__(self, first: Batch) -> None:
        self.batches = [first]
        self.items = first.items
        self.nbytes = first.nbytes()
        # Created when a second request joins: the followers wait on it; the first request leads.
        self.done: asyncio.Future[None] | None = None


class RequestJoiner:
    def __init__(self, name: str, next_consumer: Consumer, max_items: int, max_bytes: int) -> None:
        self.name = name
        self._next = next_consumer
        self._max_items = max_items or 1 << 62
        self._max_bytes = max_bytes or 1 << 62
        self._open: dict[Hashable, _Group] = {}
        # The groups being passed on: asyncio keeps only weak references to tasks.
        self._running: set[asyncio.Task[None]] = set()

    def admit(self, batch: Batch) -> None:
        self._next.admit(batch)

    async def consume(self, batch: Batch) -> None:
        ctx = batch.context
        key: Hashable = (ctx.identity_key(), tuple(sorted(ctx.metadata.items()))) if ctx.metadata \
            else ctx.identity_key()
        group = self._open.get(key)
        if group is not None and group.items + batch.items <= self._max_items \
                and group.nbytes + batch.nbytes() <= self._max_bytes:
            group.batches.append(batch)
            group.items += batch.items
            group.nbytes += batch.nbytes()
            if group.done is None:
                group.done = asyncio.get_running_loop().create_future()
                # Retrieved here, so an outcome nobody waits for any more (all cancelled) is not logged.
                group.done.add_done_callback(_retrieved)
            # Shielded: a follower cancelled (its client gone) must not cancel the others' answer.
            await asyncio.shield(group.done)
            return
        group = self._open[key] = _Group(batch)
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._close_open(key, group)
            if group.done is not None:
                self._run(group, ctx)  # the followers still get their answer
            raise
        self._close_open(key, group)
        if group.done is None:  # alone: passed on as it came, in this task
            await self._next.consume(batch)
            return
        self._run(group, ctx)
        await asyncio.shield(group.done)

    def _close_open(self, key: Hashable, group: _Group) -> None:
        if self._open.get(key) is group:
            del self._open[key]

    def _run(self, group: _Group, ctx: RequestContext) -> None:
        """Pass the group on in a task of its own, so no member's cancellation (the leader's included)
        cuts it short half-way; its outcome settles every member."""
        done = group.done
        assert done is not None
        task = asyncio.get_running_loop().create_task(self._next.consume(Batch.merge(group.batches, ctx)))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

        def settle(t: asyncio.Task[None]) -> None:
            if done.done():
                return
            if t.cancelled():
                done.set_exception(RetryableError(f"{self.name}: the gateway stopped before the request was held"))
            elif t.exception() is not None:
                done.set_exception(t.exception())  # type: ignore[arg-type]
            else:
                done.set_result(None)

        task.add_done_callback(settle)


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
