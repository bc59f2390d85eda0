"""The contract of a pure processor: a batch in, a batch (or nothing) out. No I/O, no clocks."""

from __future__ import annotations

from typing import Protocol

from pipelines.batch import Batch


class Processor(Protocol):
    def process(self, batch: Batch) -> Batch | None:
        """Return the batch to pass on (the same object or a new one), or None when nothing is left."""
        ...
