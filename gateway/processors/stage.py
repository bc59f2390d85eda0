"""Runs a pure processor from `pipelines` as a pipeline stage, counting what it takes, emits and drops."""

from __future__ import annotations

from typing import Any

from gateway.component import Consumer, Settings
from gateway.telemetry import DropReason
from pipelines.batch import Batch, Signal
from pipelines.processor import Processor

# Processors whose drops are sampling decisions; every other processor's drops are `filtered`.
_SAMPLERS = frozenset({"probabilistic_sampler"})


class ProcessorStage:
    def __init__(self, settings: Settings[Any], processor: Processor, next_consumer: Consumer, signal: Signal) -> None:
        self.id = settings.id
        self.processor = processor
        self._next = next_consumer
        self.items = settings.telemetry.processor_items(signal, settings.id)
        reason: DropReason = "sampled_out" if settings.type in _SAMPLERS else "filtered"
        self._dropped = settings.telemetry.dropped_spans(
            signal, settings.id, reason, settings.telemetry.processor_dropped(signal, settings.id))

    async def start(self) -> None:
        pass

    def admit(self, batch: Batch) -> None:
        # A processor transforms what it is given; whether it can be taken is the next stages' answer.
        self._next.admit(batch)

    async def consume(self, batch: Batch) -> None:
        before = batch.items
        self.items.incoming += before
        out = self.processor.process(batch)
        after = out.items if out is not None else 0
        if after < before:
            self._dropped.inc(before - after)
        if out is not None and after > 0:
            self.items.outgoing += after
            await self._next.consume(out)

    async def shutdown(self) -> None:
        pass
