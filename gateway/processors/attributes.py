"""The `attributes` processor's factory: the pure processor is `pipelines.processors.attributes`."""

from __future__ import annotations

from gateway.component import Consumer, Settings
from gateway.components import Factory
from pipelines.batch import Signal
from pipelines.processors.attributes import AttributesProcessor, Config


def create(settings: Settings, next_consumer: Consumer, signal: Signal) -> AttributesProcessor:
    return AttributesProcessor(settings.config, signal)


FACTORY = Factory(type="attributes", config=Config, create=create)
