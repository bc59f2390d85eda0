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
from pipelines.batch import Batch
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

    def admit(self, batch: Batch) -> None:
        self._next.admit(batch)

    async def consume(self, batch: Batch) -> None:
        ctx = batch.context
        key: Hashable = (ctx.tenant, tuple(sorted(ctx.metadata.items()))) if ctx.metadata else ctx.tenant
        group = self._open.get(key)
        if group is not None and group.items + batch.items <= self._max_items \
                and group.nbytes + batch.nbytes() <= self._max_bytes:
            group.batches.append(batch)
            group.items += batch.items
            group.nbytes += batch.nbytes()
            if group.done is None:
                group.done = asyncio.get_running_loop().create_future()
            await group.done
            return
        group = self._open[key] = _Group(batch)
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._close(key, group, None)
            raise
        if self._open.get(key) is group:
            del self._open[key]
        try:
            await self._next.consume(Batch.merge(group.batches, ctx))
        except BaseException as exc:
            self._close(key, group, exc)
            raise
        self._close(key, group, None, done=True)

    def _close(self, key: Hashable, group: _Group, exc: BaseException | None, done: bool = False) -> None:
        """Settle the followers: held (`done`), refused with `exc`, or refused because the leader was
        cancelled before it passed the group on."""
        if self._open.get(key) is group:
            del self._open[key]
        waiters = group.done
        if waiters is None or waiters.done():
            return
        if done:
            waiters.set_result(None)
        elif exc is None or isinstance(exc, asyncio.CancelledError):
            waiters.set_exception(RetryableError(f"{self.name}: the request was cancelled before it was passed on"))
        else:
            waiters.set_exception(exc)
