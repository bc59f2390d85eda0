"""Before/after views of a processor (`/api/v1/diff`): which sampled spans it kept, changed or dropped.

Two independent taps on a processor's input and output cannot tell a dropped span from one that simply was
not sampled. A `DiffWatch` correlates them, on every instance of the processor (one per pipeline listing it):

- its input side is a tap (the token bucket of `gateway.admin.tap`, `RATE` spans a second over all
  instances) that keeps a bytes snapshot of each sampled batch (a later stage may change a message in place);
  the reader remembers each sampled span (ids, name, attributes, resource, status, times) as pending, at
  most `PENDING` at once;
- its output side, only while a sampled batch is unread or a span is pending, keeps each output batch's
  bytes (`Batch.data()`: serialized once if the processor left a message, which the exporter would do
  anyway), at most `OUTPUTS` between two turns of the reader. The reader looks for each pending span id in
  them (`span_id in data`, a C-speed search) and parses only a batch that contains one: a span found
  there is `kept`, with its attribute changes (added, removed, changed old -> new; resource attributes,
  name and status too);
- a span not seen at the output within its grace (`GRACE`, plus what the processor holds by config:
  `HOLDS`) is `dropped`, "not seen after N s", with the reasons the processor's
  `otelcol_gateway_dropped_spans_total` counted meanwhile (`filtered`, `sampled_out`); `unknown` if the
  output side skipped batches meanwhile (it may have passed unseen).

Like a watch, the server keeps it while it is asked for (`watch.IDLE`); closing unhooks every consumer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.admin import items, watch
from gateway.admin.tap import Tap, Taps
from pipelines import otlp
from pipelines.batch import Batch

RATE = 50.0
PENDING = 500
OUTPUTS = 256
GRACE = 5.0
# Processor types that hold what they take, and the config key saying for how long: added to GRACE.
HOLDS: dict[str, str] = {"batch": "timeout", "tail_sampling": "decision_wait"}

Drops = Callable[[], Mapping[str, float]]


def grace(processor_type: str, config: Any) -> float:
    return GRACE + float(getattr(config, HOLDS[processor_type], 0.0) if processor_type in HOLDS else 0.0)


@dataclass(eq=False)
class Instance:
    """One pipeline's instance of the processor: the consumers carrying its input and its output."""

    pipeline: str
    input: Any
    output: Any


class _Inputs(Tap):
    def __init__(self, owner: DiffWatch, rate: float) -> None:
        super().__init__(owner.key, "in", rate)
        self._owner = owner

    def keep(self, batch: Batch) -> Batch:
        self._owner.wake.set()
        return Batch(batch.signal, batch.data(), batch.items)


class _Outputs(Tap):
    def __init__(self, owner: DiffWatch, inputs: _Inputs, pending: dict[bytes, dict[str, Any]]) -> None:
        super().__init__(owner.key, "out", 0.0)
        self._owner = owner
        self._inputs = inputs
        self._pending = pending
        self.held: collections.deque[bytes] = collections.deque()
        self.skipped = 0

    def offer(self, batch: Batch) -> None:
        if not (self._pending or self._inputs._held):
            return
        if len(self.held) >= OUTPUTS:
            self.skipped += 1
            return
        self.held.append(batch.data())
        self._owner.wake.set()


class DiffWatch:
    def __init__(self, key: str, instances: list[Instance], taps: Taps, grace_s: float, drops: Drops) -> None:
        self.key = key
        self.grace = grace_s
        self.asked = time.monotonic()
        self.wake = asyncio.Event()
        self.closed = False
        self._taps = taps
        self._drops = drops
        self._drops_seen: tuple[float, Mapping[str, float]] = (-1e9, {})
        self.traces: collections.OrderedDict[str, dict[str, dict[str, Any]]] = collections.OrderedDict()
        self._sides: list[tuple[Instance, _Inputs, _Outputs, dict[bytes, dict[str, Any]]]] = []
        share = RATE / max(1, len(instances))
        try:
            for inst in instances:
                pending: dict[bytes, dict[str, Any]] = {}
                inputs = _Inputs(self, share)
                outputs = _Outputs(self, inputs, pending)
                self._sides.append((inst, inputs, outputs, pending))
                taps.open(inputs, [inst.input])
                taps.open(outputs, [inst.output])
        except ValueError:
            self.close()
            raise
        self._task = asyncio.get_running_loop().create_task(self._read())

    def close(self) -> None:
        self.closed = True
        self.wake.set()
        for inst, inputs, outputs, _ in self._sides:
            self._taps.close(inputs, [inst.input])
            self._taps.close(outputs, [inst.output])

    async def _read(self) -> None:
        while not self.closed:
            if time.monotonic() - self.asked > watch.IDLE:
                self.close()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 1.0)
            self.wake.clear()
            self.step(time.monotonic())

    def step(self, now: float) -> None:
        """Read what the taps hold: the sampled inputs first (so that an output of the same turn finds
        them), then the outputs, then settle the spans whose grace is over."""
        for inst, inputs, outputs, pending in self._sides:
            while inputs._held:
                batch, n = inputs._held.popleft()
                self._remember(inst, pending, outputs, batch, n, now)
            while outputs.held:
                self._look(pending, outputs.held.popleft())
            due = [sid for sid, span in pending.items() if now - span["_since"] > self.grace]
            if due:
                drops = self._counted(now, fresh=True)
                for sid in due:
                    self._settle(pending.pop(sid), outputs.skipped, drops)

    def _counted(self, now: float, fresh: bool = False) -> Mapping[str, float]:
        """The processor's dropped spans by reason; read at most once a second unless `fresh`."""
        if fresh or now - self._drops_seen[0] >= 1.0:
            self._drops_seen = (now, dict(self._drops()))
        return self._drops_seen[1]

    def _remember(self, inst: Instance, pending: dict[bytes, dict[str, Any]], outputs: _Outputs, batch: Batch,
                  n: int, now: float) -> None:
        drops = self._counted(now)
        for resource, service, span in _spans(batch.message(), n):
            if sum(len(p) for _, _, _, p in self._sides) >= PENDING:
                return
            rec = items.one("traces", service, span)
            rec.update(state="pending", pipeline=inst.pipeline, resource=resource, _since=now,
                       _skipped=outputs.skipped, _drops=drops)
            pending[span.span_id] = rec
            self._add(rec)

    def _look(self, pending: dict[bytes, dict[str, Any]], data: bytes) -> None:
        if not any(sid in data for sid in pending):
            return
        for resource, _, span in _spans(otlp.parse("traces", data), -1):
            before = pending.get(span.span_id)
            if before is None or before["trace_id"] != span.trace_id.hex():
                continue
            del pending[span.span_id]
            before["state"] = "kept"
            before["changes"] = _changes(before, resource, span)
            _public(before)

    def _settle(self, span: dict[str, Any], skipped: int, drops: Mapping[str, float]) -> None:
        counted = sorted(r for r, v in drops.items() if v > span["_drops"].get(r, 0.0))
        span["state"] = "unknown" if skipped > span["_skipped"] else "dropped"
        span["reason"] = ", ".join(counted) or None
        span["note"] = f"not seen at the output after {self.grace:g}s" + (
            " (the view skipped output batches meanwhile: it may have passed)" if span["state"] == "unknown" else "")
        _public(span)

    def _add(self, span: dict[str, Any]) -> None:
        spans = self.traces.pop(span["trace_id"], None) or {}
        self.traces[span["trace_id"]] = spans
        if len(spans) < watch.SPANS:
            spans[f"{span['span_id']}@{span['pipeline']}"] = span
        while len(self.traces) > watch.TRACES:
            self.traces.popitem(last=False)

    def summary(self) -> list[dict[str, Any]]:
        """The newest traces (`watch.newest`), each with its spans marked kept, dropped, unknown or pending."""
        return [_summarize(tid, spans) for tid, spans in watch.newest(reversed(self.traces.items()), watch.spans_of)]


def _public(span: dict[str, Any]) -> None:
    for key in ("_since", "_skipped", "_drops"):
        span.pop(key, None)


def _spans(msg: Any, limit: int) -> Iterator[tuple[dict[str, Any], str, Any]]:
    """(resource attributes, service name, span) of a traces message, the first `limit` (-1: all)."""
    n = 0
    for rs in msg.resource_spans:
        resource = items.attributes(rs.resource.attributes)
        service = str(resource.get("service.name", ""))
        for ss in rs.scope_spans:
            for span in ss.spans:
                if n == limit:
                    return
                n += 1
                yield resource, service, span


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    return {"added": {k: v for k, v in after.items() if k not in before},
            "removed": {k: v for k, v in before.items() if k not in after},
            "changed": {k: [v, after[k]] for k, v in before.items() if k in after and after[k] != v}}


def _changes(before: dict[str, Any], resource: dict[str, Any], span: Any) -> dict[str, Any]:
    after = items.one("traces", "", span)
    out: dict[str, Any] = {"attributes": _diff(before["attributes"], after["attributes"]),
                           "resource": _diff(before["resource"], resource)}
    if after["name"] != before["name"]:
        out["name"] = [before["name"], after["name"]]
    if after["status"] != before["status"]:
        out["status"] = [before["status"], after["status"]]
    return out


def _summarize(trace_id: str, spans: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    # watch.summarize finds the root by span id; the same span in two pipelines is one for that.
    shown = [{k: v for k, v in s.items() if not k.startswith("_")} for s in spans.values()]
    out = watch.summarize(trace_id, {s["span_id"]: s for s in shown})
    out["spans"] = sorted(shown, key=lambda s: s["start_unix_nano"])
    out["span_count"] = len(spans)
    for state in ("kept", "dropped", "unknown", "pending"):
        out[state] = sum(s["state"] == state for s in spans.values())
    out["changed"] = sum(any(s.get("changes", {}).get("attributes", {}).values()) for s in spans.values())
    return out


def merge(per_worker: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Several workers' `/api/v1/diff` traces as one: spans unioned by span id and pipeline (each worker
    saw both sides of its own instances), bounded as `watch.merge`'s."""
    return watch.merged(per_worker, lambda span: f"{span['span_id']}@{span['pipeline']}", _summarize)
