"""What `service::telemetry` asks beyond /metrics and stderr, set up for one process: its tracer (handed
to the components through `Telemetry.tracer`), its periodic metric readers, and (`logs.py`) its OTLP log
processors. Built with the service (no I/O), started with it, flushed and stopped last at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from gateway.config.telemetry import TelemetryConfig
from gateway.own_telemetry.exporters import resource
from gateway.own_telemetry.logs import OwnLogs
from gateway.own_telemetry.metrics import MetricsPusher
from gateway.own_telemetry.traces import OwnTraces


class OwnTelemetry:
    def __init__(self, config: TelemetryConfig, registry: CollectorRegistry, env: Mapping[str, str]) -> None:
        self.resource = resource(config.resource, env)
        self.traces = OwnTraces(config.traces, self.resource)
        self.logs = OwnLogs(config.logs, self.resource)
        self.metrics = [] if config.metrics.level == "none" else [
            MetricsPusher(r.periodic, registry, self.resource) for r in config.metrics.readers if r.periodic]

    def start(self) -> None:
        self.traces.start()
        self.logs.start()
        for reader in self.metrics:
            reader.start()

    async def shutdown(self) -> None:
        """Flush the spans and push the metrics one last time (the SDK's calls block: on a thread)."""
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self.traces.shutdown()
        self.logs.shutdown()
        for reader in self.metrics:
            reader.shutdown()
