"""The `batch` processor as a stage. It holds no data: batching happens after the exporters' sending
queues (`gateway.exporters.queue`), by the rules of this processor's config, which the stage hands to
every exporter downstream when it starts.

Why: a batch processor that holds data and acknowledges it upstream is where the Collector loses spans
(its export errors are swallowed, its buffer is lost on a crash, and it accepts data that a full queue
downstream will then drop). Here a request passes straight to the queues, so the client is answered
only once every queue holds it (in memory or on disk), a full queue refuses it before it is
acknowledged, and the spans waiting to fill a batch are already in the (persistent) queue. The batch
metrics (`otelcol_processor_batch_*`) are recorded where the batches are formed.
"""

from __future__ import annotations

import logging

from gateway.component import Consumer, Settings
from gateway.components import Factory
from gateway.fanout import admit, downstream
from gateway.queue.sending import BatchPolicy
from pipelines.batch import Batch, Signal
from pipelines.processors.batch import Config

log = logging.getLogger("gateway.processor.batch")


class BatchStage:
    def __init__(self, settings: Settings, next_consumer: Consumer, signal: Signal) -> None:
        self.id = settings.id
        self.config: Config = settings.config
        self.signal: Signal = signal
        self._next = next_consumer
        t = settings.telemetry
        send_size = t.batch_send_size.labels(settings.id)
        send_bytes = t.batch_send_size_bytes.labels(settings.id)
        timeout_trigger = t.batch_timeout_trigger.labels(settings.id)
        size_trigger = t.batch_size_trigger.labels(settings.id)

        def observe(items: int, nbytes: int, by_size: bool) -> None:
            send_size.observe(items)
            send_bytes.observe(nbytes)
            (size_trigger if by_size else timeout_trigger).inc()

        c = self.config
        self.policy = BatchPolicy(
            # `timeout: 0` in the Collector means "send at once": no waiting, whatever is queued goes.
            # `send_batch_size: 0`: no size trigger, only the timer (bounded by the max sizes).
            send_batch_size=0 if c.timeout <= 0 else c.send_batch_size or c.send_batch_max_size or 1 << 62,
            send_batch_max_size=c.send_batch_max_size,
            send_batch_max_bytes=c.send_batch_max_bytes,
            timeout=c.timeout,
            metadata_keys=tuple(k.lower() for k in c.metadata_keys),
            processor=settings.id,
            observe=observe,
        )

    async def start(self) -> None:
        exporters = [node for node in downstream(self._next) if hasattr(node, "set_batching")]
        for exporter in exporters:
            exporter.set_batching(self.policy)
        if not exporters:
            log.warning("%s: no exporter with a sending queue downstream; requests pass unbatched", self.id)

    def admit(self, batch: Batch) -> None:
        admit(self._next, batch)

    async def consume(self, batch: Batch) -> None:
        await self._next.consume(batch)

    async def shutdown(self) -> None:
        pass


def create(settings: Settings, next_consumer: Consumer, signal: Signal) -> BatchStage:
    return BatchStage(settings, next_consumer, signal)


FACTORY = Factory(type="batch", config=Config, create=create)
