"""OTLP/JSON: the protobuf JSON mapping with two wire quirks the spec adds.

Trace and span ids are hex, not base64; field names may be lowerCamelCase or snake_case; enums may be
integers or names; 64-bit integers may be strings or numbers. Unknown fields are ignored, as the
spec requires of receivers.
"""

from __future__ import annotations

import base64
import binascii
import json
from math import isfinite
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from pipelines import otlp
from pipelines.errors import PermanentError

# A body nested deeper than Python's recursion limit is bad input like any other, not a server error.
_TOO_DEEP = "cannot decode OTLP/JSON: nested too deeply"
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def _hex_ids_to_base64(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise PermanentError(f"invalid {key} {value[:40]!r}: want hex digits") from None
            elif isinstance(value, (dict, list)):
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                _hex_ids_to_base64(item)


def _not_json(literal: str) -> Any:
    # Python's json reads NaN, Infinity and -Infinity; JSON has no such literals (ParseDict and the
    # Collector refuse them: the protobuf JSON mapping writes them as strings, "NaN").
    raise ValueError(f"{literal} is not JSON (write a non-finite double as a string, \"{literal}\")")


def decode(signal: str, body: bytes) -> Any:
    try:
        tree = json.loads(body, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PermanentError(f"cannot decode OTLP/JSON: {exc}") from exc
    except RecursionError:
        raise PermanentError(_TOO_DEEP) from None
    if not isinstance(tree, dict):
        raise PermanentError("cannot decode OTLP/JSON: the body must be a JSON object")
    request = otlp.SHAPES[signal].request
    fast = plain(request, tree)
    if fast is not None:
        return fast
    msg = request()
    try:
        _hex_ids_to_base64(tree)
        json_format.ParseDict(tree, msg, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, ValueError, TypeError, OverflowError) as exc:
        raise PermanentError(f"cannot decode OTLP/JSON: {exc}") from exc
    except RecursionError:
        raise PermanentError(_TOO_DEEP) from None
    return msg


def encode(msg: Any, integer_enums: bool = False) -> bytes:
    """A message as OTLP/JSON, ids in hex (for responses, errors and the debug exporter); enums as
    numbers with `integer_enums`, as the OTLP spec has senders write them."""
    tree = json_format.MessageToDict(msg, preserving_proto_field_name=False, use_integers_for_enums=integer_enums)
    _base64_ids_to_hex(tree)
    return json.dumps(tree, separators=(",", ":")).encode()


def _base64_ids_to_hex(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _base64_ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _base64_ids_to_hex(item)


# ------------------------------------------------------------------ the plain case, fast
#
# `json_format.ParseDict` walks the tree in Python, some 10 us a field: 1.4 ms for a request of 10
# spans. Most bodies are plain: the keys the schema names, values of the JSON type each field takes,
# hex ids. For those, `plain` renames the keys to the fields' names and converts the few values JSON
# cannot carry (hex ids to bytes, 64-bit integers written as strings, enum names), and the message's
# C constructor builds the whole message from the nested dicts. Anything else (a null, a value of
# another JSON type, base64 bytes, NaN, one field under both its names, an enum value the schema does
# not name, a number out of range) returns None and the body takes ParseDict's path, which decides
# it and words its error: the two paths build equal messages (tests/pipelines/test_otlp_json_plain.py).

_MSG, _STR, _BOOL, _INT, _LONG, _FLOAT, _ENUM, _HEX, _KVS = range(9)
_F = FieldDescriptor
_KINDS = {_F.TYPE_STRING: _STR, _F.TYPE_BOOL: _BOOL, _F.TYPE_DOUBLE: _FLOAT, _F.TYPE_FLOAT: _FLOAT,
          **dict.fromkeys((_F.TYPE_INT32, _F.TYPE_UINT32, _F.TYPE_SINT32, _F.TYPE_FIXED32, _F.TYPE_SFIXED32), _INT),
          **dict.fromkeys((_F.TYPE_INT64, _F.TYPE_UINT64, _F.TYPE_SINT64, _F.TYPE_FIXED64, _F.TYPE_SFIXED64), _LONG)}
_HEX_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})
_KEY_VALUE = "opentelemetry.proto.common.v1.KeyValue"
_STRING_VALUE = frozenset({"stringValue", "string_value"})
# Deeper than this many messages, a body is ParseDict's (which refuses past 100, as upb's parse does).
_MAX_DEPTH = 64


class _Table(dict[str, tuple[str, int, bool, Any]]):
    """JSON key -> (field name, kind, repeated, what the kind needs: a sub-table, or an enum's numbers
    by name); `oneofs`, the field names of each of the message's oneofs (one of each may be set)."""

    __slots__ = ("oneofs",)

    def __init__(self) -> None:
        super().__init__()
        self.oneofs: tuple[frozenset[str], ...] = ()


_TABLES: dict[str, _Table] = {}


class _NotPlain(Exception):
    pass


def _table(desc: Descriptor) -> _Table:
    found = _TABLES.get(desc.full_name)
    if found is not None:
        return found
    table = _Table()
    _TABLES[desc.full_name] = table  # before the fields: the schema is recursive (AnyValue)
    table.oneofs = tuple(frozenset(f.name for f in o.fields) for o in desc.oneofs if len(o.fields) > 1)
    for f in desc.fields:
        extra: Any = None
        if f.message_type is not None:
            kind, extra = _MSG, _table(f.message_type)
            if f.message_type.full_name == _KEY_VALUE and f.is_repeated:
                kind = _KVS
        elif f.enum_type is not None:
            kind, extra = _ENUM, {v.name: v.number for v in f.enum_type.values}
        elif f.type == _F.TYPE_BYTES:
            kind = _HEX if f.name in _HEX_FIELDS else -1  # other bytes are base64: ParseDict's
        else:
            kind = _KINDS.get(f.type, -1)
        if kind < 0 or (f.message_type is not None and f.message_type.GetOptions().map_entry):
            kind = -1
        repeated = f.is_repeated
        table[f.name] = table[f.json_name] = (f.name, kind, repeated, extra)
    return table


def _scalar(kind: int, value: Any, extra: Any) -> Any:
    t = type(value)
    if (kind == _STR and t is str) or (kind == _BOOL and t is bool) or (kind == _INT and t is int):
        return value
    if kind == _LONG:
        if t is int:
            return value
        if t is str and value.isascii() and (value[1:] if value[:1] == "-" else value).isdigit():
            return int(value)  # the constructor refuses what the field's range does not hold
    elif kind == _FLOAT:
        if t is int or (t is float and isfinite(value)):  # NaN and infinities are strings in JSON: ParseDict's
            return value
    elif kind == _HEX:
        if t is str:
            try:
                return bytes.fromhex(value)
            except ValueError:
                pass
    elif kind == _ENUM:
        if t is int and value in extra.values():
            return value
        if t is str and value in extra:
            return extra[value]
    raise _NotPlain


def _convert(obj: dict[str, Any], table: _Table, depth: int = 0) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise _NotPlain
    depth += 1
    out: dict[str, Any] = {}
    for key, value in obj.items():
        spec = table.get(key)
        if spec is None:
            continue  # unknown: ignored, as receivers must
        name, kind, repeated, extra = spec
        if name in out:
            raise _NotPlain
        t = type(value)
        if kind == _STR and t is str and not repeated:  # the commonest by far: attribute keys and values
            out[name] = value
        elif repeated:
            if t is not list:
                raise _NotPlain
            if kind == _KVS:
                out[name] = _attributes(value, extra, depth)
            elif kind == _MSG:
                out[name] = [_convert(v, extra, depth) if type(v) is dict else _not_plain() for v in value]
            else:
                out[name] = [_scalar(kind, v, extra) for v in value]
        elif kind == _MSG:
            if t is not dict:
                raise _NotPlain
            out[name] = _convert(value, extra, depth)
        else:
            out[name] = _scalar(kind, value, extra)
    for oneof in table.oneofs:  # two members of one oneof: ParseDict refuses it, the constructor would not
        if len(oneof.intersection(out)) > 1:
            raise _NotPlain
    return out


def _attributes(values: list[Any], table: _Table, depth: int) -> list[dict[str, Any]]:
    """A list of KeyValue: most are a key and a string value, taken without the general walk."""
    out: list[dict[str, Any]] = []
    append = out.append
    for kv in values:
        if type(kv) is dict and len(kv) == 2:
            key, value = kv.get("key"), kv.get("value")
            if type(key) is str and type(value) is dict and len(value) == 1:
                ((vk, vv),) = value.items()
                if vk in _STRING_VALUE and type(vv) is str:
                    append({"key": key, "value": {"string_value": vv}})
                    continue
        append(_convert(kv, table, depth) if type(kv) is dict else _not_plain())
    return out


def _not_plain() -> Any:
    raise _NotPlain


def plain(request: Any, tree: dict[str, Any]) -> Any:
    """`tree` as a `request` message if it is plain (above), else None."""
    try:
        return request(**_convert(tree, _table(request.DESCRIPTOR)))
    except (_NotPlain, ValueError, TypeError, RecursionError, OverflowError):
        return None
