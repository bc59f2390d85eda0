"""The `probabilistic_sampler` processor's factory (traces): the pure processor is
`pipelines.processors.probabilistic_sampler`. Dropped spans are counted by the processor stage."""

from __future__ import annotations

from gateway.component import Consumer, ProcessorFactory, Settings
from gateway.processors.stage import ProcessorStage
from pipelines.batch import Signal
from pipelines.processors.probabilistic_sampler import Config, ProbabilisticSampler


def create(settings: Settings[Config], next_consumer: Consumer, signal: Signal) -> ProcessorStage:
    return ProcessorStage(settings, ProbabilisticSampler(settings.config), next_consumer, signal)


FACTORY = ProcessorFactory(type="probabilistic_sampler", config=Config, create=create, signals=frozenset({"traces"}))
