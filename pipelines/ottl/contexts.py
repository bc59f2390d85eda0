"""OTTL contexts: which paths a statement or condition may use in each, and how they read and write
a parsed OTLP request (the Collector's `pkg/ottl/contexts`).

A path is `[context.]field[.field][key]...`. A first segment naming a context (`resource`, `scope`,
`instrumentation_scope`, `span`, `spanevent`, `log`, `metric`, `datapoint`) selects that context, which
must be the statement's own or one above it (a span statement may read `resource.attributes["k"]`);
without it the path is the statement's own context's. The fields and their setters follow the
Collector's: a setter given a value of another type does nothing (as pdata's typed setters), a
map setter takes a map, `attributes["k"]` takes any value (`ctxutil.SetValue`).
Any other field is refused with its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.batch import RequestContext
from pipelines.ottl.grammar import Path
from pipelines.ottl.lexer import OttlError
from pipelines.ottl.values import (
    EvalError,
    GoTime,
    PMap,
    SpanID,
    TraceID,
    from_any,
    index,
    map_get,
    map_set,
    new_map,
    set_any,
    set_indexed,
    set_map,
    type_name,
)
from pipelines.processors import anyvalue


class Env:
    """What a statement reads and writes: the entries of the request around the item at hand."""

    __slots__ = ("cache", "event", "event_index", "item", "point", "request", "resource", "scope")

    def __init__(self, request: RequestContext) -> None:
        self.request = request
        self.resource: Any = None  # a ResourceSpans / ResourceLogs / ResourceMetrics entry
        self.scope: Any = None  # a ScopeSpans / ScopeLogs / ScopeMetrics entry
        self.item: Any = None  # a Span, LogRecord or Metric
        self.point: Any = None  # a data point of `item`
        self.event: Any = None  # a Span.Event of `item`
        self.event_index = 0
        self.cache: PMap | None = None  # the statement context's `cache` map, made on first use


Getter = Callable[[Env], Any]
Setter = Callable[[Env, Any], None]
KeyFn = Callable[[Env], "str | int"]

# The contexts a statement may be written in, and the path contexts each can read.
READABLE: dict[str, tuple[str, ...]] = {
    "resource": ("resource",),
    "scope": ("scope", "resource"),
    "span": ("span", "resource", "scope"),
    "spanevent": ("spanevent", "span", "resource", "scope"),
    "log": ("log", "resource", "scope"),
    "metric": ("metric", "resource", "scope"),
    "datapoint": ("datapoint", "metric", "resource", "scope"),
}
PATH_CONTEXTS = {"resource": "resource", "scope": "scope", "instrumentation_scope": "scope", "span": "span",
                 "spanevent": "spanevent", "log": "log", "metric": "metric", "datapoint": "datapoint"}
# Deeper contexts read the ones above them: the order used to infer a statement's context.
DEPTH = {"resource": 0, "scope": 1, "span": 2, "log": 2, "metric": 2, "spanevent": 3, "datapoint": 3}

_U32, _U64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class _Field:
    get: Getter
    set: Setter | None = None
    keys: str = "none"  # "none": takes no keys; "map": a KeyValue list; "any": an AnyValue; "state": trace_state


def _noop(env: Env, val: Any) -> None:
    return None


# ---------------------------------------------------------------- typed setters

def _expect(want: str, fits: Callable[[Any], bool], assign: Callable[[Env, Any], None]) -> Setter:
    """A typed field's setter: a value of another type (nil included) is an error, as the Collector's
    `expects int64 but got string`."""
    def setter(env: Env, val: Any) -> None:
        if not fits(val):
            raise EvalError(f"expects {want} but got {type_name(val)}")
        assign(env, val)
    return setter


def _set_str(assign: Callable[[Env, str], None]) -> Setter:
    return _expect("string", lambda v: isinstance(v, str), assign)


def _set_int(assign: Callable[[Env, int], None], mask: int = _U64) -> Setter:
    return _expect("int64", lambda v: isinstance(v, int) and not isinstance(v, bool),
                   lambda env, v: assign(env, v & mask))


def _set_bool(assign: Callable[[Env, bool], None]) -> Setter:
    return _expect("bool", lambda v: isinstance(v, bool), assign)


def _set_time(assign: Callable[[Env, int], None]) -> Setter:
    return _expect("time.Time", lambda v: isinstance(v, GoTime), lambda env, v: assign(env, v.ns & _U64))


def _signed(u: int) -> int:
    """A uint64 field read as OTTL's int64 (`int64(ts)`)."""
    return u - (1 << 64) if u >= 1 << 63 else u


def _hex_id(raw: bytes, size: int) -> str:
    # The hex of the id's bytes: an absent id reads as zeros, as the Collector's contexts encode it.
    return raw.hex() if len(raw) == size else "00" * size


def _id_field(attr: str, size: int, kind: type[TraceID] | type[SpanID]) -> tuple[_Field, _Field]:
    name = "trace" if size == 16 else "span"

    def get(e: Env) -> Any:
        raw = getattr(e.item, attr)
        return kind(raw if len(raw) == size else bytes(size))

    def set_(e: Env, val: Any) -> None:
        if not isinstance(val, kind):
            raise EvalError(f"expects {type_name(kind(b''))} but got {type_name(val)}")
        setattr(e.item, attr, b"" if not any(val) else bytes(val))

    def set_string(e: Env, val: Any) -> None:
        if not isinstance(val, str):
            raise EvalError(f"expects string but got {type_name(val)}")
        if val == "":
            setattr(e.item, attr, b"")
            return
        try:
            raw = bytes.fromhex(val)
        except ValueError:
            raw = b""
        if len(val) != 2 * size or len(raw) != size:
            raise EvalError(f"{name} ids must be {2 * size} hex characters")
        setattr(e.item, attr, raw)

    return _Field(get, set_), _Field(lambda e: _hex_id(getattr(e.item, attr), size), set_string)


def _timestamps(holder: Callable[[Env], Any], attr: str) -> tuple[_Field, _Field]:
    def set_ns(e: Env, v: int) -> None:
        setattr(holder(e), attr, v)

    return (_Field(lambda e: _signed(getattr(holder(e), attr)), _set_int(set_ns)),
            _Field(lambda e: GoTime(_signed(getattr(holder(e), attr))), _set_time(set_ns)))


def _attrs(holder: Callable[[Env], Any]) -> _Field:
    return _Field(lambda e: holder(e).attributes, lambda e, v: set_map(holder(e).attributes, v), "map")


def _counter(holder: Callable[[Env], Any], attr: str) -> _Field:
    def assign(e: Env, v: int) -> None:
        setattr(holder(e), attr, v)
    return _Field(lambda e: getattr(holder(e), attr), _set_int(assign, _U32))


def _plain_str(holder: Callable[[Env], Any], attr: str) -> _Field:
    def assign(e: Env, v: str) -> None:
        setattr(holder(e), attr, v)
    return _Field(lambda e: getattr(holder(e), attr), _set_str(assign))


def _cache() -> _Field:
    def get(e: Env) -> Any:
        if e.cache is None:
            e.cache = new_map()
        return e.cache.kvs

    def set_(e: Env, v: Any) -> None:
        set_map(get(e), v)

    return _Field(get, set_, "map")


# ---------------------------------------------------------------- span

_SPAN_KIND_STRINGS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
_SPAN_KIND_DEPRECATED = ("SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
                         "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER")


def _kind_string(e: Env) -> str:
    k = e.item.kind
    return _SPAN_KIND_STRINGS[k] if 0 <= k < len(_SPAN_KIND_STRINGS) else ""


def _set_kind_string(table: tuple[str, ...]) -> Setter:
    def setter(e: Env, val: Any) -> None:
        if isinstance(val, str) and val in table:
            e.item.kind = table.index(val)
    return setter


def _item(e: Env) -> Any:
    return e.item


def _status(e: Env) -> Any:
    return e.item.status


def _set_kind(e: Env, v: int) -> None:
    e.item.kind = v & 0x7FFFFFFF


def _set_status_code(e: Env, v: int) -> None:
    e.item.status.code = v & 0x7FFFFFFF


_trace_id, _trace_id_string = _id_field("trace_id", 16, TraceID)
_span_id, _span_id_string = _id_field("span_id", 8, SpanID)
_parent_id, _parent_id_string = _id_field("parent_span_id", 8, SpanID)
_span_start_ns, _span_start = _timestamps(_item, "start_time_unix_nano")
_span_end_ns, _span_end = _timestamps(_item, "end_time_unix_nano")


def _state_get(e: Env, key: str) -> Any:
    for member in e.item.trace_state.split(","):
        k, sep, v = member.strip().partition("=")
        if sep and k == key:
            return v
    return ""  # a missing key reads as the empty string, never nil (as at v0.161)


def _state_set(e: Env, key: str, val: Any) -> None:
    if not isinstance(val, str):
        return
    members = [m.strip() for m in e.item.trace_state.split(",") if m.strip()]
    members = [m for m in members if m.partition("=")[0] != key]
    e.item.trace_state = ",".join([f"{key}={val}", *members])


_SPAN: dict[str, _Field] = {
    "trace_id": _trace_id,
    "trace_id.string": _trace_id_string,
    "span_id": _span_id,
    "span_id.string": _span_id_string,
    "parent_span_id": _parent_id,
    "parent_span_id.string": _parent_id_string,
    "trace_state": _Field(lambda e: e.item.trace_state, _set_str(lambda e, v: setattr(e.item, "trace_state", v)),
                          "state"),
    "name": _plain_str(_item, "name"),
    "kind": _Field(lambda e: e.item.kind, _set_int(_set_kind)),
    "kind.string": _Field(_kind_string, _set_kind_string(_SPAN_KIND_STRINGS)),
    "kind.deprecated_string": _Field(
        lambda e: _SPAN_KIND_DEPRECATED[e.item.kind] if 0 <= e.item.kind < 6 else "",
        _set_kind_string(_SPAN_KIND_DEPRECATED)),
    "start_time_unix_nano": _span_start_ns,
    "end_time_unix_nano": _span_end_ns,
    "start_time": _span_start,
    "end_time": _span_end,
    "attributes": _attrs(_item),
    "dropped_attributes_count": _counter(_item, "dropped_attributes_count"),
    "dropped_events_count": _counter(_item, "dropped_events_count"),
    "dropped_links_count": _counter(_item, "dropped_links_count"),
    "status.code": _Field(lambda e: e.item.status.code, _set_int(_set_status_code)),
    "status.message": _plain_str(_status, "message"),
    "flags": _counter(_item, "flags"),
    "cache": _cache(),
}


# ---------------------------------------------------------------- span event

def _event(e: Env) -> Any:
    return e.event


_event_ns, _event_time = _timestamps(_event, "time_unix_nano")
_SPANEVENT: dict[str, _Field] = {
    "name": _plain_str(_event, "name"),
    "time_unix_nano": _event_ns,
    "time": _event_time,
    "attributes": _attrs(_event),
    "dropped_attributes_count": _counter(_event, "dropped_attributes_count"),
    "event_index": _Field(lambda e: e.event_index),
    "cache": _cache(),
}


# ---------------------------------------------------------------- log

def _set_body(e: Env, val: Any) -> None:
    if val is not None:
        set_any(e.item.body, val)


def _set_body_string(e: Env, val: Any) -> None:
    if isinstance(val, str):
        e.item.body.string_value = val


def _log_id(attr: str, size: int, kind: type[TraceID] | type[SpanID]) -> tuple[_Field, _Field]:
    return _id_field(attr, size, kind)


_log_trace_id, _log_trace_id_string = _log_id("trace_id", 16, TraceID)
_log_span_id, _log_span_id_string = _log_id("span_id", 8, SpanID)
_log_time_ns, _log_time = _timestamps(_item, "time_unix_nano")
_log_observed_ns, _log_observed = _timestamps(_item, "observed_time_unix_nano")


def _set_severity(e: Env, v: int) -> None:
    e.item.severity_number = v & 0x7FFFFFFF


_LOG: dict[str, _Field] = {
    "time_unix_nano": _log_time_ns,
    "observed_time_unix_nano": _log_observed_ns,
    "time": _log_time,
    "observed_time": _log_observed,
    "severity_number": _Field(lambda e: e.item.severity_number, _set_int(_set_severity)),
    "severity_text": _plain_str(_item, "severity_text"),
    "body": _Field(lambda e: e.item.body, _set_body, "any"),
    "body.string": _Field(lambda e: anyvalue.as_string(e.item.body), _set_body_string),
    "attributes": _attrs(_item),
    "dropped_attributes_count": _counter(_item, "dropped_attributes_count"),
    "flags": _counter(_item, "flags"),
    "trace_id": _log_trace_id,
    "trace_id.string": _log_trace_id_string,
    "span_id": _log_span_id,
    "span_id.string": _log_span_id_string,
    "event_name": _plain_str(_item, "event_name"),
    "cache": _cache(),
}


# ---------------------------------------------------------------- metric and data point

_METRIC_TYPES = {None: 0, "gauge": 1, "sum": 2, "histogram": 3, "exponential_histogram": 4, "summary": 5}


def _point_kind(env: Env) -> str | None:
    kind: str | None = env.item.WhichOneof("data")
    return kind


def _temporality(env: Env) -> Any:
    kind = _point_kind(env)
    return getattr(env.item, kind).aggregation_temporality if kind in ("sum", "histogram",
                                                                        "exponential_histogram") else None


def _set_temporality(env: Env, v: int) -> None:
    kind = _point_kind(env)
    if kind in ("sum", "histogram", "exponential_histogram"):
        getattr(env.item, kind).aggregation_temporality = v & 0x7FFFFFFF


def _set_monotonic(env: Env, v: bool) -> None:
    if _point_kind(env) == "sum":
        env.item.sum.is_monotonic = v


_METRIC: dict[str, _Field] = {
    "name": _plain_str(_item, "name"),
    "description": _plain_str(_item, "description"),
    "unit": _plain_str(_item, "unit"),
    "type": _Field(lambda e: _METRIC_TYPES[_point_kind(e)]),
    "aggregation_temporality": _Field(_temporality, _set_int(_set_temporality)),
    "is_monotonic": _Field(lambda e: e.item.sum.is_monotonic if _point_kind(e) == "sum" else False,
                           _set_bool(_set_monotonic)),
    "cache": _cache(),
}


def _point(e: Env) -> Any:
    return e.point


def _number_value(env: Env, which: str) -> Any:
    if _point_kind(env) not in ("gauge", "sum"):
        return None
    return getattr(env.point, which)


def _set_number(which: str, kind: type) -> Setter:
    def setter(env: Env, val: Any) -> None:
        if _point_kind(env) in ("gauge", "sum") and isinstance(val, kind) and not isinstance(val, bool):
            setattr(env.point, which, val)
    return setter


def _summary_stat(env: Env, which: str) -> Any:
    if _point_kind(env) not in ("histogram", "exponential_histogram", "summary"):
        return None
    return getattr(env.point, which)


def _set_stat(which: str, kind: type) -> Setter:
    def setter(env: Env, val: Any) -> None:
        if _point_kind(env) in ("histogram", "exponential_histogram", "summary") and isinstance(val, kind) \
                and not isinstance(val, bool):
            setattr(env.point, which, val & _U64 if isinstance(val, int) else val)
    return setter


_dp_start_ns, _dp_start = _timestamps(_point, "start_time_unix_nano")
_dp_time_ns, _dp_time = _timestamps(_point, "time_unix_nano")
_DATAPOINT: dict[str, _Field] = {
    "attributes": _attrs(_point),
    "time_unix_nano": _dp_time_ns,
    "start_time_unix_nano": _dp_start_ns,
    "time": _dp_time,
    "start_time": _dp_start,
    "flags": _counter(_point, "flags"),
    "value_int": _Field(lambda e: _number_value(e, "as_int"), _set_number("as_int", int)),
    "value_double": _Field(lambda e: _number_value(e, "as_double"), _set_number("as_double", float)),
    "count": _Field(lambda e: _summary_stat(e, "count"), _set_stat("count", int)),
    "sum": _Field(lambda e: _summary_stat(e, "sum"), _set_stat("sum", float)),
    "cache": _cache(),
}


# ---------------------------------------------------------------- resource and scope

def _resource(e: Env) -> Any:
    return e.resource.resource


def _scope(e: Env) -> Any:
    return e.scope.scope


def _schema_url(holder: str) -> _Field:
    def assign(e: Env, v: str) -> None:
        getattr(e, holder).schema_url = v
    return _Field(lambda e: getattr(e, holder).schema_url, _set_str(assign))


_RESOURCE: dict[str, _Field] = {
    "attributes": _attrs(_resource),
    "dropped_attributes_count": _counter(_resource, "dropped_attributes_count"),
    "schema_url": _schema_url("resource"),
    "cache": _cache(),
}
_SCOPE: dict[str, _Field] = {
    "name": _plain_str(_scope, "name"),
    "version": _plain_str(_scope, "version"),
    "attributes": _attrs(_scope),
    "dropped_attributes_count": _counter(_scope, "dropped_attributes_count"),
    "schema_url": _schema_url("scope"),
    "cache": _cache(),
}

FIELDS: dict[str, dict[str, _Field]] = {
    "resource": _RESOURCE, "scope": _SCOPE, "span": _SPAN, "spanevent": _SPANEVENT, "log": _LOG,
    "metric": _METRIC, "datapoint": _DATAPOINT,
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
_SPAN_ENUMS = {**{f"SPAN_KIND_{k}": i for i, k in enumerate(("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT",
                                                              "PRODUCER", "CONSUMER"))},
               "STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
ENUMS: dict[str, dict[str, int]] = {
    "resource": {},
    "scope": {},
    "span": _SPAN_ENUMS,
    "spanevent": _SPAN_ENUMS,
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


@dataclass(frozen=True)
class Resolved:
    get: Getter
    set: Setter


def resolve_path(path: Path, context: str, keys: tuple[KeyFn, ...] = ()) -> Resolved:
    """The getter and setter of `path` in a statement of `context`, its keys compiled to `keys`
    (one function per key of its last segment); OttlError when it is not available there."""
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
        raise OttlError(f'unsupported path "{path.text}" in the "{context}" context: the {target} context '
                        f'has no field "{name}"')
    get = fld.get
    setter = fld.set or _read_only(path.text)
    if fld.keys == "none":
        if keys:
            raise OttlError(f'path "{path.text}" cannot be indexed')
        return Resolved(get, setter)
    if fld.keys == "state":
        if not keys:
            return Resolved(get, setter)
        if len(keys) != 1:
            raise OttlError(f'path "{path.text}" takes one key')
        key = keys[0]
        return Resolved(lambda e: _state_get(e, _str_key(key(e))), lambda e, v: _state_set(e, _str_key(key(e)), v))
    if fld.keys == "map":
        if not keys:
            return Resolved(lambda e: PMap(get(e)), setter)
        static = _static(keys)
        if static is not None and len(static) == 1 and isinstance(static[0], str):
            return _one_key(get, static[0])
        if static is not None:
            return Resolved(lambda e: map_get(get(e), static), lambda e, v: map_set(get(e), static, v))
        return Resolved(lambda e: map_get(get(e), _resolve(keys, e)),
                        lambda e, v: map_set(get(e), _resolve(keys, e), v))
    if not keys:
        return Resolved(lambda e: from_any(get(e)), setter)
    return Resolved(lambda e: index(get(e), _resolve(keys, e)),
                    lambda e, v: set_indexed(get(e), _resolve(keys, e), v))


def _read_only(text: str) -> Setter:
    def setter(env: Env, val: Any) -> None:
        raise EvalError(f'path "{text}" cannot be set')
    return setter


def _str_key(k: str | int) -> str:
    if not isinstance(k, str):
        raise EvalError("unable to resolve a string index in map: invalid key type")
    return k


def _static(keys: tuple[KeyFn, ...]) -> tuple[str | int, ...] | None:
    """The keys' values when every key is a literal (see `constant_key`), else None."""
    values: list[Any] = [getattr(k, "constant", _NOT_CONSTANT) for k in keys]
    return None if any(v is _NOT_CONSTANT for v in values) else tuple(values)


_NOT_CONSTANT = object()


def constant_key(value: str | int) -> KeyFn:
    """A literal key: a function that carries its value, so paths can use it without calling it."""
    def key(env: Env) -> str | int:
        return value
    key.constant = value  # type: ignore[attr-defined]
    return key


def _one_key(get: Callable[[Env], Any], key: str) -> Resolved:
    """`attributes["k"]`: the commonest path, read and written without building key tuples."""
    def read(e: Env) -> Any:
        for kv in get(e):
            if kv.key == key:
                return from_any(kv.value)
        return None

    def write(e: Env, val: Any) -> None:
        kvs = get(e)
        for kv in kvs:
            if kv.key == key:
                set_any(kv.value, val)
                return
        kv = kvs.add()
        kv.key = key
        set_any(kv.value, val)

    return Resolved(read, write)


def _resolve(keys: tuple[KeyFn, ...], env: Env) -> tuple[str | int, ...]:
    return tuple(k(env) for k in keys)


def settable(path: Path, context: str) -> bool:
    named = path_context(path)
    segments = path.segments[1:] if named else path.segments
    fld = FIELDS[named or context].get(".".join(s.name for s in segments))
    return fld is not None and fld.set is not None


def resolve(path: Path, context: str) -> Getter:
    """The getter of a path with literal keys only (the routing connector's conditions)."""
    keys: list[KeyFn] = []
    for k in path.segments[-1].keys:
        if not isinstance(k, (str, int)):
            raise OttlError("only string or int literal keys are supported here")
        keys.append(constant_key(k))
    return resolve_path(path, context, tuple(keys)).get


def enum_value(name: str, context: str) -> int:
    value = ENUMS[context].get(name)
    if value is None:
        raise OttlError(f"enum symbol {name} is not defined in the \"{context}\" context")
    return value
