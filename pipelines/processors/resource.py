"""The `resource` processor: the Collector's attribute actions on resource attributes, for every
signal. It touches resources only, never the spans (or records, or points) under them; a batch it
would not change passes through with its bytes.

Fast path: the request is viewed at the resource level (`pipelines.wire.resources`): only each
resource's own bytes are parsed and, where the actions change them, re-serialized; the scopes and
items under it are copied as bytes by upb, never parsed. `process_upb` stays the reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from pipelines import otlp, wire
from pipelines.batch import Batch, RequestContext
from pipelines.processors.actions import ActionConfig, ActionList, apply_to_parse, validate_actions


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
        if batch.ids is None:  # checked bytes parse; others raise here what the upb path raises
            batch.message()
        try:
            view = wire.resources(data)
            parsed = [Resource.FromString(b"".join(entry.resource)) for entry in view.resources]
        except (wire.WireError, DecodeError):
            return self.process_upb(batch)
        # As the reference: nothing changes unless some resource would change; then apply to all.
        if not any(self.actions.touches(r.attributes, ctx) for r in parsed):
            return batch
        for entry, r in zip(view.resources, parsed, strict=True):
            if self.actions.apply(r.attributes, ctx):
                del entry.resource[:]
                entry.resource.append(r.SerializeToString())
        return Batch(batch.signal, view.SerializeToString(), batch.items, ctx)

    def process_upb(self, batch: Batch) -> Batch | None:
        """The reference: the actions applied to the upb parse."""
        return apply_to_parse(self.actions, batch, self._walk)

    def _walk(self, msg: Any, ctx: RequestContext, apply: bool) -> bool:
        act = self.actions.apply if apply else self.actions.touches
        changed = False
        for res in getattr(msg, self.resources):
            if act(res.resource.attributes, ctx):
                if not apply:
                    return True
                changed = True
        return changed
