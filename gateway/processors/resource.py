"""The `resource` processor's factory: the pure processor is `pipelines.processors.resource`."""

from __future__ import annotations

from gateway.component import Consumer, ProcessorFactory, Settings
from gateway.processors.stage import ProcessorStage
from pipelines.batch import Signal
from pipelines.processors.resource import Config, ResourceProcessor


def create(settings: Settings[Config], next_consumer: Consumer, signal: Signal) -> ProcessorStage:
    return ProcessorStage(settings, ResourceProcessor(settings.config, signal), next_consumer, signal)


FACTORY = ProcessorFactory(type="resource", config=Config, create=create)
