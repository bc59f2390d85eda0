"""What the gRPC and HTTP OTLP exporters share: config keys, the client authenticator, the partial-success log."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.auth import ClientAuthenticator
from gateway.component import ExtensionRef, Host
from gateway.exporters.helper import ExporterCommon, storage_refs
from gateway.transport.tls import TLSClientConfig
from pipelines.batch import RequestContext

log = logging.getLogger("gateway.exporter")


@dataclass(frozen=True)
class ClientAuthConfig:
    authenticator: str


@dataclass(frozen=True)
class OtlpCommon(ExporterCommon):
    endpoint: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    compression: str = "gzip"
    tls: TLSClientConfig = field(default_factory=TLSClientConfig)
    # Beyond the Collector: send the authenticated tenant of each batch in this header (Tempo: X-Scope-OrgID).
    tenant_header: str = ""
    # A client authenticator extension (bearertokenauth, basicauth, oauth2client, headers_setter).
    auth: ClientAuthConfig | None = None


def exporter_refs(config: OtlpCommon) -> list[ExtensionRef]:
    """The extensions an OTLP exporter's config names: its queue's storage and its authenticator."""
    refs = storage_refs(config)
    if config.auth is not None:
        refs.append(ExtensionRef("auth::authenticator", config.auth.authenticator, "client_authenticator"))
    return refs


class CallHeaders:
    """The headers of one export call: the configured `headers`, the batch's tenant in `tenant_header`,
    then whatever the client authenticator sets (lower-case names, as gRPC metadata must be)."""

    def __init__(self, component: str, cfg: OtlpCommon, host: Host) -> None:
        self.static = {k.lower(): v for k, v in cfg.headers.items()}
        self.tenant_header = cfg.tenant_header.lower()
        self.auth: ClientAuthenticator | None = None
        if cfg.auth is not None:
            ext = host.extension(cfg.auth.authenticator)
            if not isinstance(ext, ClientAuthenticator):
                raise TypeError(f"{component}: {cfg.auth.authenticator!r} is not a client authenticator")
            self.auth = ext

    def context_keys(self) -> tuple[str, ...]:
        return self.auth.context_keys() if self.auth is not None else ()

    def tenant(self, context: RequestContext) -> dict[str, str]:
        if self.tenant_header and context.tenant:
            return {self.tenant_header: context.tenant}
        return {}

    async def for_call(self, context: RequestContext) -> dict[str, str]:
        headers = {**self.static, **self.tenant(context)}
        if self.auth is not None:
            await self.auth.apply(headers, context)
        return headers

    async def refresh(self, sent: Mapping[str, str]) -> bool:
        """After a 401 / UNAUTHENTICATED to a call with headers `sent`: whether it is worth sending once more."""
        return self.auth is not None and await self.auth.unauthorized(sent)


def log_partial_success(exporter: str, signal: str, response: Any) -> int:
    """Log a partial-success answer; return the number of items the backend rejected."""
    ps = response.partial_success
    rejected = int(
        getattr(ps, "rejected_spans", 0) or getattr(ps, "rejected_data_points", 0)
        or getattr(ps, "rejected_log_records", 0)
    )
    if rejected or ps.error_message:
        log.warning("exporter %s: backend rejected %d %s: %s", exporter, rejected, signal, ps.error_message)
    return rejected
