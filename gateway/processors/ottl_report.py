"""How the `transform` and `filter` processors report an OTTL error they skip (error_mode `ignore`):
counted in `otelcol_gateway_processor_ottl_errors_total`, logged at most every 10 s per processor."""

from __future__ import annotations

import logging
import time
from typing import Any

from pipelines.ottl_processors.groups import Report

log = logging.getLogger("gateway.processor.ottl")
_LOG_EVERY = 10.0


def reporter(component: str, signal: str, telemetry: Any) -> Report:
    errors = telemetry.ottl_errors(component, signal)
    logged_at = -_LOG_EVERY
    skipped = 0

    def report(message: str) -> None:
        nonlocal logged_at, skipped
        errors.inc()
        now = time.monotonic()
        if now - logged_at < _LOG_EVERY:
            skipped += 1
            return
        logged_at = now
        more = f" ({skipped} more since the last report)" if skipped else ""
        skipped = 0
        log.warning("%s: %s%s", component, message, more)

    return report
