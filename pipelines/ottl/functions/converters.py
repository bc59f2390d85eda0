"""OTTL converters on types and collections (contrib `pkg/ottl/ottlfuncs`, v0.161.0): type tests and
conversions, lengths, keys and values, sorting, IDs, `Coalesce`, `ParseInt`, `IsInCIDR`, `IsRootSpan`.

A converter returning a new map or slice returns one of its own (`new_map`, `new_slice`): setting it
copies it, as pdata's `CopyTo` does.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from pipelines.ottl.contexts import Env, Getter
from pipelines.ottl.functions.registry import converter
from pipelines.ottl.functions.strings import _fmt_v
from pipelines.ottl.values import (
    EvalError,
    GoDuration,
    GoTime,
    PMap,
    PSlice,
    SpanID,
    TraceID,
    compare,
    from_any,
    new_map,
    new_slice,
    set_any,
    type_name,
)
from pipelines.processors import anyvalue

Run = Callable[[Env], Any]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# ---------------------------------------------------------------- type tests

def _is(name: str, test: Callable[[Any], bool]) -> None:
    @converter(name, "value:getter")
    def build(value: Getter) -> Run:
        return lambda env: test(value(env))


_is("IsString", lambda v: isinstance(v, str))
_is("IsInt", lambda v: isinstance(v, int) and not isinstance(v, bool))
_is("IsDouble", lambda v: isinstance(v, float))
_is("IsBool", lambda v: isinstance(v, bool))
_is("IsMap", lambda v: isinstance(v, PMap))
_is("IsList", lambda v: isinstance(v, (PSlice, list)))


def is_empty(v: Any) -> bool:
    """`IsEmpty`: nil, an empty map, slice or byte string, or a type's zero value."""
    if v is None:
        return True
    if isinstance(v, PMap):
        return len(v.kvs) == 0
    if isinstance(v, PSlice):
        return len(v.values) == 0
    if isinstance(v, (TraceID, SpanID)):
        return not any(v)
    if isinstance(v, (GoTime, GoDuration)):
        return v.ns == 0
    if isinstance(v, (str, bytes, list, bool, int, float)):
        return not v
    return False


_is("IsEmpty", is_empty)


# ---------------------------------------------------------------- conversions

def _identity(name: str, kind: str) -> None:
    """`Int`, `Double`, `String`, `Bool`: the value as the `...LikeGetter` converts it (nil stays nil)."""
    @converter(name, f"target:{kind}")
    def build(target: Getter) -> Run:
        return target


_identity("Int", "int_like")
_identity("Double", "float_like")
_identity("String", "string_like")
_identity("Bool", "bool_like")

_LEN_ERROR = ("target arg must be of type string, []any, map[string]any, pcommon.Map, pcommon.Slice, or "
              "pcommon.Value (of type String, Map, Slice)")


@converter("Len", "target:getter")
def len_(target: Getter) -> Run:
    def run(env: Env) -> Any:
        v = target(env)
        if isinstance(v, str):
            return len(v.encode())  # Go's len: bytes
        if isinstance(v, PMap):
            return len(v.kvs)
        if isinstance(v, PSlice):
            return len(v.values)
        if isinstance(v, (bytes, list)):
            return len(v)
        raise EvalError(_LEN_ERROR)
    return run


# ---------------------------------------------------------------- maps and slices

@converter("Keys", "target:map")
def keys(target: Getter) -> Run:
    def run(env: Env) -> Any:
        out = new_slice()
        for kv in target(env).kvs:
            out.values.add().string_value = kv.key
        return out
    return run


@converter("Values", "target:map")
def values(target: Getter) -> Run:
    def run(env: Env) -> Any:
        out = new_slice()
        for kv in target(env).kvs:
            out.values.add().CopyFrom(kv.value)
        return out
    return run


@converter("ContainsValue", "target:slice, item:getter")
def contains_value(target: Getter, item: Getter) -> Run:
    def run(env: Env) -> Any:
        items = target(env)
        want = item(env)
        elements = (from_any(v) for v in items.values) if isinstance(items, PSlice) else iter(items)
        return any(compare(e, want, "==") for e in elements)
    return run


_SORTABLE = frozenset({"int_value", "double_value", "string_value", "bool_value", None})


def _list_to_values(items: list[Any]) -> list[AnyValue] | None:
    """A `[]any` as pdata `Slice.FromRaw` makes it, or None where it cannot (a map or slice inside)."""
    out = []
    for item in items:
        if isinstance(item, (PMap, PSlice, list, GoTime, GoDuration, TraceID, SpanID)):
            return None
        v = AnyValue()
        set_any(v, item)
        out.append(v)
    return out


def _sort_key_float(f: float) -> tuple[int, float]:
    return (0, 0.0) if math.isnan(f) else (1, f)  # cmp.Compare: NaN before everything


@converter("Sort", "target:getter, ?order:lit_string")
def sort(target: Getter, order: str | None) -> Run:
    """As the v0.161 Collector answers (the differential corpus): a list (an attribute's or a
    literal) sorts with each item keeping its type, numbers by value before strings (by bytes) before
    bools (false first); `desc` reverses; nil is an error; any other value comes back as it was."""
    if order is not None and order not in ("asc", "desc"):
        raise ValueError(f'invalid arguments: {order}. Order should be either "asc" or "desc"')
    desc = order == "desc"

    def run(env: Env) -> Any:
        v = target(env)
        if v is None:
            raise EvalError("sort with unsupported type: <nil>")
        if isinstance(v, PSlice):
            items = [from_any(e) for e in v.values]
        elif isinstance(v, list):
            items = list(v)
        else:
            return v
        return sorted(items, key=_sort_key, reverse=desc)
    return run


def _sort_key(x: Any) -> tuple[int, Any]:
    if isinstance(x, bool):
        return (2, x)
    if isinstance(x, (int, float)):
        return (0, _sort_key_float(float(x)))
    if isinstance(x, str):
        return (1, x.encode())
    raise EvalError(f"sort with unsupported type: {type_name(x)}")


def _go_list(path: list[str]) -> str:
    return "[" + " ".join(path) + "]"


def _extract(value: AnyValue, path: list[str]) -> AnyValue:
    """`extractValue`: walk `path` down nested maps from the map `value`."""
    current = value
    for n, key in enumerate(path):
        found = anyvalue.get(current.kvlist_value.values, key)
        if found is None:
            raise EvalError(f"provided object does not contain the path {_go_list(path[n:])}")
        if n == len(path) - 1:
            return found
        if found.WhichOneof("value") != "kvlist_value":
            raise EvalError(f"provided object does not contain the path {_go_list(path[n:])}")
        current = found
    return current


@converter("SliceToMap", "target:getter, ?keyPath:lit_strings, ?valuePath:lit_strings")
def slice_to_map(target: Getter, keyPath: list[str] | None, valuePath: list[str] | None) -> Run:
    if keyPath is not None and not keyPath:
        raise ValueError("key path must contain at least one element")

    def run(env: Env) -> Any:
        v = target(env)
        if isinstance(v, list):
            if v:
                raise EvalError(f"could not cast element '{_fmt_v(v[0])}' to map[string]any")
            return new_map()
        if not isinstance(v, PSlice):
            raise EvalError(f"unsupported type provided to SliceToMap function: {type_name(v)}")
        out = new_map()
        for i, elem in enumerate(v.values):
            if elem.WhichOneof("value") != "kvlist_value":
                raise EvalError(f"could not cast element '{_fmt_v(from_any(elem))}' to map[string]any")
            if keyPath is None:
                key = str(i)
            else:
                try:
                    found = _extract(elem, keyPath)
                except EvalError as exc:
                    raise EvalError(f"could not extract key from element: {exc}") from None
                if found.WhichOneof("value") != "string_value":
                    raise EvalError("extracted key attribute is not of type string")
                key = found.string_value
            if valuePath:
                try:
                    value = _extract(elem, valuePath)
                except EvalError as exc:
                    raise EvalError(f"could not extract value from element: {exc}") from None
            else:
                value = elem
            _put(out, key, value)
        return out
    return run


def _put(m: PMap, key: str, value: AnyValue) -> None:
    copy = AnyValue()
    copy.CopyFrom(value)
    for kv in m.kvs:
        if kv.key == key:
            kv.value.CopyFrom(copy)
            return
    kv = m.kvs.add()
    kv.key = key
    kv.value.CopyFrom(copy)


@converter("Coalesce", "values:getters")
def coalesce(values: list[Getter]) -> Run:
    def run(env: Env) -> Any:
        for get in values:
            v = get(env)
            if v is not None:
                return v
        return None
    return run


# ---------------------------------------------------------------- IDs

def _id(name: str, size: int, cls: type[bytes]) -> None:
    @converter(name, "target:bytes_like")
    def build(target: Getter) -> Run:
        def run(env: Env) -> Any:
            raw = target(env)
            if raw is None:
                raise EvalError(f"{name}: expected {size} or {size * 2} (hex) bytes, got nil")
            if len(raw) == size:
                return cls(raw)
            if len(raw) == size * 2:
                try:
                    return cls(bytes.fromhex(raw.decode("ascii")))
                except (ValueError, UnicodeDecodeError):
                    raise EvalError(f"{name}: invalid hex string {raw!r}") from None
            raise EvalError(f"{name}: expected {size} or {size * 2} (hex) bytes, got {len(raw)}")
        return run


_id("TraceID", 16, TraceID)
_id("SpanID", 8, SpanID)


@converter("IsRootSpan", "")
def is_root_span() -> Run:
    def run(env: Env) -> Any:
        parent = getattr(env.item, "parent_span_id", None)
        if parent is None or env.event is not None:
            raise EvalError("IsRootSpan is only supported in the span context")
        return not any(parent)
    return run


# ---------------------------------------------------------------- ParseInt, IsInCIDR

def go_parse_int(s: str, base: int) -> int:
    """strconv.ParseInt(s, base, 64), its errors as EvalError."""
    def syntax() -> EvalError:
        return EvalError(f'strconv.ParseInt: parsing "{s}": invalid syntax')

    if base != 0 and not 2 <= base <= 36:
        raise EvalError(f"strconv.ParseInt: parsing \"{s}\": invalid base {base}")
    text = s
    neg = False
    if text[:1] in ("+", "-"):
        neg = text[0] == "-"
        text = text[1:]
    if not text:
        raise syntax()
    underscores = False
    if base == 0:
        base = 10
        low = text.lower()
        if low.startswith("0x"):
            base, text = 16, text[2:]
        elif low.startswith("0b"):
            base, text = 2, text[2:]
        elif low.startswith("0o"):
            base, text = 8, text[2:]
        elif text.startswith("0"):
            base = 8
        underscores = True
        if "_" in text and not _underscore_ok(s.lstrip("+-")):
            raise syntax()
        text = text.replace("_", "") if underscores else text
        if not text:
            raise syntax()
    n = 0
    for c in text.lower():
        d = ord(c) - 48 if c.isascii() and c.isdigit() else ord(c) - 87 if "a" <= c <= "z" else 99
        if d >= base:
            raise syntax()
        n = n * base + d
    n = -n if neg else n
    if not _INT64_MIN <= n <= _INT64_MAX:
        raise EvalError(f'strconv.ParseInt: parsing "{s}": value out of range')
    return n


def _underscore_ok(s: str) -> bool:
    """strconv's underscoreOK: underscores only between digits, or after a base prefix."""
    saw = "^"
    i = 0
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "bxo":
        i = 2
        saw = "0"
        hexa = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if c.isdigit() or (hexa and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


@converter("ParseInt", "target:string, base:int")
def parse_int(target: Getter, base: Getter) -> Run:
    def run(env: Env) -> Any:
        b: int = base(env)
        if b < 0:
            raise EvalError(f"invalid base: {b}, base must not be negative")
        return go_parse_int(target(env), b)
    return run


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@converter("IsInCIDR", "target:string, networks:lit_strings")
def is_in_cidr(target: Getter, networks: list[str]) -> Run:
    parsed: list[Network] = []
    for text in networks:
        try:
            if "/" not in text:
                raise ValueError(text)
            parsed.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"invalid CIDR address: {text}") from None

    def run(env: Env) -> Any:
        try:
            ip = ipaddress.ip_address(target(env))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip4 = ip.ipv4_mapped
            return any(ip4 in n or ip in n for n in parsed)
        return any(ip in n for n in parsed)
    return run


# ---------------------------------------------------------------- ParseSeverity

_HTTP_RANGES = {"2xx": (200, 299), "3xx": (300, 399), "4xx": (400, 499), "5xx": (500, 599)}


def _criteria(raw: Any) -> tuple[list[str], tuple[int, int] | None]:
    """One criterion of a severity mapping: `{"equals": [...], "range": {"min": a, "max": b} | "4xx"}`."""
    if not isinstance(raw, dict):
        raise ValueError("severity mapping criteria items must be map[string]any")
    equals: list[str] = []
    if "equals" in raw:
        if not isinstance(raw["equals"], list):
            raise ValueError("equals must be a list")
        for item in raw["equals"]:
            if not isinstance(item, str):
                raise ValueError("equals values must be strings")
            equals.append(item)
    bounds: tuple[int, int] | None = None
    if "range" in raw:
        spec = raw["range"]
        if isinstance(spec, dict):
            if "min" not in spec:
                raise ValueError("range must have a min value")
            if "max" not in spec:
                raise ValueError("range must have a max value")
            low, high = spec["min"], spec["max"]
            if not isinstance(low, int) or isinstance(low, bool):
                raise ValueError("min must be an int64")
            if not isinstance(high, int) or isinstance(high, bool):
                raise ValueError("max must be an int64")
            bounds = (low, high)
        elif isinstance(spec, str):
            if spec not in _HTTP_RANGES:
                raise ValueError(f"unknown range placeholder: {spec}")
            bounds = _HTTP_RANGES[spec]
        else:
            raise ValueError("range must be a map or a known placeholder string")
    return equals, bounds


def _severity_mapping(mapping: Any) -> dict[str, list[tuple[list[str], tuple[int, int] | None]]]:
    if not isinstance(mapping, dict):
        raise ValueError("severity mapping must be a literal PMap")
    out: dict[str, list[tuple[list[str], tuple[int, int] | None]]] = {}
    for level, items in mapping.items():
        if not isinstance(items, list):
            raise ValueError("severity mapping criteria must be []any")
        try:
            out[level] = [_criteria(item) for item in items]
        except ValueError as exc:
            if "criteria items" in str(exc):
                raise
            raise ValueError(f"invalid severity mapping criteria: {exc}") from None
    return out


@converter("ParseSeverity", "target:getter, mapping:lit_map")
def parse_severity(target: Getter, mapping: Any) -> Run:
    """The level whose criteria the value meets: a string equal to one of `equals`, an int within
    `range`. A mapping that is not a literal map, or is malformed, fails at run time, as there. Levels
    are tried in the mapping's order (the Collector's, a Go map's, is random: only one should match)."""
    try:
        levels = _severity_mapping(mapping)
    except ValueError as exc:
        problem = str(exc)

        def broken(env: Env) -> Any:
            raise EvalError(problem)
        return broken

    def run(env: Env) -> Any:
        try:
            value = target(env)
        except EvalError as exc:
            raise EvalError(f"could not get log level: {exc}") from None
        for level, criteria in levels.items():
            for equals, bounds in criteria:
                if isinstance(value, str):
                    hit = value in equals
                elif isinstance(value, int) and not isinstance(value, bool):
                    hit = bounds is not None and bounds[0] <= value <= bounds[1]
                else:
                    shown = "<nil>" if value is None else _fmt_v(value)
                    raise EvalError(f"could not map log level: could not evaluate log level of value '{shown}': "
                                    f"unsupported value type: {type_name(value)}")
                if hit:
                    return level
        shown = "<nil>" if value is None else _fmt_v(value)
        raise EvalError(f"could not map log level: no matching log level found for value '{shown}'")
    return run


# ---------------------------------------------------------------- CommunityID

_COMMUNITY_PROTOCOLS = {"ICMP": 1, "TCP": 6, "UDP": 17, "RSVP": 46, "ICMP6": 58, "SCTP": 132}


def _go_ip_bytes(text: str) -> bytes | None:
    """Go's `net.ParseIP` then `To4()` (an IPv4 or IPv4-mapped address as 4 bytes) or `To16()`;
    None when it is not an address (zones, as `fe80::1%eth0`, are not)."""
    if "%" in text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.packed
    return ip.packed


def _get(getter: Getter, env: Env, what: str) -> Any:
    try:
        return getter(env)
    except EvalError as exc:
        raise EvalError(f"failed to get {what}: {exc}") from None


def _endpoint(ip: Getter, port: Getter, name: str, env: Env) -> tuple[bytes, int]:
    text, number = _get(ip, env, f"{name} IP"), _get(port, env, f"{name} port")
    if not 0 <= number <= 65535:
        raise EvalError(f"{name} port must be between 0 and 65535, got {number}")
    raw = _go_ip_bytes(text)
    if raw is None:
        raise EvalError(f"invalid {name} IP: {text}")
    return raw, number


@converter("CommunityID", "source_ip:string, source_port:int, destination_ip:string, destination_port:int, "
                          "?protocol:string, ?seed:int")
def community_id(source_ip: Getter, source_port: Getter, destination_ip: Getter, destination_port: Getter,
                 protocol: Getter | None, seed: Getter | None) -> Run:
    """The Community ID flow hash (v1): `1:` and the base64 SHA-1 of the seed, the two endpoints
    ordered (shorter address first, then the lower address, then the lower port), the protocol
    number, a zero byte and the ports."""
    def run(env: Env) -> Any:
        src, src_port = _endpoint(source_ip, source_port, "source", env)
        dst, dst_port = _endpoint(destination_ip, destination_port, "destination", env)
        proto = 6
        if protocol is not None:
            name = _get(protocol, env, "protocol")
            if name not in _COMMUNITY_PROTOCOLS:
                raise EvalError(f"unsupported protocol: {name}")
            proto = _COMMUNITY_PROTOCOLS[name]
        seed_value = 0
        if seed is not None:
            seed_value = _get(seed, env, "seed")
            if not 0 <= seed_value <= 65535:
                raise EvalError(f"seed must be between 0 and 65535, got {seed_value}")
        if (len(src), src, src_port) > (len(dst), dst, dst_port):
            src, dst, src_port, dst_port = dst, src, dst_port, src_port
        flow = (seed_value.to_bytes(2, "big") + src + dst + bytes((proto, 0))
                + src_port.to_bytes(2, "big") + dst_port.to_bytes(2, "big"))
        return "1:" + base64.b64encode(hashlib.sha1(flow).digest()).decode()  # SHA-1: the specification's hash
    return run
