"""Zipkin v2 JSON (`POST /api/v2/spans`, a list of spans) to the v2 model, with zipkin-go's rules:
hex ids of up to 16 digits per half (a missing trace id is zero, a span id is required and not
zero), microsecond `timestamp` and `duration` as unsigned integers, annotations with a timestamp of
at least 1, endpoints whose addresses must parse. Keys are matched as Go's encoding/json matches
them (case-insensitively); a value of the wrong JSON type fails the request, as there."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from pipelines.errors import PermanentError
from pipelines.zipkin.model import Endpoint, ZSpan

_HEX = re.compile(r"[0-9a-fA-F]+")
_MASK64 = (1 << 64) - 1


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


def loads(body: bytes, what: str) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise PermanentError(f"{what}: cannot decode JSON: {exc}") from None


def fields(obj: dict[str, Any]) -> dict[str, Any]:
    """An object's members by lower-cased key, the last of equal keys winning."""
    return {key.lower(): value for key, value in obj.items()}


def typed(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """`value` when of `kind`, None for JSON null; else the request fails, as Go's decoder fails it."""
    if value is None or (isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)):
        return value
    raise PermanentError(f"cannot unmarshal {type(value).__name__} into {what}")


def uint(value: Any, what: str, bits: int = 64) -> int:
    n = typed(value, int, what)
    if n is None:
        return 0
    if not 0 <= n < 1 << bits:
        raise PermanentError(f"cannot unmarshal number {n} into {what}")
    return int(n)


def _hex(text: str, what: str) -> int:
    if not _HEX.fullmatch(text) or int(text, 16) >> 64:
        raise PermanentError(f"{what}: invalid hex {text[:40]!r}")
    return int(text, 16)


def trace_id(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        raise PermanentError("valid traceId required")
    high = _hex(value[:-16], "traceId") if len(value) > 16 else 0
    low = _hex(value[-16:], "traceId")
    return high.to_bytes(8, "big") + low.to_bytes(8, "big")


def span_id(value: Any, what: str) -> int:
    if value is None:
        return 0
    if not isinstance(value, str):
        raise PermanentError(f"{what}: want a hex string")
    return _hex(value, what) if value else 0


def ip_text(value: Any, what: str) -> str | None:
    """An address as Go's net.IP prints it (IPv4-mapped IPv6 as dotted IPv4); None when empty."""
    text = typed(value, str, what)
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise PermanentError(f"{what}: invalid IP address {text[:60]!r}") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        raise PermanentError(f"{what}: invalid IP address {text[:60]!r}")
    return str(ip)


def endpoint(value: Any, what: str) -> Endpoint | None:
    obj = typed(value, dict, what)
    if obj is None:
        return None
    f = fields(obj)
    ep = Endpoint(
        service_name=typed(f.get("servicename"), str, f"{what}.serviceName") or "",
        ipv4=ip_text(f.get("ipv4"), f"{what}.ipv4"),
        ipv6=ip_text(f.get("ipv6"), f"{what}.ipv6"),
        port=uint(f.get("port"), f"{what}.port", 16),
    )
    if not ep.service_name and ep.ipv4 is None and ep.ipv6 is None and not ep.port:
        return None
    return ep


def _span(obj: Any) -> ZSpan | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise PermanentError("cannot unmarshal a non-object into a Zipkin span")
    f = fields(obj)
    sid = span_id(f.get("id"), "id")
    parent = f.get("parentid")
    span = ZSpan(
        trace_id=trace_id(f["traceid"]) if f.get("traceid") is not None else bytes(16),
        id=sid,
        parent_id=span_id(parent, "parentId") if parent is not None else None,
        name=typed(f.get("name"), str, "name") or "",
        kind=typed(f.get("kind"), str, "kind") or "",
        local=endpoint(f.get("localendpoint"), "localEndpoint"),
        remote=endpoint(f.get("remoteendpoint"), "remoteEndpoint"),
    )
    typed(f.get("shared"), bool, "shared")
    typed(f.get("debug"), bool, "debug")
    timestamp = uint(f.get("timestamp"), "timestamp")
    span.timestamp = (timestamp * 1000) & _MASK64 if timestamp > 0 else None
    span.duration = (uint(f.get("duration"), "duration") * 1000) & _MASK64
    for i, anno in enumerate(typed(f.get("annotations"), list, "annotations") or ()):
        a = fields(typed(anno, dict, f"annotations[{i}]") or {})
        ts = uint(a.get("timestamp"), f"annotations[{i}].timestamp")
        if ts < 1:
            raise PermanentError("valid annotation timestamp required")
        span.annotations.append(((ts * 1000) & _MASK64, typed(a.get("value"), str, f"annotations[{i}].value") or ""))
    for key, value in (typed(f.get("tags"), dict, "tags") or {}).items():
        span.tags[key] = typed(value, str, f"tags[{key!r}]") or ""
    if sid < 1:
        raise PermanentError("valid span id required")
    return span


def decode(body: bytes) -> list[ZSpan]:
    spans = loads(body, "zipkin v2")
    if spans is None:
        return []
    if not isinstance(spans, list):
        raise PermanentError("zipkin v2: want a JSON array of spans")
    return [s for s in map(_span, spans) if s is not None]
