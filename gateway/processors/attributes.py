"""The `attributes` processor's factory: the pure processor is `pipelines.processors.attributes`."""

from __future__ import annotations

from gateway.component import Consumer, Settings
from gateway.components import Factory
from pipelines.batch import Signal
from pipelines.processors import matching
from pipelines.processors.attributes import AttributesProcessor, Config


def create(settings: Settings, next_consumer: Consumer, signal: Signal) -> AttributesProcessor:
    return AttributesProcessor(settings.config, signal)


def check_for_signal(config: Config, signal: str) -> list[str]:
    errors = []
    for name, mp in (("include", config.include), ("exclude", config.exclude)):
        try:
            matching.check_for_signal(mp, signal)
        except ValueError as exc:
            errors.append(f"{name}: {exc}")
    return errors


FACTORY = Factory(type="attributes", config=Config, create=create, check_for_signal=check_for_signal)
