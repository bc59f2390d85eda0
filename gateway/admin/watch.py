"""Watches: the recent traces seen at one point of the graph, for the admin page (`/api/v1/traces`).

A watch is a tap (`gateway.admin.tap`, the same token bucket, so it never slows the pipeline) that the
server keeps open while a page asks for it: each request says it is still wanted, and a watch nobody asked
for in `IDLE` seconds is closed, its consumers back to what they were. Its reader groups the sampled spans
by trace id, newest traces kept (`TRACES`, each up to `SPANS` spans). An answer holds at most `ANSWER_SPANS`
spans in all (the newest traces that fit): the page asks every second, and with workers the supervisor
parses, merges and writes every worker's answer again.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterable, Sized
from typing import Any, TypeVar

from gateway.admin import items
from gateway.admin.tap import Direction, Tap, Taps

IDLE = 10.0
TRACES = 50
SPANS = 500
ANSWER_SPANS = 2000

_T = TypeVar("_T")
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
        """The newest traces, each with its spans, as many as `ANSWER_SPANS` allows."""
        return [summarize(trace_id, spans) for trace_id, spans in newest(reversed(self.traces.items()), spans_of)]


def newest(traces: Iterable[_T], size: Callable[[_T], int]) -> list[_T]:
    """The first `traces` (newest first), up to `TRACES` of them and `ANSWER_SPANS` spans in all (the first
    whatever its `size`: it holds `SPANS` at most)."""
    out: list[_T] = []
    total = 0
    for trace in traces:
        total += size(trace)
        if len(out) == TRACES or (out and total > ANSWER_SPANS):
            break
        out.append(trace)
    return out


def spans_of(trace: tuple[str, Sized]) -> int:
    """How many spans a (trace id, spans) holds."""
    return len(trace[1])


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
    trace's spans over several connections, reaching several workers), up to `SPANS` a trace, the
    newest-ending first, as many as `newest` keeps."""
    return merged(per_worker, lambda span: span["span_id"], summarize)


Key = Callable[[dict[str, Any]], str]
Summarize = Callable[[str, dict[str, dict[str, Any]]], dict[str, Any]]


def merged(per_worker: list[list[dict[str, Any]]], key: Key, summarize: Summarize) -> list[dict[str, Any]]:
    """Workers' traces as one, each trace's spans unioned by `key` (up to `SPANS`) and `summarize`d."""
    spans: dict[str, dict[str, dict[str, Any]]] = {}
    for traces in per_worker:
        for trace in traces:
            mine = spans.setdefault(trace["trace_id"], {})
            for span in trace["spans"]:
                if len(mine) < SPANS:
                    mine.setdefault(key(span), span)
    out = [summarize(trace_id, by_id) for trace_id, by_id in spans.items()]
    out.sort(key=lambda t: t["start_unix_nano"] + t["duration_ns"], reverse=True)
    return newest(out, lambda t: len(t["spans"]))

