"""The `filter` processor's factory: the pure processor is `pipelines.ottl_processors.filter`. What it
drops is counted by the processor stage (`otelcol_processor_dropped_*`)."""

from __future__ import annotations

from gateway.component import Consumer, ProcessorFactory, Settings
from gateway.processors.ottl_report import reporter
from gateway.processors.stage import ProcessorStage
from pipelines.batch import Signal
from pipelines.ottl_processors.filter import Config, FilterProcessor


def create(settings: Settings[Config], next_consumer: Consumer, signal: Signal) -> ProcessorStage:
    report = reporter(settings.id, signal, settings.telemetry)
    return ProcessorStage(settings, FilterProcessor(settings.config, signal, report), next_consumer, signal)


FACTORY = ProcessorFactory(type="filter", config=Config, create=create)
