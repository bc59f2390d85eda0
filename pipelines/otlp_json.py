"""OTLP/JSON: the protobuf JSON mapping with two wire quirks the spec adds.

Trace and span ids are hex, not base64; field names may be lowerCamelCase or snake_case; enums may be
integers or names; 64-bit integers may be strings or numbers. Unknown fields are ignored, as the
spec requires of receivers.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from google.protobuf import json_format

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


def decode(signal: str, body: bytes) -> Any:
    try:
        tree = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PermanentError(f"cannot decode OTLP/JSON: {exc}") from exc
    except RecursionError:
        raise PermanentError(_TOO_DEEP) from None
    if not isinstance(tree, dict):
        raise PermanentError("cannot decode OTLP/JSON: the body must be a JSON object")
    msg = otlp.SHAPES[signal].request()
    try:
        _hex_ids_to_base64(tree)
        json_format.ParseDict(tree, msg, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, ValueError, TypeError) as exc:
        raise PermanentError(f"cannot decode OTLP/JSON: {exc}") from exc
    except RecursionError:
        raise PermanentError(_TOO_DEEP) from None
    return msg


def encode(msg: Any) -> bytes:
    """A message as OTLP/JSON, ids in hex (for responses, errors and the debug exporter)."""
    tree = json_format.MessageToDict(msg, preserving_proto_field_name=False)
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
