"""The `debug` exporter (old name `logging`): prints what passes through, in the Collector's three
verbosities (`detailed` follows the Collector's text layout).

As in the Collector: with `use_internal_logger: true` (the default) the output goes through the
gateway's own log (stderr, at info, so `service::telemetry::logs::level` above info silences it);
with `false` it is written to stdout. Either way it is sampled as zap's sampler does: in each second,
the first `sampling_initial` outputs of a signal are written, then every `sampling_thereafter`-th.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from gateway.component import ExporterFactory, Settings
from gateway.exporters.helper import Exporter
from gateway.telemetry import UNITS
from pipelines import otlp
from pipelines.batch import Batch
from pipelines.processors import anyvalue

log = logging.getLogger("gateway.exporter.debug")

_KINDS = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
_STATUS = ["Unset", "Ok", "Error"]
_NOUNS = {"traces": "Traces", "metrics": "Metrics", "logs": "Logs"}


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

    def validate(self) -> list[str]:
        errors = []
        if self.sampling_initial < 0:
            errors.append("sampling_initial must not be negative")
        if self.sampling_thereafter < 0:
            errors.append("sampling_thereafter must not be negative")
        return errors


class Sampler:
    """zapcore.NewSampler's rule, per key and one-second tick: the first `initial` pass, then every
    `thereafter`-th (0: none after the first `initial`)."""

    def __init__(self, initial: int, thereafter: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.initial = initial
        self.thereafter = thereafter
        self._clock = clock
        self._counts: dict[str, tuple[int, int]] = {}

    def allow(self, key: str) -> bool:
        tick = int(self._clock())
        last, n = self._counts.get(key, (tick, 0))
        n = 1 if last != tick else n + 1
        self._counts[key] = (tick, n)
        if n <= self.initial:
            return True
        return self.thereafter > 0 and (n - self.initial) % self.thereafter == 0


def as_string(v: Any) -> str:
    """pcommon.Value.AsString()."""
    kind = v.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return str(v.string_value)
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return anyvalue.format_double(v.double_value, es6=False)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return json.dumps(anyvalue.to_raw(v), separators=(",", ":"), sort_keys=kind == "kvlist_value")


def any_value(v: Any) -> str:
    """The detailed form, `Str(text)`, as the Collector's otlptext prints a value."""
    return f"{anyvalue.type_name(v)}({as_string(v)})"


def go_time(ns: int) -> str:
    """Go's time.Time.String() in UTC: nanoseconds with trailing zeros trimmed."""
    secs, frac = divmod(ns, 1_000_000_000)
    t = dt.datetime.fromtimestamp(secs, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{t}{'.' + digits if digits else ''} +0000 UTC"


def _attrs(out: list[str], header: str, attrs: Any) -> None:
    if not attrs:
        return
    out.append(f"{header}:")
    prefix = "     ->"
    if "->" in header:
        prefix = header.split("->")[0] + prefix
    out.extend(f"{prefix} {kv.key}: {any_value(kv.value)}" for kv in attrs)


def _field(out: list[str], name: str, value: object) -> None:
    out.append(f"    {name:<15}: {value}")


def _detailed_span(out: list[str], i: int, span: Any) -> None:
    out.append(f"Span #{i}")
    _field(out, "Trace ID", span.trace_id.hex())
    _field(out, "Parent ID", span.parent_span_id.hex())
    _field(out, "ID", span.span_id.hex())
    _field(out, "Name", span.name)
    _field(out, "Kind", _KINDS[span.kind] if span.kind < len(_KINDS) else span.kind)
    if span.trace_state:
        _field(out, "TraceState", span.trace_state)
    _field(out, "Start time", go_time(span.start_time_unix_nano))
    _field(out, "End time", go_time(span.end_time_unix_nano))
    _field(out, "Status code", _STATUS[span.status.code] if span.status.code < len(_STATUS) else span.status.code)
    _field(out, "Status message", span.status.message)
    _attrs(out, "Attributes", span.attributes)
    if span.events:
        out.append("Events:")
    for j, ev in enumerate(span.events):
        out.append(f"SpanEvent #{j}")
        out.append(f"     -> Name: {ev.name}")
        out.append(f"     -> Timestamp: {go_time(ev.time_unix_nano)}")
        out.append(f"     -> DroppedAttributesCount: {ev.dropped_attributes_count}")
        _attrs(out, "     -> Attributes:", ev.attributes)
    if span.links:
        out.append("Links:")
    for j, link in enumerate(span.links):
        out.append(f"SpanLink #{j}")
        out.append(f"     -> Trace ID: {link.trace_id.hex()}")
        out.append(f"     -> ID: {link.span_id.hex()}")
        out.append(f"     -> TraceState: {link.trace_state}")
        out.append(f"     -> DroppedAttributesCount: {link.dropped_attributes_count}")
        _attrs(out, "     -> Attributes:", link.attributes)


def _plain_attrs(attrs: Any) -> str:
    return "".join(f" {kv.key}={as_string(kv.value)}" for kv in attrs)


def _normal(out: list[str], batch: Batch) -> None:
    """The Collector's normal verbosity: a line per resource and scope, then one per item."""
    shape = otlp.SHAPES[batch.signal]
    noun = _NOUNS[batch.signal]
    for ri, res in enumerate(getattr(batch.message(), shape.resources)):
        schema = f" [{res.schema_url}]" if res.schema_url else ""
        out.append(f"Resource{noun} #{ri}{schema}{_plain_attrs(res.resource.attributes)}")
        for si, scope in enumerate(getattr(res, shape.scopes)):
            details = scope.scope.name + (f"@{scope.scope.version}" if scope.scope.version else "")
            if scope.schema_url:
                details += (" " if details else "") + f"[{scope.schema_url}]"
            out.append(f"Scope{noun} #{si}{' ' + details if details else ''}{_plain_attrs(scope.scope.attributes)}")
            for ii, item in enumerate(getattr(scope, shape.items)):
                if batch.signal == "traces":
                    out.append(f"{item.name} {item.trace_id.hex()} {item.span_id.hex()}{_plain_attrs(item.attributes)}")
                else:
                    out.append(f"{getattr(item, 'name', '') or shape.item_noun} #{ii}")


def _detailed(out: list[str], batch: Batch) -> None:
    shape = otlp.SHAPES[batch.signal]
    title = shape.resources.split("_")[1].capitalize()  # Spans, Metrics, Logs
    for ri, res in enumerate(getattr(batch.message(), shape.resources)):
        out.append(f"Resource{title} #{ri}")
        out.append(f"Resource SchemaURL: {res.schema_url}")
        _attrs(out, "Resource attributes", res.resource.attributes)
        for si, scope in enumerate(getattr(res, shape.scopes)):
            out.append(f"Scope{title} #{si}")
            out.append(f"Scope{title} SchemaURL: {scope.schema_url}")
            out.append(f"InstrumentationScope {scope.scope.name} {scope.scope.version}")
            _attrs(out, "InstrumentationScope attributes", scope.scope.attributes)
            for ii, item in enumerate(getattr(scope, shape.items)):
                if batch.signal == "traces":
                    _detailed_span(out, ii, item)
                else:
                    out.append(f"{shape.item_noun.capitalize()} #{ii}: {str(item).strip()}")


def render(batch: Batch, level: str, name: str = "debug") -> str:
    """A summary line as the Collector logs it (`TracesExporter {...}`), then the data at `level`."""
    shape = otlp.SHAPES[batch.signal]
    resources = len(getattr(batch.message(), shape.resources))
    summary = {"kind": "exporter", "data_type": batch.signal, "name": name,
               f"resource {shape.resources.split('_')[1]}": resources,
               UNITS[batch.signal].replace("_", " "): batch.items}
    out = [f"info\t{_NOUNS[batch.signal]}Exporter\t{json.dumps(summary)}"]
    if level == "normal":
        _normal(out, batch)
    elif level == "detailed":
        _detailed(out, batch)
    return "\n".join(out) + "\n"


class DebugPusher:
    """`stream`: where output goes instead of stdout when `use_internal_logger` is false (tests)."""

    def __init__(self, settings: Settings[Config], stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config: Config = settings.config
        self.id = settings.id
        self._stream = stream
        self._sampler = Sampler(self.config.sampling_initial, self.config.sampling_thereafter, clock)

    async def start(self) -> None:
        pass

    async def push(self, batch: Batch) -> None:
        if not self._sampler.allow(batch.signal):
            return
        text = render(batch, self.config.level(), self.id)
        if self.config.use_internal_logger:
            # The logger writes its own level; the text's first line carries zap's, as on stdout.
            log.info("%s", text.removeprefix("info\t").rstrip("\n"))
            return
        stream = self._stream or sys.stdout
        stream.write(text)
        stream.flush()

    async def shutdown(self) -> None:
        pass


def create(settings: Settings[Config]) -> Exporter:
    return Exporter(settings, DebugPusher(settings))


FACTORY = ExporterFactory(type="debug", config=Config, create=create)
