"""The `batch` processor as a stage: `pipelines.processors.batch.Batcher` decides, this drives the
timer and sends. A batch is acknowledged upstream once it is held here; sending happens in tasks so a
slow backend never delays receiving."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.component import Consumer, Settings
from gateway.components import Factory
from pipelines.batch import Batch, RequestContext, Signal
from pipelines.errors import ConsumerError, PermanentError
from pipelines.processors.batch import Batcher, Chunk, Config

log = logging.getLogger("gateway.processor.batch")


class _Shard:
    __slots__ = ("batcher", "context", "timer")

    def __init__(self, batcher: Batcher, context: RequestContext) -> None:
        self.batcher = batcher
        self.context = context
        self.timer: asyncio.TimerHandle | None = None


class BatchStage:
    def __init__(self, settings: Settings, next_consumer: Consumer, signal: Signal) -> None:
        self.id = settings.id
        self.config: Config = settings.config
        self.signal: Signal = signal
        self._next = next_consumer
        self._shards: dict[tuple[Any, ...], _Shard] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        t = settings.telemetry
        self._send_size = t.batch_send_size.labels(settings.id)
        self._send_bytes = t.batch_send_size_bytes.labels(settings.id)
        self._timeout_trigger = t.batch_timeout_trigger.labels(settings.id)
        self._size_trigger = t.batch_size_trigger.labels(settings.id)
        self._metadata_keys = tuple(k.lower() for k in self.config.metadata_keys)

    async def start(self) -> None:
        pass

    def _shard(self, context: RequestContext) -> _Shard:
        key = context.batch_key(self._metadata_keys)
        shard = self._shards.get(key)
        if shard is None:
            if len(self._shards) >= self.config.metadata_cardinality_limit:
                raise PermanentError(f"{self.id}: too many batcher metadata-value combinations")
            shard = _Shard(Batcher(self.signal, self.config), context)
            self._shards[key] = shard
        return shard

    async def consume(self, batch: Batch) -> None:
        shard = self._shard(batch.context)
        for chunk in shard.batcher.add(batch.data(), batch.items):
            self._send(shard, chunk, self._size_trigger)
        self._arm(shard)

    def _arm(self, shard: _Shard) -> None:
        if shard.batcher.items and shard.timer is None and self.config.timeout > 0:
            loop = asyncio.get_running_loop()
            shard.timer = loop.call_later(self.config.timeout, self._on_timer, shard)

    def _on_timer(self, shard: _Shard) -> None:
        shard.timer = None
        if shard.batcher.items:
            self._send(shard, shard.batcher.take(), self._timeout_trigger)
        self._arm(shard)

    def _send(self, shard: _Shard, chunk: Chunk, trigger: Any) -> None:
        data, items = chunk
        if not items:
            return
        trigger.inc()
        self._send_size.observe(items)
        self._send_bytes.observe(len(data))
        task = asyncio.get_running_loop().create_task(self._deliver(Batch(self.signal, data, items, shard.context)))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _deliver(self, batch: Batch) -> None:
        try:
            await self._next.consume(batch)
        except ConsumerError:
            pass  # counted and logged by the exporter that refused it
        except Exception:
            log.exception("%s: sending a batch failed", self.id)

    async def shutdown(self) -> None:
        for shard in self._shards.values():
            if shard.timer is not None:
                shard.timer.cancel()
                shard.timer = None
            for chunk in shard.batcher.drain():
                self._send(shard, chunk, self._timeout_trigger)
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)


def create(settings: Settings, next_consumer: Consumer, signal: Signal) -> BatchStage:
    return BatchStage(settings, next_consumer, signal)


FACTORY = Factory(type="batch", config=Config, create=create)
