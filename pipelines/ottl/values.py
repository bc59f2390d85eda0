"""OTTL values at run time, and the OTTL comparison rules (`pkg/ottl/compare.go`).

A value is what an OTTL getter returns: None (nil), bool, int (int64), float, str, bytes, or a map or
slice still held as its protobuf container (`PMap`, `PSlice`). An attribute read converts as
`ottlcommon.GetValue` does: a present key with an empty value is nil, as a missing one.

Comparison rules: nil equals only nil; values of different types are never equal (so `!=` is true and
the orderings false); ints and floats compare as numbers (the int made a float, as Go does); strings
and bytes compare lexically; `false < true`; maps and slices compare only for (deep) equality.
"""

from __future__ import annotations

import base64
import json
import math
import operator
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValueList

from pipelines.processors import anyvalue


class EvalError(Exception):
    """An expression that fails on this data (the Collector's OTTL returns an error there)."""


class PMap:
    """A map value: the repeated `KeyValue` field it was read from (read-only)."""

    __slots__ = ("kvs",)

    def __init__(self, kvs: Any) -> None:
        self.kvs = kvs

    def raw(self) -> dict[str, Any]:
        return {kv.key: anyvalue.to_raw(kv.value) for kv in self.kvs}


class PSlice:
    """A slice value: the repeated `AnyValue` field it was read from (read-only)."""

    __slots__ = ("values",)

    def __init__(self, values: Any) -> None:
        self.values = values

    def raw(self) -> list[Any]:
        return [anyvalue.to_raw(v) for v in self.values]


def from_any(v: AnyValue | None) -> Any:
    if v is None:
        return None
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return PMap(v.kvlist_value.values)
    if kind == "array_value":
        return PSlice(v.array_value.values)
    return getattr(v, kind)


def index(v: AnyValue, keys: tuple[str | int, ...]) -> Any:
    """`value[k1][k2]...` as OTTL's `getIndexableValue`: a missing map key is nil; anything else that
    cannot be indexed is an error."""
    for key in keys:
        kind = v.WhichOneof("value")
        if kind == "kvlist_value":
            if not isinstance(key, str):
                raise EvalError("unable to resolve a string index in map: invalid key type")
            found = anyvalue.get(v.kvlist_value.values, key)
            if found is None:
                return None
            v = found
        elif kind == "array_value":
            if not isinstance(key, int):
                raise EvalError("unable to resolve an integer index in slice: invalid key type")
            items = v.array_value.values
            if not 0 <= key < len(items):
                raise EvalError(f"index {key} out of bounds")
            v = items[key]
        else:
            raise EvalError(f"type {anyvalue.type_name(v)} does not support string indexing")
    return from_any(v)


def map_get(kvs: Any, keys: tuple[str | int, ...]) -> Any:
    """`attributes[k1][k2]...` on a map field."""
    first = keys[0]
    if not isinstance(first, str):
        raise EvalError("cannot get map value: unable to resolve a string index in map: invalid key type")
    found = anyvalue.get(kvs, first)
    if found is None:
        return None
    return index(found, keys[1:])


# ---------------------------------------------------------------- comparison

_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _kind(v: Any) -> str:
    # bool first: it is an int subclass in Python, but a type of its own in OTTL.
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "str"
    if isinstance(v, TraceID):
        return "traceid"
    if isinstance(v, SpanID):
        return "spanid"
    if isinstance(v, bytes):
        return "bytes"
    if isinstance(v, GoTime):
        return "time"
    if isinstance(v, GoDuration):
        return "duration"
    if isinstance(v, PMap):
        return "map"
    if isinstance(v, (PSlice, list)):
        return "slice"
    return type(v).__name__


def compare(a: Any, b: Any, op: str) -> bool:
    if a is None and b is None:
        return op in ("==", "<=", ">=")
    if a is None or b is None:
        return op == "!="
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        return op == "!="
    if ka in ("traceid", "spanid") and op not in ("==", "!="):
        return False
    if ka in ("map", "slice"):
        if op not in ("==", "!="):
            return False
        equal: bool = _raw(a) == _raw(b)
        return equal == (op == "==")
    if ka == "number" and isinstance(a, float) != isinstance(b, float):
        a, b = float(a), float(b)
    return bool(_ORDERINGS[op](a, b))


# ---------------------------------------------------------------- string-like conversion

def _raw(v: Any) -> Any:
    """A map or slice (a view, or a list literal) as plain Python data, for deep equality."""
    if isinstance(v, list):
        return [_raw(x) for x in v]
    if isinstance(v, (PMap, PSlice)):
        return v.raw()
    if isinstance(v, (TraceID, SpanID)):
        return (type(v).__name__, bytes(v))
    return v


def string_like(v: Any) -> str | None:
    """A value as OTTL's `StringLikeGetter` renders it: bytes as hex, numbers and bools as JSON, maps
    and slices as compact JSON with sorted keys; nil stays nil."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, (TraceID, SpanID)):  # Go arrays: json.Marshal writes them as lists of numbers
        return "[" + ",".join(map(str, v)) + "]"
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise EvalError("unsupported type: float64")
        return anyvalue.format_double(v)
    if isinstance(v, (PMap, PSlice)):
        return _json(v.raw())
    if isinstance(v, list):
        return _json([x.raw() if isinstance(x, (PMap, PSlice)) else x for x in v])
    raise EvalError(f"unsupported type: {type(v).__name__}")


def json_marshal(v: Any) -> str:
    """Go's `json.Marshal` of a raw pdata value (`AsRaw`): compact, map keys sorted, floats in ES6
    form, bytes as base64 (HTML characters are not escaped)."""
    return _json(v)


def _json(v: Any) -> str:
    """Go's `json.Marshal` of a raw pdata value: compact, map keys sorted, floats in ES6 form."""
    if isinstance(v, dict):
        return "{" + ",".join(f"{_json(k)}:{_json(v[k])}" for k in sorted(v)) + "}"
    if isinstance(v, list):
        return "[" + ",".join(map(_json, v)) + "]"
    if isinstance(v, float):
        return anyvalue.format_double(v) if math.isfinite(v) else "null"
    if isinstance(v, bytes):
        return json.dumps(base64.b64encode(v).decode())
    return json.dumps(v, ensure_ascii=False)



# ---------------------------------------------------------------- Go types without a Python twin

class TraceID(bytes):
    """pcommon.TraceID: 16 bytes, a type of its own (a byte slice never equals it)."""

    __slots__ = ()


class SpanID(bytes):
    """pcommon.SpanID: 8 bytes, a type of its own."""

    __slots__ = ()


class _Nanos:
    """A count of nanoseconds with a Go type of its own (equal only to the same type)."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.ns == self.ns

    def __lt__(self, other: _Nanos) -> bool:
        return self.ns < other.ns

    def __le__(self, other: _Nanos) -> bool:
        return self.ns <= other.ns

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.ns))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ns})"


class GoTime(_Nanos):
    """time.Time, held as nanoseconds since the Unix epoch (UTC)."""

    __slots__ = ()


class GoDuration(_Nanos):
    """time.Duration, in nanoseconds."""

    __slots__ = ()


def new_map() -> PMap:
    """An empty pcommon.Map of its own."""
    return PMap(KeyValueList().values)


def new_slice() -> PSlice:
    return PSlice(ArrayValue().values)


def type_name(v: Any) -> str:
    """The Go type name OTTL's error messages print (`%T`)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, TraceID):
        return "pcommon.TraceID"
    if isinstance(v, SpanID):
        return "pcommon.SpanID"
    if isinstance(v, bytes):
        return "[]uint8"
    if isinstance(v, PMap):
        return "pcommon.Map"
    if isinstance(v, PSlice):
        return "pcommon.Slice"
    if isinstance(v, list):
        return "[]interface {}"
    if isinstance(v, GoTime):
        return "time.Time"
    if isinstance(v, GoDuration):
        return "time.Duration"
    return type(v).__name__


def set_any(target: AnyValue, val: Any) -> None:
    """`ctxutil.SetValue`: write an OTTL value into an AnyValue; nil empties it; a type it does not
    know leaves the target as it is (an empty value stays empty)."""
    if val is None:
        target.Clear()
    elif isinstance(val, bool):
        target.bool_value = val
    elif isinstance(val, int):
        target.int_value = val
    elif isinstance(val, float):
        target.double_value = val
    elif isinstance(val, str):
        target.string_value = val
    elif isinstance(val, (TraceID, SpanID)):
        return
    elif isinstance(val, bytes):
        target.bytes_value = val
    elif isinstance(val, list):
        arr = ArrayValue()
        for item in val:
            set_any(arr.values.add(), item)
        target.array_value.CopyFrom(arr)
    elif isinstance(val, PSlice):
        arr = ArrayValue()
        arr.values.extend(val.values)
        target.array_value.CopyFrom(arr)
    elif isinstance(val, PMap):
        kvl = KeyValueList()
        kvl.values.extend(val.kvs)
        target.kvlist_value.CopyFrom(kvl)


def set_map(kvs: Any, val: Any) -> None:
    """`ctxutil.SetMap`: replace a map's contents with a map value; any other value is ignored."""
    if isinstance(val, PMap):
        if val.kvs is kvs:
            return
        copy = list(val.kvs)
        del kvs[:]
        kvs.extend(copy)


def put(kvs: Any, key: str) -> AnyValue:
    """pdata `Map.PutEmpty` for an absent key, or the key's value (first match) when present."""
    for kv in kvs:
        if kv.key == key:
            return kv.value  # type: ignore[no-any-return]
    kv = kvs.add()
    kv.key = key
    return kv.value  # type: ignore[no-any-return]


def set_indexed(current: AnyValue, keys: list[str | int] | tuple[str | int, ...], val: Any) -> None:
    """`ctxutil.SetIndexableValue`: walk `keys` into `current`, creating maps (string keys) and
    slices padded with empty values (int keys) where the value is empty, then write `val`."""
    for key in keys:
        kind = current.WhichOneof("value")
        if kind == "kvlist_value":
            if not isinstance(key, str):
                raise EvalError("unable to resolve a string index in map: invalid key type")
            current = put(current.kvlist_value.values, key)
        elif kind == "array_value":
            if not isinstance(key, int):
                raise EvalError("unable to resolve an integer index in slice: invalid key type")
            items = current.array_value.values
            if not 0 <= key < len(items):
                raise EvalError(f"index {key} out of bounds")
            current = items[key]
        elif kind is None:
            if isinstance(key, str):
                current.kvlist_value.SetInParent()
                current = put(current.kvlist_value.values, key)
            else:
                arr = current.array_value
                arr.SetInParent()
                for _ in range(key):
                    arr.values.add()
                current = arr.values.add()
        else:
            raise EvalError(f"type {anyvalue.type_name(current)} does not support string indexing")
    set_any(current, val)


def map_set(kvs: Any, keys: list[str | int] | tuple[str | int, ...], val: Any) -> None:
    """`ctxutil.SetMapValue`: `attributes[k1][k2]... = val`."""
    first = keys[0]
    if not isinstance(first, str):
        raise EvalError("cannot set map value: unable to resolve a string index in map: invalid key type")
    set_indexed(put(kvs, first), keys[1:], val)
