"""The `honeycomb` exporter: OTLP to Honeycomb, gRPC or HTTP, US or EU.

    exporters:
      honeycomb:
        api_key: ${env:HONEYCOMB_API_KEY}   # sent as x-honeycomb-team
        dataset: my-service                 # x-honeycomb-dataset; needed with Classic keys only
        region: eu                          # api.eu1.honeycomb.io (default us: api.honeycomb.io)
        protocol: http                      # default grpc

Any key of the `otlp`/`otlphttp` exporters is accepted too (headers, compression, timeout,
retry_on_failure, sending_queue, tls, endpoint to go through a proxy such as Refinery).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from gateway.component import ExporterFactory, Settings
from gateway.exporters import destination
from gateway.exporters.destination import DestinationConfig
from gateway.exporters.helper import check_kept_metadata
from gateway.exporters.otlp_common import exporter_refs

TEAM_HEADER = "x-honeycomb-team"
DATASET_HEADER = "x-honeycomb-dataset"

HOSTS = {"us": "api.honeycomb.io", "eu": "api.eu1.honeycomb.io"}

# Honeycomb's own SDKs tell a Classic key by its shape: 32 hex characters (the original keys), or
# a 64-character ingest key whose ID has the `ic` kind (hc<x>ic_ + 58 lower-case alphanumerics).
# Environment keys (hc<x>ik_...) and anything else are not Classic.
_CLASSIC_KEY = re.compile(r"[0-9a-f]{32}")
_CLASSIC_INGEST_KEY = re.compile(r"hc[a-z]ic_[0-9a-z]{58}")


def is_classic_key(key: str) -> bool:
    return bool(_CLASSIC_KEY.fullmatch(key) or _CLASSIC_INGEST_KEY.fullmatch(key))


@dataclass(frozen=True)
class Config(DestinationConfig):
    api_key: str | None = None
    dataset: str = ""
    region: Literal["us", "eu"] = "us"

    def default_endpoint(self) -> str:
        host = HOSTS[self.region]
        return f"{host}:443" if self.protocol == "grpc" else f"https://{host}"

    def otlp(self) -> Any:
        headers = dict(self.headers)
        if self.api_key:
            headers[TEAM_HEADER] = self.api_key
        if self.dataset:
            headers[DATASET_HEADER] = self.dataset
        return destination.otlp_config(self, self.endpoint or self.default_endpoint(), headers, self.tenant_header)

    def validate(self) -> list[str]:
        errors = self.protocol_errors()
        key_in_headers = destination.header_set(self.headers, TEAM_HEADER)
        if self.api_key is None and not key_in_headers:
            errors.append(f"missing api_key (the Honeycomb ingest key, sent as {TEAM_HEADER})")
        elif self.api_key is not None and key_in_headers:
            errors.append(f"api_key and headers::{TEAM_HEADER} are both set: keep one")
        elif self.api_key is not None and not self.api_key.strip():
            errors.append("api_key is empty (is the environment variable it names set?)")
        if self.dataset and destination.header_set(self.headers, DATASET_HEADER):
            errors.append(f"dataset and headers::{DATASET_HEADER} are both set: keep one")
        if (self.api_key and is_classic_key(self.api_key) and not self.dataset
                and not destination.header_set(self.headers, DATASET_HEADER)):
            errors.append(
                "api_key is a Honeycomb Classic key: set dataset (sent as x-honeycomb-dataset); "
                "Classic keys need it, environment keys do not"
            )
        if self.endpoint and self.region != "us":
            errors.append(f"region {self.region!r} and endpoint are both set: the endpoint would win; keep one")
        endpoint = self.endpoint or self.default_endpoint()
        if self.tls.insecure and any(host in endpoint for host in HOSTS.values()):
            errors.append("tls::insecure: Honeycomb's API accepts TLS only")
        errors.extend(self.otlp().validate())
        return errors


def create(settings: Settings[Config]) -> Any:
    config: Config = settings.config
    return destination.create(settings, config.otlp())


FACTORY = ExporterFactory(type="honeycomb", config=Config, create=create, extension_refs=exporter_refs,
                           check_kept_metadata=check_kept_metadata)
