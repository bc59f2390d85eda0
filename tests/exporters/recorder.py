"""An exporter built in-process around a pusher that records what reaches it: for the keys of the
exporter helper (`sending_queue`, `retry_on_failure`) and of the batch processor, whose policy shapes
the batches the helper's consumers form."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.exporters.helper import Exporter, ExporterCommon
from gateway.telemetry import Telemetry
from pipelines import otlp
from pipelines.batch import Batch, RequestContext
from pipelines.processors.batch import BatchPolicy
from tests.e2e.support import spans_request


class Recorder:
    """A pusher: records each batch it is given (after `gate` opens, when one is set), raises the
    errors queued in `failures` first, and tracks how many pushes run at once."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.failures: list[Exception] = []
        self.calls: list[float] = []
        self.gate: asyncio.Event | None = None
        self.active = 0
        self.peak = 0

    async def start(self) -> None:
        pass

    async def push(self, batch: Batch) -> int:
        self.calls.append(time.monotonic())
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.failures:
                raise self.failures.pop(0)
            self.batches.append(batch)
        finally:
            self.active -= 1
        return 0

    async def shutdown(self) -> None:
        pass

    def sizes(self) -> list[int]:
        return [b.items for b in self.batches]

    def names(self) -> list[str]:
        out: list[str] = []
        for b in self.batches:
            msg = otlp.parse(b.signal, b.data())
            out.extend(s.name for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans)
        return out


def common(config: dict[str, Any]) -> ExporterCommon:
    """The helper's keys decoded from YAML data as the loader would."""
    errors = Errors()
    cfg = decode(ExporterCommon, config, "exporters::x", errors)
    assert cfg is not None and not errors, errors.lines
    return cfg


def exporter(config: dict[str, Any], pusher: Recorder, policy: BatchPolicy | None = None) -> Exporter:
    x = Exporter(Settings("x", common(config), Telemetry(), None), pusher, common(config))  # type: ignore[arg-type]
    if policy is not None:
        x.set_batching(policy)
    return x


def spans(n: int, name: str = "s", tenant: str | None = None,
          metadata: dict[str, tuple[str, ...]] | None = None, pad: int = 0) -> Batch:
    """One request of `n` spans named `{name}-{i}`."""
    return Batch("traces", spans_request(n, name=name, attr_bytes=pad).SerializeToString(), n,
                 RequestContext(tenant, metadata or {}))
