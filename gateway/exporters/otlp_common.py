"""What the gRPC and HTTP OTLP exporters share: config keys and the partial-success log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gateway.exporters.helper import ExporterCommon
from gateway.transport.tls import TLSClientConfig
from pipelines.config_types import unsupported

log = logging.getLogger("gateway.exporter")


@dataclass(frozen=True)
class OtlpCommon(ExporterCommon):
    endpoint: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    compression: str = "gzip"
    tls: TLSClientConfig = field(default_factory=TLSClientConfig)
    # Beyond the Collector: send the authenticated tenant of each batch in this header (Tempo: X-Scope-OrgID).
    tenant_header: str = ""
    auth: Any = unsupported("client authenticators (oauth2client, headers_setter, basicauth, bearertokenauth "
                            "as a client) are not implemented yet; set the credentials in `headers`")


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
