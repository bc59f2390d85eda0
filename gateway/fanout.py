"""Joints of the pipeline graph: a receiver feeding several pipelines, a pipeline feeding several
exporters. The same Batch object goes to every branch (processors copy before they change it)."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter

from gateway.component import Consumer
from pipelines.batch import Batch


class Counted:
    """Counts items entering a pipeline (or leaving its processors) and passes them on."""

    def __init__(self, counter: Counter, next_consumer: Consumer) -> None:
        self._counter = counter
        self._next = next_consumer

    async def consume(self, batch: Batch) -> None:
        self._counter.inc(batch.items)
        await self._next.consume(batch)


class Fanout:
    """Every consumer gets the batch, concurrently; the first refusal is raised after all have answered."""

    def __init__(self, consumers: list[Consumer]) -> None:
        self._consumers = consumers

    async def consume(self, batch: Batch) -> None:
        if len(self._consumers) == 1:
            await self._consumers[0].consume(batch)
            return
        results = await asyncio.gather(*(c.consume(batch) for c in self._consumers), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
