"""OTTL contexts: which paths a condition may read in each, and how they read a parsed OTLP request.

A path is `[context.]field[.field][key]...`. A first segment naming a context (`resource`, `scope`,
`instrumentation_scope`, `span`, `log`, `metric`, `datapoint`) selects that context, which must be the
condition's own or one above it (a span condition may read `resource.attributes["k"]`); without it the
path is the condition's own context's. The fields are those of the Collector's contexts
(`pkg/ottl/contexts`) that a routing decision needs; any other is refused with its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.batch import RequestContext
from pipelines.ottl.grammar import Path
from pipelines.ottl.lexer import OttlError
from pipelines.ottl.values import PMap, index, map_get
from pipelines.processors import anyvalue


class Env:
    """What a condition reads: the entries of the request around the item being decided."""

    __slots__ = ("item", "point", "request", "resource", "scope")

    def __init__(self, request: RequestContext) -> None:
        self.request = request
        self.resource: Any = None  # a ResourceSpans / ResourceLogs / ResourceMetrics entry
        self.scope: Any = None  # a ScopeSpans / ScopeLogs / ScopeMetrics entry
        self.item: Any = None  # a Span, LogRecord or Metric
        self.point: Any = None  # a data point of `item`


Getter = Callable[[Env], Any]

# The contexts a condition may be written in, and the path contexts each can read.
READABLE: dict[str, tuple[str, ...]] = {
    "resource": ("resource",),
    "span": ("span", "resource", "scope"),
    "log": ("log", "resource", "scope"),
    "metric": ("metric", "resource", "scope"),
    "datapoint": ("datapoint", "metric", "resource", "scope"),
}
PATH_CONTEXTS = {"resource": "resource", "scope": "scope", "instrumentation_scope": "scope", "span": "span",
                 "log": "log", "metric": "metric", "datapoint": "datapoint"}
# Deeper contexts read the ones above them: the order used to infer a condition's context.
DEPTH = {"resource": 0, "scope": 1, "span": 2, "log": 2, "metric": 2, "datapoint": 3}


@dataclass(frozen=True)
class _Field:
    get: Getter
    keys: str = "none"  # "none": takes no keys; "map": a KeyValue list; "any": an AnyValue


def _value(get: Getter) -> _Field:
    return _Field(get)


def _hex_id(raw: bytes) -> str:
    # pdata's TraceID/SpanID String(): an all-zero (or absent) id is the empty string.
    return raw.hex() if any(raw) else ""


def _point_kind(env: Env) -> str | None:
    kind: str | None = env.item.WhichOneof("data")
    return kind


def _number_value(env: Env, which: str) -> Any:
    if _point_kind(env) not in ("gauge", "sum"):
        return None
    return getattr(env.point, which)


def _summary_stat(env: Env, which: str) -> Any:
    if _point_kind(env) not in ("histogram", "exponential_histogram", "summary"):
        return None
    return getattr(env.point, which)


_METRIC_TYPES = {None: 0, "gauge": 1, "sum": 2, "histogram": 3, "exponential_histogram": 4, "summary": 5}


def _temporality(env: Env) -> Any:
    kind = _point_kind(env)
    return getattr(env.item, kind).aggregation_temporality if kind in ("sum", "histogram",
                                                                        "exponential_histogram") else None


FIELDS: dict[str, dict[str, _Field]] = {
    "resource": {
        "attributes": _Field(lambda e: e.resource.resource.attributes, "map"),
        "dropped_attributes_count": _value(lambda e: e.resource.resource.dropped_attributes_count),
    },
    "scope": {
        "name": _value(lambda e: e.scope.scope.name),
        "version": _value(lambda e: e.scope.scope.version),
        "attributes": _Field(lambda e: e.scope.scope.attributes, "map"),
        "dropped_attributes_count": _value(lambda e: e.scope.scope.dropped_attributes_count),
    },
    "span": {
        "name": _value(lambda e: e.item.name),
        "kind": _value(lambda e: e.item.kind),
        "attributes": _Field(lambda e: e.item.attributes, "map"),
        "status.code": _value(lambda e: e.item.status.code),
        "status.message": _value(lambda e: e.item.status.message),
        "trace_id.string": _value(lambda e: _hex_id(e.item.trace_id)),
        "span_id.string": _value(lambda e: _hex_id(e.item.span_id)),
        "parent_span_id.string": _value(lambda e: _hex_id(e.item.parent_span_id)),
        "trace_state": _value(lambda e: e.item.trace_state),
        "start_time_unix_nano": _value(lambda e: e.item.start_time_unix_nano),
        "end_time_unix_nano": _value(lambda e: e.item.end_time_unix_nano),
        "dropped_attributes_count": _value(lambda e: e.item.dropped_attributes_count),
        "dropped_events_count": _value(lambda e: e.item.dropped_events_count),
        "dropped_links_count": _value(lambda e: e.item.dropped_links_count),
    },
    "log": {
        "body": _Field(lambda e: e.item.body, "any"),
        "body.string": _value(lambda e: anyvalue.as_string(e.item.body)),
        "severity_text": _value(lambda e: e.item.severity_text),
        "severity_number": _value(lambda e: e.item.severity_number),
        "attributes": _Field(lambda e: e.item.attributes, "map"),
        "event_name": _value(lambda e: e.item.event_name),
        "flags": _value(lambda e: e.item.flags),
        "trace_id.string": _value(lambda e: _hex_id(e.item.trace_id)),
        "span_id.string": _value(lambda e: _hex_id(e.item.span_id)),
        "time_unix_nano": _value(lambda e: e.item.time_unix_nano),
        "observed_time_unix_nano": _value(lambda e: e.item.observed_time_unix_nano),
        "dropped_attributes_count": _value(lambda e: e.item.dropped_attributes_count),
    },
    "metric": {
        "name": _value(lambda e: e.item.name),
        "description": _value(lambda e: e.item.description),
        "unit": _value(lambda e: e.item.unit),
        "type": _value(lambda e: _METRIC_TYPES[_point_kind(e)]),
        "aggregation_temporality": _value(_temporality),
        "is_monotonic": _value(lambda e: e.item.sum.is_monotonic if _point_kind(e) == "sum" else None),
    },
    "datapoint": {
        "attributes": _Field(lambda e: e.point.attributes, "map"),
        "time_unix_nano": _value(lambda e: e.point.time_unix_nano),
        "start_time_unix_nano": _value(lambda e: e.point.start_time_unix_nano),
        "flags": _value(lambda e: e.point.flags),
        "value_int": _value(lambda e: _number_value(e, "as_int")),
        "value_double": _value(lambda e: _number_value(e, "as_double")),
        "count": _value(lambda e: _summary_stat(e, "count")),
        "sum": _value(lambda e: _summary_stat(e, "sum")),
    },
}

_SEVERITIES = {"UNSPECIFIED": 0, **{f"{level}{suffix}": base + i
                                    for base, level in ((1, "TRACE"), (5, "DEBUG"), (9, "INFO"), (13, "WARN"),
                                                        (17, "ERROR"), (21, "FATAL"))
                                    for i, suffix in enumerate(("", "2", "3", "4"))}}
_METRIC_ENUMS = {
    **{f"METRIC_DATA_TYPE_{k.upper()}": v for k, v in
       (("none", 0), ("gauge", 1), ("sum", 2), ("histogram", 3), ("exponential_histogram", 4), ("summary", 5))},
    "AGGREGATION_TEMPORALITY_UNSPECIFIED": 0, "AGGREGATION_TEMPORALITY_DELTA": 1,
    "AGGREGATION_TEMPORALITY_CUMULATIVE": 2,
}
ENUMS: dict[str, dict[str, int]] = {
    "resource": {},
    "span": {**{f"SPAN_KIND_{k}": i for i, k in enumerate(("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT",
                                                             "PRODUCER", "CONSUMER"))},
             "STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2},
    "log": {f"SEVERITY_NUMBER_{k}": v for k, v in _SEVERITIES.items()},
    "metric": _METRIC_ENUMS,
    "datapoint": {**_METRIC_ENUMS, "FLAG_NONE": 0, "FLAG_NO_RECORDED_VALUE": 1},
}


def path_context(path: Path) -> str | None:
    """The context a path names with its first segment, or None when it names none."""
    first = path.segments[0]
    if len(path.segments) > 1 and not first.keys and first.name in PATH_CONTEXTS:
        return PATH_CONTEXTS[first.name]
    return None


def resolve(path: Path, context: str) -> Getter:
    """The getter of `path` in a condition of `context`; OttlError when it is not readable there."""
    named = path_context(path)
    segments = path.segments[1:] if named else path.segments
    target = named or context
    if target not in READABLE[context]:
        raise OttlError(f'path "{path.text}" is not available in the "{context}" context '
                        f"(it can read {', '.join(READABLE[context])})")
    if any(s.keys for s in segments[:-1]):
        raise OttlError(f'unsupported path "{path.text}": only the last segment may be indexed')
    name = ".".join(s.name for s in segments)
    fld = FIELDS[target].get(name)
    if fld is None:
        raise OttlError(f'unsupported path "{path.text}" in the "{context}" context')
    keys = segments[-1].keys
    get = fld.get
    if fld.keys == "none":
        if keys:
            raise OttlError(f'path "{path.text}" cannot be indexed')
        return get
    if fld.keys == "map":
        if keys:
            return lambda env: map_get(get(env), keys)
        return lambda env: PMap(get(env))
    return lambda env: index(get(env), keys)


def enum_value(name: str, context: str) -> int:
    value = ENUMS[context].get(name)
    if value is None:
        raise OttlError(f"enum symbol {name} is not defined in the \"{context}\" context")
    return value

