"""The `tempo` exporter: OTLP to Grafana Tempo's distributor, gRPC (4317) or HTTP (4318).

    exporters:
      tempo:
        endpoint: tempo-distributor.tempo:4317   # a port-less host gets 4317 (grpc) or 4318 (http)
        tenant: team-a                           # X-Scope-OrgID; without it, the tenant bearer-token
        tls: {insecure: true}                    #   auth attached to each batch, if any

Tempo in multi-tenant mode refuses data without an X-Scope-OrgID; single-tenant Tempo ignores it.
Any key of the `otlp`/`otlphttp` exporters is accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.component import ExporterFactory, Settings
from gateway.exporters import destination
from gateway.exporters.destination import DestinationConfig
from gateway.exporters.helper import check_kept_metadata
from gateway.exporters.otlp_common import exporter_refs

TENANT_HEADER = "X-Scope-OrgID"
GRPC_PORT = 4317
HTTP_PORT = 4318


@dataclass(frozen=True)
class Config(DestinationConfig):
    tenant: str = ""
    # Where the authenticated tenant of a batch goes when no fixed `tenant` is set.
    tenant_header: str = TENANT_HEADER

    def otlp(self) -> Any:
        headers = dict(self.headers)
        tenant_header = self.tenant_header
        if self.tenant:
            headers[TENANT_HEADER] = self.tenant
            tenant_header = ""
        endpoint = destination.with_default_port(self.endpoint, self.protocol, self.tls.insecure, GRPC_PORT, HTTP_PORT)
        return destination.otlp_config(self, endpoint, headers, tenant_header)

    def validate(self) -> list[str]:
        errors = self.protocol_errors()
        if not self.endpoint:
            errors.append("missing endpoint (Tempo's distributor, e.g. tempo-distributor:4317)")
            return errors
        if self.tenant and destination.header_set(self.headers, TENANT_HEADER):
            errors.append(f"tenant and headers::{TENANT_HEADER} are both set: keep one")
        errors.extend(self.otlp().validate())
        return errors


def create(settings: Settings[Config]) -> Any:
    config: Config = settings.config
    return destination.create(settings, config.otlp())


FACTORY = ExporterFactory(type="tempo", config=Config, create=create, signals=frozenset({"traces"}),
                          extension_refs=exporter_refs, check_kept_metadata=check_kept_metadata)
