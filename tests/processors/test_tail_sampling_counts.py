"""tail_sampling's processor counts: kept spans refused downstream and offered again count once outgoing."""

from __future__ import annotations

import asyncio

from tests.processors.build import batch_of
from tests.processors.test_tail_sampling_stage import _Refusing, _stage, trace_request


def _items(telemetry, direction: str) -> float:
    return telemetry.registry.get_sample_value(f"otelcol_processor_{direction}_items_total",
                                               {"processor": "tail_sampling", "otel_signal": "traces"}) or 0.0


def test_kept_spans_offered_again_are_counted_outgoing_once() -> None:
    downstream = _Refusing(refusals=3)
    stage, telemetry = _stage(downstream)

    async def run() -> None:
        await stage.start()
        await stage.consume(batch_of(trace_request(5)))
        await stage.shutdown()

    asyncio.run(run())
    taken = sum(b.items for b in downstream.got)
    assert taken == 5
    assert _items(telemetry, "incoming") == 5
    assert _items(telemetry, "outgoing") == taken

