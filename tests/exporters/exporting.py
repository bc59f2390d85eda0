"""Run an exporter in-process against a backend: build it from a config mapping as the loader would."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.telemetry import Telemetry
from pipelines.batch import Batch, RequestContext
from tests.e2e.support import spans_request


def make(module: Any, config: dict[str, Any], cid: str = "otlp") -> tuple[Any, Telemetry]:
    """Queue and retries off unless asked for: these tests look at one push and its outcome."""
    errors = Errors()
    config = {"sending_queue": {"enabled": False}, "retry_on_failure": {"enabled": False}, **config}
    cfg = decode(module.Config, config, f"exporters::{cid}", errors)
    assert not errors, errors.lines
    telemetry = Telemetry()
    return module.create(Settings(cid, cfg, telemetry, None)), telemetry


def export(module: Any, config: dict[str, Any], n: int = 3, *, pad: int = 0, tenant: str | None = None,
           cid: str = "otlp") -> tuple[BaseException | None, float, float]:
    """Send one batch of `n` spans; return the error raised (if any), and the sent / failed counters."""
    exporter, telemetry = make(module, config, cid)

    async def run() -> BaseException | None:
        await exporter.start()
        try:
            batch = Batch("traces", spans_request(n, attr_bytes=pad).SerializeToString(), n,
                          RequestContext(tenant) if tenant else RequestContext())
            await exporter.consume(batch)
        except Exception as exc:
            return exc
        finally:
            await exporter.shutdown()
        return None

    error = asyncio.run(run())
    sent = telemetry.registry.get_sample_value("otelcol_exporter_sent_spans_total", {"exporter": cid}) or 0.0
    failed = telemetry.registry.get_sample_value("otelcol_exporter_send_failed_spans_total", {"exporter": cid}) or 0.0
    return error, sent, failed
