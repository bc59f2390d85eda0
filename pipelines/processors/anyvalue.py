"""OTLP `AnyValue` helpers with the Collector's (pdata's) semantics: building a value from config,
rendering it as a string, hashing it and converting its type.

Attributes are a repeated `KeyValue` field; lookups scan it in order and take the first match, as
pdata's `Map.Get` does. Maps are small (tens of keys), so a scan beats building an index per item.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from decimal import Decimal
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def from_raw(raw: Any) -> AnyValue:
    """A value from YAML config, typed as pdata's `Value.FromRaw` types it; ValueError if it cannot be."""
    v = AnyValue()
    _set_raw(v, raw)
    return v


def _set_raw(v: AnyValue, raw: Any) -> None:
    if isinstance(raw, bool):
        v.bool_value = raw
    elif isinstance(raw, int):
        if not _INT64_MIN <= raw <= _INT64_MAX:
            raise ValueError(f"integer {raw} does not fit in 64 bits")
        v.int_value = raw
    elif isinstance(raw, float):
        v.double_value = raw
    elif isinstance(raw, str):
        v.string_value = raw
    elif isinstance(raw, bytes):
        v.bytes_value = raw
    elif isinstance(raw, (list, tuple)):
        arr = v.array_value
        for item in raw:
            _set_raw(arr.values.add(), item)
        if not raw:
            v.array_value.SetInParent()
    elif isinstance(raw, dict):
        kvl = v.kvlist_value
        kvl.SetInParent()
        for key, item in raw.items():
            kv = kvl.values.add()
            kv.key = str(key)
            _set_raw(kv.value, item)
    elif raw is None:
        pass
    else:
        raise ValueError(f"unsupported value type {type(raw).__name__}")


def find(attrs: Any, key: str) -> int:
    """Index of the first attribute named `key`, or -1."""
    for i, kv in enumerate(attrs):
        if kv.key == key:
            return i
    return -1


def get(attrs: Any, key: str) -> AnyValue | None:
    for kv in attrs:
        if kv.key == key:
            value: AnyValue = kv.value
            return value
    return None


def put(attrs: Any, key: str, value: AnyValue) -> None:
    kv: KeyValue = attrs.add()
    kv.key = key
    kv.value.CopyFrom(value)


def to_raw(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [to_raw(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: to_raw(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, kind)


def format_double(f: float, es6: bool = True) -> str:
    """Go's shortest float formatting: ES6 number style (pdata `AsString`) or plain `'f', -1`."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    a = abs(f)
    if es6 and a != 0 and (a < 1e-6 or a >= 1e21):
        text = repr(f)
        mantissa, _, exp = text.partition("e")
        if not exp:
            return text
        sign = exp[0] if exp[0] in "+-" else "+"
        return f"{mantissa.removesuffix('.0')}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return format(Decimal(repr(f)).normalize(), "f")


def as_string(v: AnyValue) -> str:
    """pdata's `Value.AsString`."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return format_double(v.double_value)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if kind in ("array_value", "kvlist_value"):
        return json.dumps(to_raw(v), separators=(",", ":"), sort_keys=True)
    return ""


def hash_value(v: AnyValue) -> None:
    """Replace a value with the hex SHA-256 of its bytes, as the Collector has since v0.85: strings
    as UTF-8, ints as 8 little-endian bytes, bools as one byte, doubles as their IEEE-754 bits
    (little-endian). Other types hash to the empty string, as there."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        data = v.string_value.encode()
    elif kind == "bool_value":
        data = b"\x01" if v.bool_value else b"\x00"
    elif kind == "int_value":
        data = struct.pack("<q", v.int_value)
    elif kind == "double_value":
        data = struct.pack("<d", v.double_value)
    else:
        data = b""
    v.string_value = hashlib.sha256(data).hexdigest() if data else ""


_GO_INT = re.compile(r"[+-]?[0-9]+\Z")
_GO_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)\Z")
_GO_HEX_FLOAT = re.compile(r"[+-]?0[xX][0-9a-fA-F]*\.?[0-9a-fA-F]*[pP][+-]?[0-9]+\Z")
_GO_SPECIAL = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
               "+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan}


def parse_go_int(s: str) -> int | None:
    """strconv.ParseInt(s, 10, 64), or None where it fails."""
    if not _GO_INT.match(s):
        return None
    n = int(s)
    return n if _INT64_MIN <= n <= _INT64_MAX else None


def parse_go_float(s: str) -> float | None:
    """strconv.ParseFloat(s, 64), or None where it fails (syntax, or out of range)."""
    special = _GO_SPECIAL.get(s.lower())
    if special is not None:
        return special
    if _GO_HEX_FLOAT.match(s):
        try:
            return float.fromhex(s)
        except (ValueError, OverflowError):
            return None
    if not _GO_FLOAT.match(s):
        return None
    f = float(s)
    return None if math.isinf(f) else f


def convert(v: AnyValue, to: str) -> bool:
    """Convert in place to `int`, `double` or `string`; return whether the value changed.
    A value that cannot be converted stays as it is."""
    kind = v.WhichOneof("value")
    if to == "string":
        if kind == "string_value":
            return False
        v.string_value = as_string(v)
        return True
    if to == "int":
        if kind == "double_value":
            d = v.double_value
            v.int_value = int(d) if math.isfinite(d) and _INT64_MIN <= d < 2**63 else _INT64_MIN
        elif kind == "bool_value":
            v.int_value = 1 if v.bool_value else 0
        elif kind == "string_value":
            n = parse_go_int(v.string_value)
            if n is None:
                return False
            v.int_value = n
        else:
            return False
        return True
    if to == "double":
        if kind == "int_value":
            v.double_value = float(v.int_value)
        elif kind == "bool_value":
            v.double_value = 1.0 if v.bool_value else 0.0
        elif kind == "string_value":
            f = parse_go_float(v.string_value)
            if f is None:
                return False
            v.double_value = f
        else:
            return False
        return True
    return False


def type_name(v: AnyValue) -> str:
    """pdata's name for a value's type, as config errors print it."""
    return {
        "string_value": "Str", "bool_value": "Bool", "int_value": "Int", "double_value": "Double",
        "array_value": "Slice", "kvlist_value": "Map", "bytes_value": "Bytes",
    }.get(v.WhichOneof("value") or "", "Empty")
