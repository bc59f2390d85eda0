"""The `jaeger` exporter: OTLP to a Jaeger collector (Jaeger v2, or v1 with OTLP enabled), gRPC on
4317 or HTTP on 4318, TLS or insecure.

    exporters:
      jaeger:
        endpoint: jaeger-collector.observability   # a port-less host gets 4317 (grpc) or 4318 (http)
        protocol: grpc
        tls: {insecure: true}

Any key of the `otlp`/`otlphttp` exporters is accepted too. Jaeger stores traces only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.component import ExporterFactory, Settings
from gateway.exporters import destination
from gateway.exporters.destination import DestinationConfig
from gateway.exporters.helper import check_kept_metadata
from gateway.exporters.otlp_common import exporter_refs

GRPC_PORT = 4317
HTTP_PORT = 4318


@dataclass(frozen=True)
class Config(DestinationConfig):
    def otlp(self) -> Any:
        endpoint = destination.with_default_port(self.endpoint, self.protocol, self.tls.insecure, GRPC_PORT, HTTP_PORT)
        return destination.otlp_config(self, endpoint, dict(self.headers), self.tenant_header)

    def validate(self) -> list[str]:
        errors = self.protocol_errors()
        if not self.endpoint:
            errors.append("missing endpoint (the Jaeger collector, e.g. jaeger-collector:4317)")
            return errors
        errors.extend(self.otlp().validate())
        return errors


def create(settings: Settings[Config]) -> Any:
    config: Config = settings.config
    return destination.create(settings, config.otlp())


FACTORY = ExporterFactory(type="jaeger", config=Config, create=create, signals=frozenset({"traces"}),
                          extension_refs=exporter_refs, check_kept_metadata=check_kept_metadata)
