"""The load-balancing exporter's pure part: which endpoint owns a routing key (`Ring`), and a trace
request cut into one request per owning endpoint (`partition`), at span granularity on the wire.

The ring is rendezvous (highest-random-weight) hashing, not the Collector's: each key goes to the
endpoint whose score, a 64-bit mix of the key's hash and the endpoint's, is highest. Every endpoint
gets an equal share up to sampling noise (5 endpoints and 100,000 trace ids: within 2% of each other),
where the Collector's crc32 ring of 200 points per endpoint on 131,071 positions is skewed
(contrib #41200). When an endpoint leaves, only its keys move, spread evenly over the others; when
one joins, it takes an equal share from each. Scoring is one hash of the key and one mix per endpoint.

Routing keys, as the Collector names them: `traceID` (a span goes with its trace); `service` (the
resource's `service.name`); `resource` (all of the resource's attributes; the Collector takes it for
logs and metrics only); `attributes` (the `routing_attributes` of a trace's first span in a resource,
each looked up on the resource, then the scope, then the pseudo attributes `span.kind` and
`span.name`, then the span; encoded `name=value|`, a missing one `name=|`, as the Collector does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from opentelemetry.proto.trace.v1 import trace_pb2

from pipelines import wire
from pipelines.processors.anyvalue import as_string

RoutingKey = Literal["traceID", "service", "resource", "attributes"]
ROUTING_KEYS: tuple[RoutingKey, ...] = ("traceID", "service", "resource", "attributes")

_MASK = (1 << 64) - 1
_IDS_FIRST = b"\n\x10"  # a span whose first field is a 16-byte trace_id


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _mix(x: int) -> int:
    """splitmix64's finalizer: a bijection of 64-bit integers whose output bits all depend on every input bit."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class NoEndpoint(Exception):
    """The ring is empty: no endpoint is resolved, or none is healthy."""


class Ring:
    """Rendezvous hashing over `endpoints`: the same endpoints give the same owners in every process."""

    def __init__(self, endpoints: Iterable[str]) -> None:
        self.endpoints: tuple[str, ...] = tuple(sorted(set(endpoints)))
        self._seeds = [(_hash64(e.encode()), e) for e in self.endpoints]

    def __len__(self) -> int:
        return len(self.endpoints)

    def owner(self, key: bytes) -> str:
        seeds = self._seeds
        if not seeds:
            raise NoEndpoint("no endpoint in the ring")
        if len(seeds) == 1:
            return seeds[0][1]
        h = _hash64(key)
        best, owner = -1, ""
        for seed, endpoint in seeds:
            score = _mix(h ^ seed)
            if score > best:
                best, owner = score, endpoint
        return owner


@dataclass(frozen=True, slots=True)
class Part:
    endpoint: str
    data: bytes
    items: int


def partition(data: bytes, items: int, ring: Ring, key: RoutingKey = "traceID",
              attributes: Sequence[str] = ()) -> list[Part]:
    """The request as one request per owning endpoint, spans in their order; the bytes untouched when
    one endpoint owns them all. Raises NoEndpoint, or WireError for bytes that do not parse."""
    if len(ring) == 1:
        return [Part(ring.endpoints[0], data, items)]
    req = wire.walk(data)
    owners = _OWNERS[key](req, ring, attributes)
    distinct = dict.fromkeys(owners)
    if len(distinct) == 1:
        return [Part(owners[0], data, len(owners))]
    parts = []
    for endpoint in distinct:
        extra: list[bytes | None] = [b"" if o == endpoint else None for o in owners]
        parts.append(Part(endpoint, wire.rebuild(req, extra, prune=True), owners.count(endpoint)))
    return parts


def trace_id(body: bytes) -> bytes:
    if body[:2] == _IDS_FIRST and len(body) >= 18:
        return body[2:18]
    return bytes(trace_pb2.Span.FromString(body).trace_id)


def _by_trace(req: wire.Request, ring: Ring, attributes: Sequence[str]) -> list[str]:
    bodies = req.bodies
    if all(b[:2] == _IDS_FIRST and len(b) >= 18 for b in bodies):
        tids = [b[2:18] for b in bodies]
    else:
        tids = [trace_id(b) for b in bodies]
    owner = {t: ring.owner(t) for t in set(tids)}
    return [owner[t] for t in tids]


def _resource_attrs(res: wire.Resource) -> list[tuple[str, str]]:
    resource = trace_pb2.ResourceSpans.FromString(res.head).resource
    return [(kv.key, as_string(kv.value)) for kv in resource.attributes]


def _per_resource(key_of: Callable[[wire.Resource], str]) -> Callable[[wire.Request, Ring, Sequence[str]], list[str]]:
    def owners(req: wire.Request, ring: Ring, attributes: Sequence[str]) -> list[str]:
        out: list[str] = []
        for res in req.resources:
            endpoint = ring.owner(key_of(res).encode())
            for sc in res.scopes:
                out.extend([endpoint] * (sc.last - sc.first))
        return out
    return owners


def _service_key(res: wire.Resource) -> str:
    value = next((v for k, v in _resource_attrs(res) if k == "service.name"), "")
    return f"service.name={value}|"


def _resource_key(res: wire.Resource) -> str:
    return "".join(f"{k}={v}|" for k, v in sorted(_resource_attrs(res)))


def _by_attributes(req: wire.Request, ring: Ring, attributes: Sequence[str]) -> list[str]:
    out: list[str] = []
    for res in req.resources:
        resource = dict(_resource_attrs(res))
        first: dict[bytes, str] = {}  # trace id -> owner, from the trace's first span in this resource
        for sc in res.scopes:
            scope_msg = trace_pb2.ScopeSpans.FromString(sc.head).scope
            scope = {kv.key: as_string(kv.value) for kv in scope_msg.attributes}
            for i in range(sc.first, sc.last):
                span = trace_pb2.Span.FromString(req.bodies[i])
                tid = bytes(span.trace_id)
                if tid not in first:
                    first[tid] = ring.owner(_attributes_key(attributes, resource, scope, span).encode())
                out.append(first[tid])
    return out


def _attributes_key(names: Sequence[str], resource: dict[str, str], scope: dict[str, str],
                    span: trace_pb2.Span) -> str:
    parts = []
    span_attrs: dict[str, str] | None = None
    for name in names:
        if name in resource:
            value: str | None = resource[name]
        elif name in scope:
            value = scope[name]
        elif name == "span.kind":
            value = trace_pb2.Span.SpanKind.Name(span.kind)
        elif name == "span.name":
            value = span.name
        else:
            if span_attrs is None:
                span_attrs = {kv.key: as_string(kv.value) for kv in span.attributes}
            value = span_attrs.get(name)
        parts.append(f"{name}={value}|" if value is not None else f"{name}=|")
    return "".join(parts)


_OWNERS: dict[RoutingKey, Callable[[wire.Request, Ring, Sequence[str]], list[str]]] = {
    "traceID": _by_trace,
    "service": _per_resource(_service_key),
    "resource": _per_resource(_resource_key),
    "attributes": _by_attributes,
}
