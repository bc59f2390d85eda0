"""Joints of the pipeline graph: a receiver feeding several pipelines, a pipeline feeding several
exporters. Each branch gets its own handle on the same data (`Batch.share()`), so a processor that
changes its copy never changes another pipeline's.

Admission: before a fan-out hands a request to any branch, it asks every branch whether it can take it
now (`admit`, answered by exporter queues and the memory limiter, synchronously). So a request that
one queue must refuse is refused as a whole, and the client's retry does not duplicate it in the
branches that had room. Stages that do not know `admit` are treated as always admitting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter

from gateway.component import Consumer
from pipelines.batch import Batch


def admit(consumer: Any, batch: Batch) -> None:
    """Raise the refusal `consumer` would answer now (RetryableError), if it can tell without trying."""
    check = getattr(consumer, "admit", None)
    if check is not None:
        check(batch)


def downstream(consumer: Any) -> Iterator[Any]:
    """Every node reachable from `consumer` through the joints and stages that expose their next hop."""
    nodes = [consumer]
    seen: set[int] = set()
    while nodes:
        node = nodes.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        nodes.extend(getattr(node, "_consumers", ()))
        nxt = getattr(node, "_next", None)
        if nxt is not None:
            nodes.append(nxt)


class Counted:
    """Counts items entering a pipeline (or leaving its processors) and passes them on."""

    def __init__(self, counter: Counter, next_consumer: Consumer) -> None:
        self._counter = counter
        self._next = next_consumer

    def admit(self, batch: Batch) -> None:
        admit(self._next, batch)

    async def consume(self, batch: Batch) -> None:
        self._counter.inc(batch.items)
        await self._next.consume(batch)


class Fanout:
    """Every consumer gets the batch, concurrently, once all of them said they can take it; the first
    refusal is raised after all have answered."""

    def __init__(self, consumers: list[Consumer]) -> None:
        self._consumers = consumers

    def admit(self, batch: Batch) -> None:
        for c in self._consumers:
            admit(c, batch)

    async def consume(self, batch: Batch) -> None:
        if len(self._consumers) == 1:
            await self._consumers[0].consume(batch)
            return
        self.admit(batch)
        results = await asyncio.gather(*(c.consume(batch.share()) for c in self._consumers), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
