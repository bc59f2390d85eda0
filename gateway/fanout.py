"""Joints of the pipeline graph: a receiver feeding several pipelines, a pipeline feeding several
exporters or connectors. Each branch gets its own handle on the same data (`Batch.share()`), so a
processor that changes its copy never changes another pipeline's.

Admission: before a fan-out hands a request to any branch, it asks every branch whether it can take it
now (`Consumer.admit`, answered by exporter queues and the memory limiter, synchronously). So a
request that one queue must refuse is refused as a whole, and the client's retry does not duplicate it
in the branches that had room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.component import Consumer
from gateway.telemetry import CounterLike
from pipelines.batch import Batch


class Counted:
    """Counts items entering a pipeline (or leaving its processors) and passes them on."""

    def __init__(self, counter: CounterLike, next_consumer: Consumer) -> None:
        self._counter = counter
        self._next = next_consumer

    def admit(self, batch: Batch) -> None:
        try:
            self._next.admit(batch)
        except Exception:
            # Refused when asked before `consume` (a fan-out asks every branch first): counted as when
            # `consume` is asked at once (one branch), so the count never depends on the fan-out.
            self._counter.inc(batch.items)
            raise

    async def consume(self, batch: Batch) -> None:
        self._counter.inc(batch.items)
        await self._next.consume(batch)


class Fanout:
    """Every consumer gets the batch once all of them said they can take it; the first refusal is
    raised after all have answered."""

    def __init__(self, consumers: Sequence[Consumer]) -> None:
        self._consumers = tuple(consumers)

    def admit(self, batch: Batch) -> None:
        for c in self._consumers:
            c.admit(batch)

    async def consume(self, batch: Batch) -> None:
        if len(self._consumers) == 1:
            await self._consumers[0].consume(batch)
            return
        self.admit(batch)
        await consume_all([(c, batch.share()) for c in self._consumers])


async def consume_all(deliveries: Sequence[tuple[Consumer, Batch]]) -> None:
    """Hand each batch to its consumer, one after the other; raise the first refusal once all have
    answered, so the request is answered only when every branch holds its part or has refused it.

    One after the other, not concurrently: a branch runs until its queue holds the batch before the
    next starts, so between the fan-out's `admit` and the last queue's `put` no other request runs
    (an in-memory queue's put does not yield). Run as tasks, other requests filled a queue that had
    said yes in between, the request was refused after other branches had taken it, and the client's
    retry duplicated it there (bench scenario c at 10 spans per request: 3,220 spans). What still
    yields before a put (a persistent queue's sync, `blocking` or `wait_for_result` queues, a join)
    makes the branches after it wait for it."""
    first: BaseException | None = None
    for consumer, batch in deliveries:
        try:
            await consumer.consume(batch)
        except Exception as exc:  # a refusal; cancellation goes up at once
            if first is None:
                first = exc
    if first is not None:
        raise first


class Activity:
    """The requests a graph is handling: a config reload waits for the old graph's to finish."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()


class Switch:
    """A receiver's consumer for one signal: the graph it hands requests to, replaced as a whole by a
    config reload between two requests. A request runs to its answer on the graph it started on."""

    def __init__(self, target: Consumer, activity: Activity) -> None:
        self._to = (target, activity)

    def point(self, target: Consumer, activity: Activity) -> None:
        self._to = (target, activity)

    def admit(self, batch: Batch) -> None:
        self._to[0].admit(batch)

    async def consume(self, batch: Batch) -> None:
        target, activity = self._to
        activity.enter()
        try:
            await target.consume(batch)
        finally:
            activity.leave()
