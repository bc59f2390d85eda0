"""The `debug` exporter (old name `logging`): prints what passes through to stdout, in the
Collector's three verbosities. `detailed` follows the Collector's text layout."""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from gateway.component import Settings
from gateway.components import Factory
from gateway.telemetry import UNITS
from pipelines import otlp
from pipelines.batch import Batch

_KINDS = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
_STATUS = ["Unset", "Ok", "Error"]


@dataclass(frozen=True)
class Config:
    verbosity: Literal["basic", "normal", "detailed"] = "basic"
    # The logging exporter's old key: `loglevel: debug` meant detailed output.
    loglevel: Literal["debug", "info", "warn", "error", ""] = ""
    sampling_initial: int = 2
    sampling_thereafter: int = 1
    use_internal_logger: bool = True

    def level(self) -> str:
        return "detailed" if self.loglevel == "debug" else self.verbosity


def any_value(v: Any) -> str:
    kind = v.WhichOneof("value")
    if kind is None:
        return "Empty()"
    if kind == "string_value":
        return f"Str({v.string_value})"
    if kind == "bool_value":
        return f"Bool({str(v.bool_value).lower()})"
    if kind == "int_value":
        return f"Int({v.int_value})"
    if kind == "double_value":
        return f"Double({v.double_value})"
    if kind == "bytes_value":
        return f"Bytes({v.bytes_value.hex()})"
    if kind == "array_value":
        return "Slice([" + ",".join(any_value(x) for x in v.array_value.values) + "])"
    return "Map({" + ",".join(f"{kv.key}:{any_value(kv.value)}" for kv in v.kvlist_value.values) + "})"


def _attrs(out: list[str], title: str, attrs: Any, indent: str = "") -> None:
    if not attrs:
        return
    out.append(f"{indent}{title}:")
    out.extend(f"{indent}     -> {kv.key}: {any_value(kv.value)}" for kv in attrs)


def _time(ns: int) -> str:
    t = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f ") + "+0000 UTC"


def _detailed_span(out: list[str], i: int, span: Any) -> None:
    out.append(f"Span #{i}")
    out.append(f"    Trace ID       : {span.trace_id.hex()}")
    out.append(f"    Parent ID      : {span.parent_span_id.hex()}")
    out.append(f"    ID             : {span.span_id.hex()}")
    out.append(f"    Name           : {span.name}")
    out.append(f"    Kind           : {_KINDS[span.kind] if span.kind < len(_KINDS) else span.kind}")
    out.append(f"    Start time     : {_time(span.start_time_unix_nano)}")
    out.append(f"    End time       : {_time(span.end_time_unix_nano)}")
    out.append(f"    Status code    : {_STATUS[span.status.code] if span.status.code < 3 else span.status.code}")
    out.append(f"    Status message : {span.status.message}")
    _attrs(out, "Attributes", span.attributes)
    for j, ev in enumerate(span.events):
        out.append(f"SpanEvent #{j}")
        out.append(f"     -> Name: {ev.name}")
        out.append(f"     -> Timestamp: {_time(ev.time_unix_nano)}")
        _attrs(out, "     -> Attributes", ev.attributes)


def render(batch: Batch, level: str) -> str:
    shape = otlp.SHAPES[batch.signal]
    msg = batch.message()
    resources = getattr(msg, shape.resources)
    summary = f"{batch.signal}\t{{\"resource {shape.resources.split('_')[1]}\": {len(resources)}, " \
              f"\"{UNITS[batch.signal].replace('_', ' ')}\": {batch.items}}}"
    if level == "basic":
        return summary + "\n"
    out = [summary]
    for ri, res in enumerate(resources):
        if level == "normal":
            attrs = " ".join(f"{kv.key}={any_value(kv.value)}" for kv in res.resource.attributes)
            out.append(f"ResourceSpans #{ri} {attrs}".rstrip())
        else:
            out.append(f"Resource{shape.resources.split('_')[1].capitalize()} #{ri}")
            out.append(f"Resource SchemaURL: {res.schema_url}")
            _attrs(out, "Resource attributes", res.resource.attributes)
        for si, scope in enumerate(getattr(res, shape.scopes)):
            if level == "detailed":
                out.append(f"Scope{shape.items.capitalize()} #{si}")
                out.append(f"Scope{shape.items.capitalize()} SchemaURL: {scope.schema_url}")
                out.append(f"InstrumentationScope {scope.scope.name} {scope.scope.version}".rstrip())
            for ii, item in enumerate(getattr(scope, shape.items)):
                if batch.signal == "traces":
                    if level == "detailed":
                        _detailed_span(out, ii, item)
                    else:
                        attrs = " ".join(f"{kv.key}={any_value(kv.value)}" for kv in item.attributes)
                        out.append(f"{item.name} {item.trace_id.hex()} {item.span_id.hex()} {attrs}".rstrip())
                else:
                    out.append(f"{shape.item_noun.capitalize()} #{ii}: {str(item).strip()}" if level == "detailed"
                               else f"{getattr(item, 'name', '') or shape.item_noun} #{ii}")
    return "\n".join(out) + "\n"


class DebugPusher:
    def __init__(self, settings: Settings, stream: TextIO | None = None) -> None:
        self.config: Config = settings.config
        self._stream = stream

    async def start(self) -> None:
        pass

    async def push(self, batch: Batch) -> None:
        stream = self._stream or sys.stdout
        stream.write(render(batch, self.config.level()))
        stream.flush()

    async def shutdown(self) -> None:
        pass


def create(settings: Settings) -> Any:
    from gateway.exporters.helper import Exporter

    return Exporter(settings, DebugPusher(settings))


FACTORY = Factory(type="debug", config=Config, create=create)
