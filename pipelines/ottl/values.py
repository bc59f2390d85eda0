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

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

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
    if isinstance(v, bytes):
        return "bytes"
    if isinstance(v, PMap):
        return "map"
    if isinstance(v, PSlice):
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
    if ka in ("map", "slice"):
        if op not in ("==", "!="):
            return False
        equal: bool = a.raw() == b.raw()
        return equal == (op == "==")
    if ka == "number" and isinstance(a, float) != isinstance(b, float):
        a, b = float(a), float(b)
    return bool(_ORDERINGS[op](a, b))


# ---------------------------------------------------------------- string-like conversion

def string_like(v: Any) -> str | None:
    """A value as OTTL's `StringLikeGetter` renders it: bytes as hex, numbers and bools as JSON, maps
    and slices as compact JSON with sorted keys; nil stays nil."""
    if v is None or isinstance(v, str):
        return v
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
    raise EvalError(f"unsupported type: {type(v).__name__}")


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

