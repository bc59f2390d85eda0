"""The `attributes` processor: the Collector's attribute actions on span attributes (and on log
record and metric data point attributes in those pipelines), for the items `include`/`exclude` select.

A batch the actions would not change passes through as it came, bytes and all: the processor looks
first (read-only, on the shared parse) and copies the request only once something is to change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipelines import otlp
from pipelines.batch import Batch, RequestContext
from pipelines.processors.actions import ActionConfig, ActionList, validate_actions
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


class AttributesProcessor:
    def __init__(self, config: Config, signal: str) -> None:
        check_for_signal(config.include, signal)
        check_for_signal(config.exclude, signal)
        self.signal = signal
        self.shape = otlp.SHAPES[signal]
        self.actions = ActionList(config.actions)
        self.include = SpanMatcher(config.include) if config.include is not None else None
        self.exclude = SpanMatcher(config.exclude) if config.exclude is not None else None

    def process(self, batch: Batch) -> Batch | None:
        ctx = batch.context
        data = batch.data()
        if not self.actions.may_touch(data):
            return batch
        self.actions.prepare(data)
        if not self._walk(batch.message(), ctx, apply=False):
            return batch
        out = batch.with_context(ctx)
        self._walk(out.mutable_message(), ctx, apply=True)
        return out

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
