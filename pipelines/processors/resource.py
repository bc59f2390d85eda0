"""The `resource` processor: the Collector's attribute actions on resource attributes, for every
signal. It touches resources only, never the spans (or records, or points) under them; a batch it
would not change passes through with its bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines import otlp
from pipelines.batch import Batch, RequestContext
from pipelines.processors.actions import ActionConfig, ActionList, validate_actions


@dataclass(frozen=True)
class Config:
    attributes: tuple[ActionConfig, ...] = ()

    def validate(self) -> list[str]:
        return validate_actions(self.attributes, "attributes")


class ResourceProcessor:
    def __init__(self, config: Config, signal: str) -> None:
        self.resources = otlp.SHAPES[signal].resources
        self.actions = ActionList(config.attributes)

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
        act = self.actions.apply if apply else self.actions.touches
        changed = False
        for res in getattr(msg, self.resources):
            if act(res.resource.attributes, ctx):
                if not apply:
                    return True
                changed = True
        return changed
