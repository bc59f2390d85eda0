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
        return [summarize(trace_id, spans) for trace_id, spans in reversed(self.traces.items())]


def summarize(trace_id: str, spans: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One trace of `/api/v1/traces` from its spans by span id: its root, start, duration, counts, and the
    spans by start time."""
    ids = set(spans)
    roots = [s for s in spans.values() if s["parent_span_id"] not in ids]
    root = min(roots, key=lambda s: s["start_unix_nano"])
    start = min(s["start_unix_nano"] for s in spans.values())
    end = max(s["end_unix_nano"] for s in spans.values())
    return {"trace_id": trace_id, "root": root["name"], "service": root["service"],
            "start_unix_nano": start, "duration_ns": end - start, "span_count": len(spans),
            "errors": sum(s["status"]["code"] == "ERROR" for s in spans.values()),
            "spans": sorted(spans.values(), key=lambda s: s["start_unix_nano"])}


def merge(per_worker: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Several workers' `/api/v1/traces` as one: a trace's spans unioned by span id (the SDK may send a
    trace's spans over several connections, reaching several workers), the newest-ending `TRACES` first."""
    spans: dict[str, dict[str, dict[str, Any]]] = {}
    for traces in per_worker:
        for trace in traces:
            mine = spans.setdefault(trace["trace_id"], {})
            for span in trace["spans"]:
                mine.setdefault(span["span_id"], span)
    out = [summarize(trace_id, by_id) for trace_id, by_id in spans.items()]
    out.sort(key=lambda t: t["start_unix_nano"] + t["duration_ns"], reverse=True)
    return out[:TRACES]
