"""Attribute values as the Zipkin translator types them: a tag is a string unless `parse_string_tags`
asks for int, double and bool where the whole string reads as one (the Collector's regular
expressions, ASCII digits, Go's `strconv` on overflow)."""

from __future__ import annotations

import math
import re
from typing import Any

from opentelemetry.proto.common.v1 import common_pb2

_INT = re.compile(r"-?[0-9]+")
_DOUBLE = re.compile(r"-?[0-9]+\.[0-9]+")
INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)

# What a value is on its way to an AnyValue: ("s", str) | ("i", int) | ("d", float) | ("b", bool) | ("y", bytes)
Value = tuple[str, Any]


def parse_tag(value: str, parse_string_tags: bool) -> Value:
    if not parse_string_tags:
        return ("s", value)
    if _INT.fullmatch(value):
        # Go's ParseInt saturates out of range (the error is ignored there)
        return ("i", min(max(int(value), INT64_MIN), INT64_MAX))
    if _DOUBLE.fullmatch(value):
        return ("d", float(value))  # overflow is +-inf in both
    if value in ("true", "false"):
        return ("b", value == "true")
    return ("s", value)


def put(kvs: Any, attrs: dict[str, Value]) -> None:
    """Append `attrs` to a repeated KeyValue field."""
    for key, (kind, value) in attrs.items():
        kv = kvs.add()
        kv.key = key
        set_value(kv.value, kind, value)


def set_value(out: common_pb2.AnyValue, kind: str, value: Any) -> None:
    if kind == "s":
        out.string_value = value
    elif kind == "i":
        out.int_value = value
    elif kind == "d":
        out.double_value = value
    elif kind == "y":
        out.bytes_value = value
    else:
        out.bool_value = value


def json_attrs(obj: Any) -> dict[str, Value]:
    """A JSON object's entries as attributes, as the translator keeps them from an event or a link:
    strings, numbers (integral ones as ints), bools; anything else is left out."""
    out: dict[str, Value] = {}
    if not isinstance(obj, dict):
        return out
    for key, value in obj.items():
        if isinstance(value, bool):
            out[key] = ("b", value)
        elif isinstance(value, str):
            out[key] = ("s", value)
        elif isinstance(value, int | float):
            f = float(value)  # Go decodes every JSON number to a float64
            if math.isfinite(f) and f == int(f):
                out[key] = ("i", _go_int64(f))
            else:
                out[key] = ("d", f)
    return out


def _go_int64(f: float) -> int:
    i = int(f)
    # Go's int64(float64) of an out-of-range value is the minimum int64 on amd64
    return i if INT64_MIN <= i <= INT64_MAX else INT64_MIN
