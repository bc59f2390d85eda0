"""The component registry: a plain table from type name to the module holding its factory.

Each module exposes `FACTORY`, a `Factory`. Old names the Collector still accepts are aliases.
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["receivers", "processors", "exporters", "extensions"]


@dataclass(frozen=True)
class Factory:
    type: str
    config: builtins.type
    create: Callable[..., Any]
    signals: frozenset[str] = frozenset({"traces", "metrics", "logs"})
    # Rules only the pipeline a component runs in can check: (config, signal) -> error messages.
    check_for_signal: Callable[[Any, str], list[str]] | None = None


REGISTRY: dict[Kind, dict[str, str]] = {
    "receivers": {
        "otlp": "gateway.receivers.otlp",
    },
    "processors": {
        "batch": "gateway.processors.batch",
        "memory_limiter": "gateway.processors.memory_limiter",
        "attributes": "gateway.processors.attributes",
        "resource": "gateway.processors.resource",
        "probabilistic_sampler": "gateway.processors.probabilistic_sampler",
    },
    "exporters": {
        "otlp": "gateway.exporters.otlp_grpc",
        "otlp_grpc": "gateway.exporters.otlp_grpc",
        "otlphttp": "gateway.exporters.otlp_http",
        "otlp_http": "gateway.exporters.otlp_http",
        "debug": "gateway.exporters.debug",
        "logging": "gateway.exporters.debug",
        "honeycomb": "gateway.exporters.honeycomb",
        "tempo": "gateway.exporters.tempo",
        "jaeger": "gateway.exporters.jaeger",
    },
    "extensions": {
        "health_check": "gateway.extensions.health",
        "file_storage": "gateway.extensions.file_storage",
        "bearertokenauth": "gateway.extensions.bearertokenauth",
    },
}


# Old names the Collector renamed: accepted, with a warning.
DEPRECATED = {("exporters", "logging"): "debug"}


def lookup(kind: Kind, type_name: str) -> Factory | None:
    module = REGISTRY[kind].get(type_name)
    if module is None:
        return None
    factory: Factory = importlib.import_module(module).FACTORY
    return factory


def known(kind: Kind) -> list[str]:
    return sorted(REGISTRY[kind])
