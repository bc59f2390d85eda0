"""The `resource` processor's factory: the pure processor is `pipelines.processors.resource`."""

from __future__ import annotations

from gateway.component import Consumer, Settings
from gateway.components import Factory
from pipelines.batch import Signal
from pipelines.processors.resource import Config, ResourceProcessor


def create(settings: Settings, next_consumer: Consumer, signal: Signal) -> ResourceProcessor:
    return ResourceProcessor(settings.config, signal)


FACTORY = Factory(type="resource", config=Config, create=create)
