"""The `probabilistic_sampler` processor's factory (traces): the pure processor is
`pipelines.processors.probabilistic_sampler`. Dropped spans are counted by the processor stage."""

from __future__ import annotations

from gateway.component import Consumer, Settings
from gateway.components import Factory
from pipelines.batch import Signal
from pipelines.processors.probabilistic_sampler import Config, ProbabilisticSampler


def create(settings: Settings, next_consumer: Consumer, signal: Signal) -> ProbabilisticSampler:
    return ProbabilisticSampler(settings.config)


FACTORY = Factory(type="probabilistic_sampler", config=Config, create=create, signals=frozenset({"traces"}))
