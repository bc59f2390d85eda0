"""Decode plain YAML data into frozen config dataclasses, collecting every error with its path.

Types understood: str, int, float, bool, `Duration`, `X | None`, `tuple[T, ...]`, `list[T]`,
`dict[str, T]`, `Literal[...]`, nested dataclasses, and `Any` (kept as is). Numbers and booleans
may arrive as strings (from `${env:VAR}` expansion) and are converted, as the Collector does.

A Collector key the gateway does not implement is declared with `unsupported(reason)`: a config that
sets it is refused with its path and the reason, never silently accepted.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from pipelines.config_types import config_key, unsupported_reason

T = TypeVar("T")

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class Errors:
    """Accumulates `path: message` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}" if path else message)

    def __bool__(self) -> bool:
        return bool(self.lines)


def join(path: str, key: str) -> str:
    return f"{path}::{key}" if path else key


def parse_duration(value: Any) -> float:
    """Go's time.ParseDuration, in seconds; a bare integer is nanoseconds, as mapstructure reads it."""
    if isinstance(value, bool):
        raise ValueError("want a duration such as 5s or 200ms")
    if isinstance(value, int):
        return value * 1e-9
    if isinstance(value, float):
        return value * 1e-9
    if not isinstance(value, str):
        raise ValueError("want a duration such as 5s or 200ms")
    text = value.strip()
    if text in ("0", ""):
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos = 0
    total = 0.0
    for m in _DURATION_RE.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(body) or pos == 0:
        raise ValueError(f"invalid duration {value!r}: want a number with a unit such as 5s or 200ms")
    return sign * total


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def decode(cls: type[T], data: Any, path: str, errors: Errors) -> T | None:
    """Build `cls` from `data`; on error, record it and return None (or a partial default)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors.add(path, f"want a mapping, got {type(data).__name__}")
        return None
    hints = _hints(cls)
    fields = {config_key(f): f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    ok = True
    for key, raw in data.items():
        name = str(key)
        if name not in fields or name.startswith("_"):
            errors.add(path, f"unknown key {name!r}")
            ok = False
            continue
        reason = unsupported_reason(fields[name])
        if reason is not None and raw != fields[name].default:
            errors.add(join(path, name), f"not supported by this gateway: {reason}")
            ok = False
            continue
        before = len(errors.lines)
        value = _convert(hints[fields[name].name], raw, join(path, name), errors)
        if len(errors.lines) > before:
            ok = False
        else:
            kwargs[fields[name].name] = value
    for name, f in fields.items():
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in kwargs:
            if name in data:
                continue
            errors.add(path, f"missing {name}")
            ok = False
    if not ok:
        return None
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        for message in validate():
            errors.add(path, message)
    return obj


def _convert(tp: Any, raw: Any, path: str, errors: Errors) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is typing.Annotated:
        if "duration" in args[1:]:
            try:
                return parse_duration(raw)
            except ValueError as exc:
                errors.add(path, str(exc))
                return None
        return _convert(args[0], raw, path, errors)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if raw is None and type(None) in args:
            # `grpc:` with no body enables the block with its defaults, as in the Collector.
            if len(inner) == 1 and isinstance(inner[0], type) and dataclasses.is_dataclass(inner[0]):
                return decode(typing.cast(type[Any], inner[0]), {}, path, errors)
            return None
        if len(inner) == 1:
            return _convert(inner[0], raw, path, errors)
        blocks = [a for a in inner if isinstance(a, type) and dataclasses.is_dataclass(a)]
        if isinstance(raw, dict) and len(blocks) == 1:
            # `str | Group`: a mapping is the block, and its own errors say what is wrong in it.
            return decode(typing.cast(type[Any], blocks[0]), raw, path, errors)
        for candidate in inner:
            probe = Errors()
            value = _convert(candidate, raw, path, probe)
            if not probe:
                return value
        errors.add(path, f"unexpected value {raw!r}")
        return None
    if origin is Literal:
        if raw in args:
            return raw
        choices = ", ".join(repr(a) for a in args)
        errors.add(path, f"invalid value {raw!r}: want one of {choices}")
        return None
    if origin in (tuple, list):
        if raw is None:
            return () if origin is tuple else []
        if not isinstance(raw, list):
            errors.add(path, f"want a list, got {type(raw).__name__}")
            return None
        item_tp = args[0]
        items = [_convert(item_tp, v, f"{path}[{i}]", errors) for i, v in enumerate(raw)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            errors.add(path, f"want a mapping, got {type(raw).__name__}")
            return None
        return {str(k): _convert(args[1], v, join(path, str(k)), errors) for k, v in raw.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return decode(typing.cast(type[Any], tp), raw, path, errors)
    if tp is Any:
        return raw
    return _scalar(tp, raw, path, errors)


def _scalar(tp: Any, raw: Any, path: str, errors: Errors) -> Any:
    if tp is str:
        if isinstance(raw, (dict, list)) or raw is None:
            errors.add(path, f"want a string, got {type(raw).__name__}")
            return None
        if isinstance(raw, bool):
            return "true" if raw else "false"
        return str(raw)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        errors.add(path, f"want true or false, got {raw!r}")
        return None
    if tp is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        errors.add(path, f"want an integer, got {raw!r}")
        return None
    if tp is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw.strip())
            except ValueError:
                pass
        errors.add(path, f"want a number, got {raw!r}")
        return None
    errors.add(path, f"unsupported config type {tp!r}")
    return None
