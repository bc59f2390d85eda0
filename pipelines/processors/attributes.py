"""The `attributes` processor: the Collector's attribute actions on span attributes (and on log
record and metric data point attributes in those pipelines), for the items `include`/`exclude` select.

A batch the actions would not change passes through as it came, bytes and all: the processor looks
first (read-only, on the shared parse) and copies the request only once something is to change.

Fast path (spans, no include/exclude, only `insert`/`upsert` of a `value` or `from_context`): the
request is rewritten at the wire level (`pipelines.wire`): each span whose bytes do not hold the key
gets the serialized attribute appended, which parses exactly as the key added at the end of its
attributes; a span whose bytes do hold the key somewhere goes through the upb path on its own. No
attribute is touched from Python. The upb walk below stays the reference the fast path is tested against.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pipelines import otlp, wire
from pipelines.batch import Batch, RequestContext, Rewrite
from pipelines.processors.actions import ActionConfig, ActionList, apply_to_parse, context_value, validate_actions
from pipelines.processors.matching import MatchProperties, SpanMatcher, check_for_signal


@dataclass(frozen=True)
class Config:
    actions: tuple[ActionConfig, ...] = ()
    include: MatchProperties | None = None
    exclude: MatchProperties | None = None

    def validate(self) -> list[str]:
        return validate_actions(self.actions, "actions")


def _data_point_attrs(metric: Any) -> Iterator[Any]:
    kind = metric.WhichOneof("data")
    if kind is not None:
        for dp in getattr(metric, kind).data_points:
            yield dp.attributes


def _attribute_field(key: str, value: Any) -> bytes:
    return wire.field_bytes(0x4A, KeyValue(key=key, value=value).SerializeToString())


class AttributesProcessor:
    def __init__(self, config: Config, signal: str) -> None:
        check_for_signal(config.include, signal)
        check_for_signal(config.exclude, signal)
        self.signal = signal
        self.shape = otlp.SHAPES[signal]
        self.actions = ActionList(config.actions)
        self.include = SpanMatcher(config.include) if config.include is not None else None
        self.exclude = SpanMatcher(config.exclude) if config.exclude is not None else None
        acts = self.actions.actions
        self.wire = (
            signal == "traces" and self.include is None and self.exclude is None and bool(acts)
            and all(a.action in ("insert", "upsert") and not a.from_attribute for a in acts)
            and len({a.key for a in acts}) == len(acts)
        )
        # The serialized attribute field (Span.attributes = 9) of each constant `value`.
        self._fields = [_attribute_field(a.key, a.value) if a.value is not None else None for a in acts]

    def process(self, batch: Batch) -> Batch | None:
        ctx = batch.context
        data = batch.data()
        if not self.actions.may_touch(data):
            return batch
        self.actions.prepare(data)
        if self.wire:
            out = self._process_wire(batch, data, ctx)
            if out is not None:
                return out
        return self.process_upb(batch)

    def _process_wire(self, batch: Batch, data: bytes, ctx: RequestContext) -> Batch | None:
        """The fast path; None where the bytes need the upb path."""
        if batch.ids is None:  # checked bytes parse; others raise here what the upb path raises
            batch.message()
        suffix = []
        checks = []
        for a, fld in zip(self.actions.actions, self._fields, strict=True):
            if fld is None:
                src = context_value(ctx, a.from_context)
                if src is None:
                    continue  # no value: the action does nothing
                fld = _attribute_field(a.key, src)
            suffix.append(fld)
            if not a.absent:
                checks.append(a.key.encode())
        if not suffix:
            return batch
        try:
            req = wire.walk(data)
        except wire.WireError:
            return None
        n = len(req)
        if n == 0:
            return batch
        extra: list[bytes] = [b"".join(suffix)] * n
        bodies: dict[int, bytes] | None = None
        if checks:
            # Spans whose bytes hold a key somewhere (in an attribute or anywhere else): exact, via upb.
            bodies = {}
            hits = sorted({i for k in checks for i in req.holding(k)})
            untouched = 0
            for i in hits:
                try:
                    span = Span.FromString(req.bodies[i])
                except DecodeError:
                    return None
                extra[i] = b""
                if self.actions.apply(span.attributes, ctx):
                    bodies[i] = span.SerializeToString()
                else:
                    untouched += 1
            if untouched == n:
                return batch
        req.replaced = bodies
        out = wire.rebuild(req, extra, keep_all=True)
        req.added = extra
        return Batch(batch.signal, out, batch.items, ctx, rewrite=Rewrite(req, batch))

    def process_upb(self, batch: Batch) -> Batch | None:
        """The reference: the actions applied to the upb parse, span by span."""
        return apply_to_parse(self.actions, batch, self._walk)

    def _walk(self, msg: Any, ctx: RequestContext, apply: bool) -> bool:
        """Apply the actions (or, with apply=False, tell whether they would change anything)."""
        act = self.actions.apply if apply else self.actions.touches
        inc, exc = self.include, self.exclude
        shape = self.shape
        changed = False
        for res in getattr(msg, shape.resources):
            inc_res = inc is None or inc.match_resource(res.resource)
            if not inc_res:
                continue
            exc_res = exc is not None and exc.match_resource(res.resource)
            for scope in getattr(res, shape.scopes):
                if inc is not None and not inc.match_scope(scope.scope):
                    continue
                exc_scope = exc_res and exc is not None and exc.match_scope(scope.scope)
                if exc_scope and exc is not None and exc.item_independent():
                    continue
                for item in getattr(scope, shape.items):
                    if self.signal == "traces":
                        if inc is not None and not inc.match_item(item.attributes, item.name, item.kind):
                            continue
                        if exc_scope and exc is not None and exc.match_item(item.attributes, item.name, item.kind):
                            continue
                        hit = act(item.attributes, ctx)
                    elif self.signal == "logs":
                        if inc is not None and not inc.match_item(item.attributes):
                            continue
                        if exc_scope and exc is not None and exc.match_item(item.attributes):
                            continue
                        hit = act(item.attributes, ctx)
                    else:
                        hit = False
                        for attrs in _data_point_attrs(item):
                            hit = act(attrs, ctx) or hit
                            if hit and not apply:
                                break
                    if hit:
                        if not apply:
                            return True
                        changed = True
        return changed
