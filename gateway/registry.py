"""The component registry: a plain table from type name to the module holding its factory.

Each module exposes `FACTORY`, a factory of its kind (`gateway.component`). Modules are imported when
a config names their type, so an unused component costs nothing at start-up. Old names the Collector
still accepts are aliases.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal, cast

from gateway.component import (
    ConnectorFactory,
    ExporterFactory,
    ExtensionFactory,
    ProcessorFactory,
    ReceiverFactory,
)

Kind = Literal["receivers", "processors", "exporters", "extensions", "connectors"]

REGISTRY: dict[Kind, dict[str, str]] = {
    "receivers": {
        "otlp": "gateway.receivers.otlp",
        "zipkin": "gateway.receivers.zipkin",
        "jaeger": "gateway.receivers.jaeger",
    },
    "processors": {
        "batch": "gateway.processors.batch",
        "memory_limiter": "gateway.processors.memory_limiter",
        "attributes": "gateway.processors.attributes",
        "resource": "gateway.processors.resource",
        "probabilistic_sampler": "gateway.processors.probabilistic_sampler",
        "transform": "gateway.processors.transform",
        "filter": "gateway.processors.filter",
        "tail_sampling": "gateway.processors.tail_sampling",
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
        "loadbalancing": "gateway.exporters.loadbalancing",
        "load_balancing": "gateway.exporters.loadbalancing",
    },
    "extensions": {
        "health_check": "gateway.extensions.health",
        "healthcheckv2": "gateway.extensions.healthcheckv2",
        "file_storage": "gateway.extensions.file_storage",
        "bearertokenauth": "gateway.extensions.bearertokenauth",
        "basicauth": "gateway.extensions.basicauth",
        "headers_setter": "gateway.extensions.headers_setter",
        "oidc": "gateway.extensions.oidc",
        "oauth2client": "gateway.extensions.oauth2client",
        "zpages": "gateway.extensions.zpages",
        "pprof": "gateway.extensions.pprof",
    },
    "connectors": {
        "forward": "gateway.connectors.forward",
        "routing": "gateway.connectors.routing",
    },
}

_FACTORY_TYPES: dict[Kind, type] = {
    "receivers": ReceiverFactory,
    "processors": ProcessorFactory,
    "exporters": ExporterFactory,
    "extensions": ExtensionFactory,
    "connectors": ConnectorFactory,
}

# Old names the Collector renamed: accepted, with a warning.
DEPRECATED = {("exporters", "logging"): "debug"}

AnyFactory = (
    ReceiverFactory[Any] | ProcessorFactory[Any] | ExporterFactory[Any] | ExtensionFactory[Any] | ConnectorFactory[Any]
)


def lookup(kind: Kind, type_name: str) -> AnyFactory | None:
    """The factory of `type_name` in section `kind`, or None when the type is unknown."""
    module = REGISTRY[kind].get(type_name)
    if module is None:
        return None
    factory: AnyFactory = importlib.import_module(module).FACTORY
    if not isinstance(factory, _FACTORY_TYPES[kind]):
        raise TypeError(f"{module}.FACTORY is a {type(factory).__name__}, not a {_FACTORY_TYPES[kind].__name__}")
    return factory


# The typed lookups of a type the config loader has checked exists.
def receiver(type_name: str) -> ReceiverFactory[Any]:
    return cast(ReceiverFactory[Any], lookup("receivers", type_name))


def processor(type_name: str) -> ProcessorFactory[Any]:
    return cast(ProcessorFactory[Any], lookup("processors", type_name))


def exporter(type_name: str) -> ExporterFactory[Any]:
    return cast(ExporterFactory[Any], lookup("exporters", type_name))


def extension(type_name: str) -> ExtensionFactory[Any]:
    return cast(ExtensionFactory[Any], lookup("extensions", type_name))


def connector(type_name: str) -> ConnectorFactory[Any]:
    return cast(ConnectorFactory[Any], lookup("connectors", type_name))


def known(kind: Kind) -> list[str]:
    return sorted(REGISTRY[kind])
