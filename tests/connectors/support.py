"""Gateway configs whose pipelines are joined by connectors, for the delivery tests through them."""

from __future__ import annotations

from tests.harness import Ports


def connected_config(ports: Ports, exporters: list[str], connectors: str, pipelines: str,
                     processors: str = "batch: {timeout: 50ms}", extensions: str = "",
                     service_extensions: str = "", otlp_extra: str = "") -> str:
    """The OTLP receiver, health and metrics on `ports`, the given exporters, connectors and pipelines
    (a `pipelines:` body, indented by 4)."""
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports.grpc}"{otlp_extra}}}
      http: {{endpoint: "127.0.0.1:{ports.http}"{otlp_extra}}}
processors:
  {processors}
connectors:
{connectors}
exporters:
{"".join(exporters)}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
{extensions}
service:
  extensions: [health_check{service_extensions}]
  pipelines:
{pipelines}
  telemetry:
    metrics: {{address: "127.0.0.1:{ports.metrics}"}}
"""
