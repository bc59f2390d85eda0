"""The `batch` processor. It holds no data: batching happens after the exporters' sending queues
(`gateway.exporters.queue`), by the rules of this processor's config. The service computes that policy
when it builds the graph (`FACTORY.batching`) and gives it to every exporter downstream of the stage.

Why: a batch processor that holds data and acknowledges it upstream is where the Collector loses spans
(its export errors are swallowed, its buffer is lost on a crash, and it accepts data that a full queue
downstream will then drop). Here a request passes straight to the queues, so the client is answered
only once every queue holds it (in memory or on disk), a full queue refuses it before it is
acknowledged, and the spans waiting to fill a batch are already in the (persistent) queue. The batch
metrics (`otelcol_processor_batch_*`) are recorded where the batches are formed.
"""

from __future__ import annotations

from gateway.component import Consumer, ProcessorFactory, Settings
from pipelines.batch import Batch, Signal
from pipelines.processors.batch import BatchPolicy, Config, policy


class BatchStage:
    """The stage in the pipeline: a pass-through (its work is the exporters' batching policy)."""

    def __init__(self, settings: Settings[Config], next_consumer: Consumer, signal: Signal) -> None:
        self.id = settings.id
        self._next = next_consumer
        self.items = settings.telemetry.processor_items(signal, settings.id)

    async def start(self) -> None:
        pass

    def admit(self, batch: Batch) -> None:
        self._next.admit(batch)

    async def consume(self, batch: Batch) -> None:
        self.items.incoming += batch.items
        self.items.outgoing += batch.items
        await self._next.consume(batch)

    async def shutdown(self) -> None:
        pass


def create(settings: Settings[Config], next_consumer: Consumer, signal: Signal) -> BatchStage:
    return BatchStage(settings, next_consumer, signal)


def batching(settings: Settings[Config]) -> BatchPolicy:
    t = settings.telemetry
    send_size = t.batch_send_size.labels(settings.id)
    send_bytes = t.batch_send_size_bytes.labels(settings.id)
    timeout_trigger = t.batch_timeout_trigger.labels(settings.id)
    size_trigger = t.batch_size_trigger.labels(settings.id)

    def observe(items: int, nbytes: int, by_size: bool) -> None:
        send_size.observe(items)
        send_bytes.observe(nbytes)
        (size_trigger if by_size else timeout_trigger).inc()

    return policy(settings.config, settings.id, observe)


def metadata_keys(config: Config) -> tuple[str, ...]:
    return tuple(k.lower() for k in config.metadata_keys)


FACTORY = ProcessorFactory(type="batch", config=Config, create=create, batching=batching, metadata_keys=metadata_keys)
