"""The `forward` connector: what one pipeline exports enters every pipeline that lists the connector
as a receiver, unchanged (traces to traces, metrics to metrics, logs to logs). It has no config.

Delivery holds through it: the exporting pipeline's request is answered once every pipeline it feeds
holds it, and a refusal from any of them (a full queue) refuses the request before any takes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.component import ConnectorFactory, Consumer, Settings
from gateway.fanout import Fanout
from pipelines.batch import Batch, Signal


@dataclass(frozen=True)
class Config:
    pass


class ForwardConnector:
    def __init__(self, settings: Settings[Config], pipelines: Mapping[str, Consumer]) -> None:
        self.id = settings.id
        self._fanout = Fanout(list(pipelines.values()))

    async def start(self) -> None:
        pass

    def admit(self, batch: Batch) -> None:
        self._fanout.admit(batch)

    async def consume(self, batch: Batch) -> None:
        await self._fanout.consume(batch)

    async def shutdown(self) -> None:
        pass


def create(settings: Settings[Config], pipelines: Mapping[str, Consumer], signal: Signal) -> ForwardConnector:
    return ForwardConnector(settings, pipelines)


FACTORY = ConnectorFactory(
    type="forward", config=Config, create=create,
    pairs=frozenset({("traces", "traces"), ("metrics", "metrics"), ("logs", "logs")}),
)
