"""The `attributes` processor's factory: the pure processor is `pipelines.processors.attributes`."""

from __future__ import annotations

from gateway.component import Consumer, ProcessorFactory, Settings
from gateway.processors.stage import ProcessorStage
from pipelines.batch import Signal
from pipelines.processors import matching
from pipelines.processors.attributes import AttributesProcessor, Config


def create(settings: Settings[Config], next_consumer: Consumer, signal: Signal) -> ProcessorStage:
    return ProcessorStage(settings, AttributesProcessor(settings.config, signal), next_consumer, signal)


def check_for_signal(config: Config, signal: str) -> list[str]:
    errors = []
    for name, mp in (("include", config.include), ("exclude", config.exclude)):
        try:
            matching.check_for_signal(mp, signal)
        except ValueError as exc:
            errors.append(f"{name}: {exc}")
    return errors


FACTORY = ProcessorFactory(type="attributes", config=Config, create=create, check_for_signal=check_for_signal)
