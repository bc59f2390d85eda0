"""Watches: the recent traces seen at one point of the graph, for the admin page (`/api/v1/traces`).

A watch is a tap (`gateway.admin.tap`, the same token bucket, so it never slows the pipeline) that the
server keeps open while a page asks for it: each request says it is still wanted, and a watch nobody asked
for in `IDLE` seconds is closed, its consumers back to what they were. Its reader groups the sampled spans
by trace id, newest traces kept (`TRACES`, each up to `SPANS` spans).
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from gateway.admin import items
from gateway.admin.tap import Direction, Tap, Taps

IDLE = 10.0
TRACES = 50
SPANS = 500
RATE = 200.0


class Watch:
    def __init__(self, key: str, direction: Direction, consumers: list[Any], taps: Taps) -> None:
        self.key = key
        self.direction = direction
        self.asked = time.monotonic()
        self.traces: collections.OrderedDict[str, dict[str, dict[str, Any]]] = collections.OrderedDict()
        self._taps = taps
        self._consumers = consumers
        self.tap = Tap(key, direction, RATE)
        taps.open(self.tap, consumers)
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while not self.tap.closed:
            if time.monotonic() - self.asked > IDLE:
                self.close()
                return
            got = await self.tap.next(1.0)
            if got is None:
                continue
            batch, n = got
            if batch.signal != "traces":
                continue
            for span in items.items(batch, n):
                self.add(span)

    def add(self, span: dict[str, Any]) -> None:
        spans = self.traces.pop(span["trace_id"], None) or {}
        self.traces[span["trace_id"]] = spans  # the newest last
        if len(spans) < SPANS:
            spans[span["span_id"]] = span
        while len(self.traces) > TRACES:
            self.traces.popitem(last=False)

    def close(self) -> None:
        self._taps.close(self.tap, self._consumers)

    def summary(self) -> list[dict[str, Any]]:
        """The traces, newest first, each with its spans."""
        out = []
        for trace_id, spans in reversed(self.traces.items()):
            ids = set(spans)
            roots = [s for s in spans.values() if s["parent_span_id"] not in ids]
            root = min(roots, key=lambda s: s["start_unix_nano"])
            start = min(s["start_unix_nano"] for s in spans.values())
            end = max(s["end_unix_nano"] for s in spans.values())
            out.append({"trace_id": trace_id, "root": root["name"], "service": root["service"],
                        "start_unix_nano": start, "duration_ns": end - start, "span_count": len(spans),
                        "errors": sum(s["status"]["code"] == "ERROR" for s in spans.values()),
                        "spans": sorted(spans.values(), key=lambda s: s["start_unix_nano"])})
        return out
